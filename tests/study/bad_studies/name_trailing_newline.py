# expect: at most 57 characters
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="digits\n", factors=dict(image_size=[8]))
