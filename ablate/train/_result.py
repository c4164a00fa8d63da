"""What a trial reports: one :class:`EpochMetrics` per epoch, one :class:`TrainResult` at the end.

Accuracies are fractions in [0, 1], losses are mean cross-entropy per image, times in seconds,
memory in MiB.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


class TrialPruned(Exception):
    """Raised by a reporter to stop a trial early; :func:`train_trial` lets it propagate."""


@dataclass
class EpochMetrics:
    """Metrics of one finished epoch (``epoch`` is 1-based)."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None  # None without a validation split (val_split=0)
    val_acc: float | None
    val_top5: float | None  # None when the dataset has 5 classes or fewer
    lr: float  # learning rate of the head's parameter group at the end of the epoch
    seconds: float  # wall time of the epoch, training and validation
    images_per_s: float  # training images per second of training time
    peak_mem_mb: float  # CUDA: peak allocated; CPU: peak resident set of the process
    # Learning rate of every parameter group at the end of the epoch, by group name.
    group_lrs: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """Outcome of :func:`~ablate.train.train_trial`."""

    status: str  # "completed" | "failed"
    stop_reason: str  # "completed" | "early_stopped" | "time_limit" | "diverged" ("pruned": the worker)
    error: str | None
    train_loss: float | None
    train_acc: float | None
    val_loss: float | None
    val_acc: float | None
    val_top5: float | None
    best_val_acc: float | None
    best_epoch: int | None
    best_metric: float | None  # the study metric at the best epoch
    test_acc: float | None  # best checkpoint on the test split; None without a test split
    test_loss: float | None
    epochs_run: int
    # Training time over all sessions of the trial (resumes included), each session counted
    # from the end of its first step: start-up (startup_s) is not training time.
    duration_s: float
    images_per_s: float | None
    peak_mem_mb: float | None
    n_params: int
    artifacts: dict[str, str] = field(default_factory=dict)
    history: list[EpochMetrics] = field(default_factory=list)
    n_trainable_params: int = 0
    startup_s: float | None = None  # this session: from train_trial() entry to the first step
    # Dataset.provenance(): each split's size, source and class counts, and the normalisation.
    data: dict[str, Any] = field(default_factory=dict)

    _METRIC_FIELDS = (
        "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "best_val_acc",
        "best_epoch", "best_metric", "test_acc", "test_loss", "epochs_run", "duration_s",
        "images_per_s", "peak_mem_mb", "n_params", "n_trainable_params", "startup_s",
    )

    def metrics_dict(self) -> dict[str, Any]:
        """The results for the database: numbers (NaN and infinities become None), the stop
        reason, the split sizes, and ``data`` (split sources and normalisation)."""
        out: dict[str, Any] = {}
        for name in self._METRIC_FIELDS:
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            out[name] = value
        out["stop_reason"] = self.stop_reason
        splits = self.data.get("splits", {})
        for split in ("train", "val", "test"):
            out[f"n_{split}"] = splits[split]["n"] if split in splits else None
        out["data"] = self.data or None
        return out
