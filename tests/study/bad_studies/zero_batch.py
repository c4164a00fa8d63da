# expect: 'batch_size'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", base=dict(batch_size=0), factors=dict(image_size=[8]))
