# expect: 10 x 10 x 10 x 10 x 10 x 10 = 1,000,000 configurations x 1 seeds = 1,000,000 trials; at most 100,000
from ablate import Study, choice, uniform, loguniform, intrange
def train(config, reporter):
    return {"val_acc": 0.5}
study = Study(name="s", factors={f"f{i}": list(range(10)) for i in range(6)}, train=train)
