# expect: factor 'steps' level: 18446744073709551616 is past 64 bits
from ablate import Study, choice, uniform, loguniform, intrange
def train(config, reporter):
    return {"val_acc": 0.5}
study = Study(name="s", factors=dict(steps=[1, 2**64]), train=train)
