# expect: factor '': a factor name is letters
from ablate import Study, choice, uniform, loguniform, intrange
def train(config, reporter):
    return {"val_acc": 0.5}
study = Study(name="s", factors={"": [1, 2]}, train=train)
