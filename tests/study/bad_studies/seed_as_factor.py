# expect: 'seed'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(seed=[0, 1]))
