# expect: 'weight_decay'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(weight_decay=uniform(-1.0, 0.1)), design="random", n_trials=3)
