# expect: 'scheduler'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(scheduler=["cosine", "steplr"]))
