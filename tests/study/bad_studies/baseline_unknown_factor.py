# expect: baseline names 'augment'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(image_size=[8, 16]), design="ofat", baseline=dict(augment="none"))
