"""A custom `train=` that misbehaves fails its own trial with one line; the study goes on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ablate.run import run_study
from ablate.store import load_trials

STUDY = """
import sys
from ablate import Study

class Epoch:
    def __init__(self, values):
        self.values = values
    def as_dict(self):
        return self.values

def train(config, reporter):
    case = config.extra["case"]
    if case == "ok":
        reporter.report_epoch({"epoch": 1, "val_acc": 0.5})
        return {"val_acc": 0.75, "note": "fine"}
    if case == "none":
        return None
    if case == "list":
        return [0.9]
    if case == "text":
        return {"val_acc": "high"}
    if case == "nan":
        return {"val_acc": float("nan")}
    if case == "inf":
        return {"val_acc": 0.5, "val_loss": float("inf")}
    if case == "huge":
        return {"val_acc": 0.5, "n_params": 2 ** 70}
    if case == "huge_extra":
        return {"val_acc": 0.5, "steps": -(2 ** 64)}
    if case == "no_metric":
        return {"train_acc": 0.5}
    if case == "exit":
        sys.exit(3)
    if case == "bad_epoch":
        reporter.report_epoch(Epoch({"epoch": 1, "val_acc": "x"}))
    return {"val_acc": 0.5}

study = Study(
    name="custom",
    factors=dict(case=["ok", "none", "list", "text", "nan", "inf", "huge", "huge_extra",
                       "no_metric", "exit", "bad_epoch"]),
    train=train,
)
"""

EXPECTED = {
    "none": "train() returned NoneType None, not a dict of metrics",
    "list": "train() returned list [0.9], not a dict of metrics",
    "text": "train() returned metric 'val_acc' is str 'high', not a number",
    "nan": "train() returned metric 'val_acc' is nan; only finite numbers can be stored",
    "inf": "train() returned metric 'val_loss' is inf; only finite numbers can be stored",
    "huge": f"train() returned metric 'n_params' is {2**70}, too large to store in 64 bits",
    "huge_extra": f"train() returned metric 'steps' is {-(2**64)}, too large to store in 64 bits",
    "no_metric": "train() returned no 'val_acc', the study's metric (it returned 'train_acc')",
    "exit": "train() called sys.exit(3) instead of returning metrics",
    "bad_epoch": "train() reported 'val_acc' at epoch 1 is str 'x', not a number",
}


@pytest.mark.slow
def test_each_misbehaving_train_fails_only_its_trial(db_url: str, tmp_path: Path) -> None:
    study_file = tmp_path / "custom.py"
    study_file.write_text(STUDY)
    (outcome,) = run_study(study_file, db=db_url, runs_dir=tmp_path / "runs")
    assert outcome.counts == {"completed": 1, "failed": len(EXPECTED)}
    trials = load_trials("custom", db=db_url)
    assert "running" not in set(trials["status"])
    errors = dict(zip(trials["case"], trials["error"], strict=True))
    assert pd.isna(errors.pop("ok"))
    assert errors.keys() == EXPECTED.keys()
    for case, message in errors.items():
        assert message.startswith(EXPECTED[case]) and "\n" not in message, (case, message)
    ok = trials[trials["case"] == "ok"].iloc[0]
    assert ok["val_acc"] == 0.75 and ok["extra_metrics"] == {"note": "fine"}
