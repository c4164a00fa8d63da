# expect: seeds
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(image_size=[8]), seeds=[0, 0])
