# expect: 'pretrained'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", base=dict(pretrained="yes"), factors=dict(image_size=[8]))
