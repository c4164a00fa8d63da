# expect: 'amp'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", base=dict(amp="fp8"), factors=dict(image_size=[8]))
