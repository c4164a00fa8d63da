# expect: 'augment'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(augment=["none", "strong"]))
