"""Store-shaped DataFrames for the report's unit tests (same columns as ablate.store's loaders)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

TRIAL_METRICS = (
    "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "best_val_acc", "best_epoch",
    "test_acc", "test_loss", "epochs_run", "duration_s", "images_per_s", "peak_mem_mb", "n_params",
)


def config_hash(params: Mapping[str, Any]) -> str:
    blob = json.dumps(dict(params), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_trials(
    factors: Sequence[str], rows: Sequence[Mapping[str, Any]], *, base: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """One trial per ``rows`` entry: factor values, ``seed``, metrics; ``status`` defaults to completed.

    ``number`` follows the order given; ``config_hash`` is derived from the factor values, so
    two entries with the same values and different seeds are replicates.
    """
    out = []
    for number, r in enumerate(rows):
        params = {f: r[f] for f in factors}
        record: dict[str, Any] = {
            "trial_id": number + 1,
            "number": number,
            "seed": r.get("seed", 0),
            "replicate": r.get("replicate", 0),
            "status": r.get("status", "completed"),
            "config_hash": config_hash(params),
            **params,
        }
        for m in TRIAL_METRICS:
            record[m] = r.get(m, np.nan)
        record.update(
            stop_reason=r.get("stop_reason"),
            error=r.get("error"),
            worker=r.get("worker", "w0"),
            host=r.get("host", "host"),
            device=r.get("device", "cpu"),
            attempt=r.get("attempt", 1),
            started_at=pd.Timestamp("2024-01-01"),
            finished_at=pd.Timestamp("2024-01-01"),
            config={**(base or {}), **params, "seed": r.get("seed", 0)},
        )
        out.append(record)
    frame = pd.DataFrame(out)
    for m in TRIAL_METRICS:
        frame[m] = frame[m].astype(float)
    return frame


def make_epochs(trials: pd.DataFrame, factors: Sequence[str], n_epochs: int, *, seed: int = 0) -> pd.DataFrame:
    """Per-epoch rows for every trial: curves rising towards the trial's final val/train acc."""
    rng = np.random.default_rng(seed)
    rows = []
    for _, t in trials.iterrows():
        final_val = t["val_acc"] if not np.isnan(t["val_acc"]) else 0.5
        final_train = t["train_acc"] if not np.isnan(t["train_acc"]) else final_val + 0.05
        for e in range(1, n_epochs + 1):
            frac = 1 - np.exp(-3 * e / n_epochs)
            frac /= 1 - np.exp(-3)
            rows.append(
                {
                    "trial_id": t["trial_id"],
                    "number": t["number"],
                    "seed": t["seed"],
                    "config_hash": t["config_hash"],
                    **{f: t[f] for f in factors},
                    "epoch": e,
                    "train_loss": 2.3 * (1 - frac) + 0.1 + rng.normal(0, 0.01),
                    "train_acc": 0.1 + (final_train - 0.1) * frac + rng.normal(0, 0.005),
                    "val_loss": 2.3 * (1 - frac) + 0.3 + rng.normal(0, 0.01),
                    "val_acc": 0.1 + (final_val - 0.1) * frac + rng.normal(0, 0.005),
                    "val_top5": min(1.0, 0.5 + final_val * frac),
                    "lr": 0.1,
                    "seconds": 1.0,
                    "images_per_s": 1000.0,
                    "peak_mem_mb": 100.0,
                }
            )
    return pd.DataFrame(rows)
