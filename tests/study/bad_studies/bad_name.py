# expect: study name
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="My Study", factors=dict(image_size=[8]))
