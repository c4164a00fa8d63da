"""The one table of metrics: what each number a trial reports is, and where ablate uses it.

Every list of metric names elsewhere is a query of :data:`METRICS`: the ``trials`` and ``epochs``
columns (``store``), the study view's columns, which metrics a study may optimise and a
plateau scheduler may watch (``study``), the numbers a train result hands the store
(``train``), and the labels, units, directions and ranges the report prints and draws
(``report``), and the progress line (``run``).

A metric is added with ``add_metric(Metric(...))``. Without ``column=True`` its values go to
the JSON columns ``trials.extra_metrics`` / ``epochs.extra``; a built-in one with a column of
its own also needs that column in ``store/_models.py`` and a migration (``tests/test_metrics.py``
checks the models against this table).

The order of the table is the column order of the ``trials`` and ``epochs`` tables, the study
view and :func:`~ablate.store.load_trials`; every query keeps it, and so do the lists of
allowed names in error messages. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ablate.registry import Registry

DIRECTIONS = ("maximize", "minimize")
DTYPES = ("float", "int", "bigint", "text")


@dataclass(frozen=True)
class Metric:
    """One metric: its meaning (label, unit, direction, range) and where it lives.

    ``direction`` is None where neither way is better (a learning rate, a count of images).
    """

    name: str
    label: str  # how a table header or a plot title names it: "final val acc"
    unit: str = ""  # what a value counts: "fraction" (of 1), "nats", "s", "MiB", "images/s"
    direction: str | None = None  # "maximize" | "minimize" | None
    low: float = -math.inf  # the values it can take: [low, high]
    high: float = math.inf
    dtype: str = "float"  # "float" | "int" | "bigint" (64-bit column) | "text"
    per_epoch: bool = False  # reported after every epoch (EpochMetrics)
    per_trial: bool = True  # reported once, as the trial's final value (TrainResult)
    column: bool = False  # has a column of its own in `trials` / `epochs` (built-in metrics)
    in_view: bool = False  # a column of each study's SQL view, study_<name>
    objective: bool = False  # a study may name it as its `metric` (TPE, pruners, early stopping)
    plateau: bool = False  # scheduler="plateau" may watch it (plateau_metric)
    rankable: bool = False  # `ablate report --metric` may rank configurations by it
    table: bool = False  # a column of the ablation table
    curve: bool = False  # drawn as a learning curve (and shown in the progress line)
    # The per-epoch metric that stands for it during training, when it is an objective that is
    # only known at the end (test_acc: epochs are compared on val_acc, never on the test split).
    epoch_stand_in: str | None = None

    def __post_init__(self) -> None:
        if self.direction not in (*DIRECTIONS, None):
            raise ValueError(f"metric {self.name!r}: direction {self.direction!r}; allowed: {', '.join(DIRECTIONS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"metric {self.name!r}: dtype {self.dtype!r}; allowed: {', '.join(DTYPES)}")
        if self.objective and self.direction is None:
            raise ValueError(f"metric {self.name!r} is an objective without a direction")

    @property
    def is_int(self) -> bool:
        """Stored and read back as an integer (a count, an epoch number)."""
        return self.dtype in ("int", "bigint")

    @property
    def epoch_metric(self) -> str:
        """The per-epoch metric training compares epochs on when this one is the study's metric."""
        return self.epoch_stand_in or self.name


METRICS: Registry[Metric] = Registry("metric", field="metric")


def add_metric(metric: Metric) -> Metric:
    """Add ``metric`` to the table (a name can be added once)."""
    METRICS.add(metric.name, metric)
    return metric


def metric_names(**where: bool) -> tuple[str, ...]:
    """Names of the metrics whose flags equal ``where``, in table order.

    ``metric_names(objective=True)``: what a study may optimise; ``metric_names(per_epoch=True,
    column=True)``: the metric columns of ``epochs``.
    """
    flags = {f.name for f in dataclasses.fields(Metric) if f.type in ("bool", bool)}
    unknown = set(where) - flags
    if unknown:
        raise TypeError(f"metric_names() got {', '.join(sorted(unknown))}; flags: {', '.join(sorted(flags))}")
    return tuple(
        name for name, m in METRICS.items() if all(getattr(m, k) == v for k, v in where.items())
    )


