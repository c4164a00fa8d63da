"""What every completed trial of the built-in trainer must satisfy, whatever happened to its run."""

from __future__ import annotations

import pandas as pd
import pytest

from ablate.store import load_epochs, load_trials


def check_completed_trials(study: str, db: str) -> pd.DataFrame:
    """One epoch row per epoch each completed trial ran; its final metrics equal its epoch rows."""
    trials = load_trials(study, db=db)
    epochs = load_epochs(study, db=db)
    done = trials[trials["status"] == "completed"]
    assert len(done), f"{study}: no completed trial"
    for _, trial in done.iterrows():
        rows = epochs[epochs["trial_id"] == trial["trial_id"]].sort_values("epoch")
        assert list(rows["epoch"]) == list(range(1, int(trial["epochs_run"]) + 1)), (
            f"trial {trial['number']}: epochs {list(rows['epoch'])}, epochs_run {trial['epochs_run']}"
        )
        last = rows.iloc[-1]
        assert trial["val_acc"] == pytest.approx(last["val_acc"])
        assert trial["val_loss"] == pytest.approx(last["val_loss"])
        assert trial["train_loss"] == pytest.approx(last["train_loss"])
        best = rows.loc[rows["val_acc"].idxmax()]
        assert trial["best_val_acc"] == pytest.approx(best["val_acc"])
        assert rows.set_index("epoch").loc[int(trial["best_epoch"]), "val_acc"] == pytest.approx(best["val_acc"])
    return trials
