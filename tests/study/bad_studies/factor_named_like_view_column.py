# expect: factor 'trial_status': the study's view already has a column
from ablate import Study, choice, uniform, loguniform, intrange
def train(config, reporter):
    return {"val_acc": 0.5}
study = Study(name="s", factors=dict(trial_status=[1, 2]), train=train)
