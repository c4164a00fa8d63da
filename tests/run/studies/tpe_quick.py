"""A TPE study over a small space, with a custom train function: sampler and dedupe under lock."""

import time

from ablate import Study, choice, loguniform


def quick_train(config, reporter):
    time.sleep(0.05)
    return {"val_acc": 1.0 - abs(config.extra["x"] - 3) / 10 - config.lr, "epochs_run": 1}


study = Study(
    name="tpe_quick",
    factors=dict(x=choice(0, 1, 2, 3, 4, 5), lr=loguniform(1e-3, 1e-1)),
    design="tpe",
    n_trials=12,
    train=quick_train,
)
