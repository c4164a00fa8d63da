"""Filling a real result database through the store's public API, as workers would."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ablate.store import ResultStore
from ablate.study import Study

#: outcome(params, seed) -> (status, final metrics, per-epoch metrics, artifacts)
Outcome = Callable[[dict[str, Any], int], tuple[str, dict[str, Any], Sequence[Mapping[str, Any]], dict[str, str]]]


def run_study(store: ResultStore, study: Study, outcome: Outcome, *, device: str = "cpu") -> int:
    """Register ``study``, plan its trials, and finish each one with what ``outcome`` says."""
    store.register_study(study)
    store.add_trials(study, study.validate())
    done = 0
    while (claimed := store.claim_next_trial(study.name, worker="w0", host="test", device=device, lease_s=600)) is not None:
        status, metrics, epochs, artifacts = outcome(dict(claimed.params), claimed.seed)
        for row in epochs:
            store.record_epoch(claimed.trial_id, dict(row))
        assert store.finish_trial(
            claimed.trial_id, "w0", status=status, metrics=metrics, artifacts=artifacts,
            error="RuntimeError: CUDA out of memory" if status == "failed" else None,
        )
        done += 1
    return done


def curve(final_train: float, final_val: float, epochs: int) -> list[dict[str, Any]]:
    """Epoch rows rising linearly to the final accuracies (loss falling)."""
    rows = []
    for e in range(1, epochs + 1):
        f = e / epochs
        rows.append(
            {
                "epoch": e,
                "train_acc": final_train * f,
                "val_acc": final_val * f,
                "train_loss": 2.0 - 1.5 * f * final_train,
                "val_loss": 2.1 - 1.5 * f * final_val,
                "lr": 0.1,
                "seconds": 2.0,
            }
        )
    return rows
