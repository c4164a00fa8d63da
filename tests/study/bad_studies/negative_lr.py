# expect: 'lr'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", base=dict(lr=-0.1), factors=dict(image_size=[8]))
