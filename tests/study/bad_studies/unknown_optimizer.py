# expect: 'optimizer'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", base=dict(optimizer="lamb"), factors=dict(image_size=[8]))