def default_direction(name: str) -> str:
    """A metric's own direction; for a name not in the table, ``minimize`` if it ends with loss."""
    if name in METRICS:
        direction = METRICS.get(name, where="default_direction").direction
        if direction is not None:
            return direction
    return "minimize" if isinstance(name, str) and name.endswith("loss") else "maximize"


# ---------------------------------------------------------------------------- the built-in ones
def _accuracy(name: str, label: str, **where: Any) -> Metric:
    return Metric(name, label, unit="fraction", direction="maximize", low=0.0, high=1.0, **where)


def _loss(name: str, label: str, **where: Any) -> Metric:
    # The mean cross-entropy per image.
    return Metric(name, label, unit="nats", direction="minimize", low=0.0, **where)


def _seconds(name: str, label: str, **where: Any) -> Metric:
    return Metric(name, label, unit="s", direction="minimize", low=0.0, **where)


def _count(name: str, label: str, **where: Any) -> Metric:
    return Metric(name, label, low=0.0, dtype=where.pop("dtype", "int"), **where)


# Stored per epoch (in `epochs`) and as the final value (in `trials` and the study view).
_BOTH: dict[str, Any] = {"per_epoch": True, "column": True, "in_view": True}
# Stored as the final value, in `trials` and the study view.
_FINAL: dict[str, Any] = {"column": True, "in_view": True}
# What a study may optimise (and so pruners, early stopping and the report rank by).
_OBJECTIVE: dict[str, Any] = {"objective": True, "rankable": True}

for _metric in (
    _loss("train_loss", "final train loss", **_BOTH, **_OBJECTIVE, plateau=True, curve=True),
    _accuracy("train_acc", "final train acc", **_BOTH, **_OBJECTIVE, plateau=True, table=True, curve=True),
    _loss("val_loss", "final val loss", **_BOTH, **_OBJECTIVE, plateau=True, curve=True),
    _accuracy("val_acc", "final val acc", **_BOTH, **_OBJECTIVE, plateau=True, table=True, curve=True),
    # None when the dataset has 5 classes or fewer.
    _accuracy("val_top5", "final val top-5", **_BOTH, **_OBJECTIVE),
    # Learning rate of the head's parameter group at the end of the epoch.
    Metric("lr", "learning rate", low=0.0, per_epoch=True, per_trial=False, column=True),
    _seconds("seconds", "epoch time", per_epoch=True, per_trial=False, column=True),
    _accuracy("best_val_acc", "best val acc", **_FINAL, rankable=True, table=True),
    Metric("best_epoch", "best epoch", low=1.0, dtype="int", **_FINAL),
    # The study metric at the best epoch (its direction is the study's); in extra_metrics.
    Metric("best_metric", "best metric"),
    # The best checkpoint on the test split; None without a test split.
    _accuracy("test_acc", "test acc", **_FINAL, **_OBJECTIVE, table=True, epoch_stand_in="val_acc"),
    _loss("test_loss", "test loss", **_FINAL, rankable=True),
    _count("epochs_run", "epochs run", **_FINAL),
    # Training time over all sessions of a trial (resumes included), start-up left out.
    _seconds("duration_s", "train time", **_FINAL, table=True),
    # This session: from train_trial() entry to the first step; in extra_metrics.
    _seconds("startup_s", "start-up time"),
    Metric("images_per_s", "throughput", unit="images/s", direction="maximize", low=0.0, **_BOTH),
    # CUDA: peak allocated; CPU: peak resident set of the process.
    Metric("peak_mem_mb", "peak memory", unit="MiB", direction="minimize", low=0.0, **_BOTH),
    _count("n_params", "parameters", dtype="bigint", **_FINAL),
    # Parameters with requires_grad (what a freeze strategy leaves to train).
    _count("n_trainable_params", "trainable parameters", dtype="bigint", column=True),
    # Images in each split; None for a split the study does not have.
    _count("n_train", "training images", column=True),
    _count("n_val", "validation images", column=True),
    _count("n_test", "test images", column=True),
    # completed | early_stopped | time_limit | diverged | pruned
    Metric("stop_reason", "stop reason", dtype="text", **_FINAL),
):
    add_metric(_metric)
