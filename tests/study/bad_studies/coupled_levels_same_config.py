# expect: give the same configuration
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(lr=[0.1, 0.2], epochs=[1, 1.0]), base=dict(extra=dict()), train=lambda c, r: {"val_acc": 1.0})
