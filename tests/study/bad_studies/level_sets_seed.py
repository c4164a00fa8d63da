# expect: sets 'seed'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(model=[dict(model="resnet18", seed=1), dict(model="resnet34")]))
