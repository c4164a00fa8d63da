"""40 quick trials with a custom train function that logs every execution to a side file."""

import os
import time

from ablate import Study


def quick_train(config, reporter):
    # One line per execution: the test checks that no trial ran twice.
    with open(os.environ["ABLATE_TEST_LOG"], "a") as log:
        log.write(f"{config.extra['a']},{config.extra['b']},{config.seed},{os.getpid()}\n")
    time.sleep(float(os.environ.get("ABLATE_TEST_SLEEP", "0")))
    return {"val_acc": (config.extra["a"] * 10 + config.extra["b"]) / 100, "epochs_run": 1}


study = Study(
    name="quick_grid",
    factors=dict(a=list(range(10)), b=list(range(2))),
    seeds=[0, 1],
    train=quick_train,
)
