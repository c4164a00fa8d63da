# expect: 'lr'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", base=dict(lr="fast"), factors=dict(image_size=[8]))
