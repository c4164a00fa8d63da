# expect: NameError
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(image_size=[sixteen]))
