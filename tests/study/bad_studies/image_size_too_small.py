# expect: 'image_size'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(image_size=[2, 8]))
