# expect: 64 characters; at most 63
from ablate import Study, choice, uniform, loguniform, intrange
def train(config, reporter):
    return {"val_acc": 0.5}
study = Study(name="s", factors={"f" * 64: [1, 2]}, train=train)
