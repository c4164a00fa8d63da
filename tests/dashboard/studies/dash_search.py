"""A random search over a float, an int and a categorical factor, with a custom train function
that reports three epochs and fails its trial at x == "c": ranges and a failure text.

``DASH_TRIALS`` sets n_trials (re-running with more adds trials to the same version);
``DASH_SLEEP`` makes each epoch take that many seconds (for a dashboard watching a run).
"""

import os
import time

from ablate import Study, choice, intrange, loguniform


def train(config, reporter):
    x, width = config.extra["x"], config.extra["width"]
    if x == "c":
        raise RuntimeError(f"exploded on x={x}")
    final = 0.5 + width / 20 - config.lr
    for epoch in (1, 2, 3):
        time.sleep(float(os.environ.get("DASH_SLEEP", "0")))
        reporter.report_epoch({"epoch": epoch, "val_acc": final * epoch / 3, "val_loss": 1.0 / epoch})
    return {"val_acc": final, "val_loss": 1 / 3, "steps": 3 * width}


study = Study(
    name="dash_search",
    factors=dict(x=choice("a", "b", "c"), lr=loguniform(1e-3, 1e-1), width=intrange(1, 8)),
    design="random",
    n_trials=int(os.environ.get("DASH_TRIALS", "8")),
    seeds=[0],
    train=train,
)
