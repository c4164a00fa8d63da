# expect: factor 'lr' level: nan cannot be stored
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(lr=[0.1, float("nan")]))
