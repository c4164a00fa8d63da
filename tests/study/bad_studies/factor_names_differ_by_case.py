# expect: same name as factor 'Width' but for case
from ablate import Study, choice, uniform, loguniform, intrange
def train(config, reporter):
    return {"val_acc": 0.5}
study = Study(name="s", factors=dict(Width=[1, 2], width=[3, 4]), train=train)
