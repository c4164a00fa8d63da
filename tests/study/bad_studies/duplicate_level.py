# expect: factor 'image_size' repeats the level 16
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(image_size=[8, 16, 16]))
