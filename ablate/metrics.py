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
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ablate.errors import StudyError
from ablate.registry import Registry

DIRECTIONS = ("maximize", "minimize")
DTYPES = ("float", "int", "bigint", "text")


@dataclass(frozen=True)
class Metric:
    """One metric: its meaning (label, unit, direction, range) and where it lives.

    ``direction`` is None where neither way is better (a learning rate, a count of images).
    """

    name: str
    label: str = ""  # how a table header or a plot title names it: "final val acc" (default: the name)
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
        if not self.label:
            object.__setattr__(self, "label", str(self.name).replace("_", " "))
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
    # The mean cross-entropy per image (train_loss: the loss trained on, focal and the margin head's term when set).
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
    # The test_checkpoint epoch (best by default) on the test split; None without a test split.
    _accuracy("test_acc", "test acc", **_FINAL, **_OBJECTIVE, table=True, epoch_stand_in="val_acc"),
    _loss("test_loss", "test loss", **_FINAL, rankable=True),
    # The epoch whose weights scored the test split (test_checkpoint); in extra_metrics.
    Metric("test_epoch", "test epoch", low=1.0, dtype="int"),
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
    # completed | early_stopped | time_limit | diverged | evaluation_failed | pruned
    Metric("stop_reason", "stop reason", dtype="text", **_FINAL),
):
    add_metric(_metric)

#: The metrics ablate itself reports: a study's own metric may not take one of these names.
BUILT_IN = tuple(METRICS)


# ---------------------------------------------------------------------------- a study's own metrics
#: What an evaluation's metric is called: val_<name>, a lower-case SQL identifier.
_OWN_NAME = re.compile(r"val_[a-z0-9_]{1,50}")
# Names of the study view's and the epoch row's own columns, which no metric may take.
_RESERVED = ("trial_id", "number", "seed", "replicate", "status", "epoch", "group_lrs", "extra", "data")


def test_name(name: str) -> str:
    """The name of a ``val_`` metric computed once on the test split: ``val_auc`` -> ``test_auc``."""
    return "test_" + name.removeprefix("val_")


@dataclass(frozen=True)
class Evaluation:
    """A study's own evaluation: ``fn(model, split)`` returns a value for each of ``metrics``.

    The built-in trainer calls it after every epoch on the validation split (``split.name`` is
    "val") and, with ``on_test``, once more on the test split with the best checkpoint, where
    each ``val_x`` it returns is stored as ``test_x``. ``model`` is the trained ``nn.Module`` in
    eval mode; ``split`` is an :class:`ablate.train.EvalSplit` (the split's batches, the eval
    preprocessing, the device, the data folder). Each metric is named ``val_<something>`` and
    declares its direction and range; the names become columns of the study's SQL view, and
    any of them (or its ``test_`` twin) can be the study's ``metric``.
    """

    fn: Callable[..., Mapping[str, Any]]
    metrics: Sequence[Metric]
    on_test: bool = True
    name: str = ""
    # Called at plan time with every planned trial config (not on --smoke): raises StudyError
    # or DataNotFoundError for what would fail every trial (a missing pairs file).
    precheck: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))
        if not self.name:
            object.__setattr__(self, "name", getattr(self.fn, "__name__", type(self.fn).__name__))

    def check(self, *, where: str) -> None:
        """StudyError (one line) for a declaration ablate cannot store or compare on."""
        w = f"{where}: evaluation {self.name!r}"
        if not callable(self.fn) or (self.precheck is not None and not callable(self.precheck)):
            raise StudyError(f"{w}: fn must be a function (model, split) -> dict, got {self.fn!r}")
        if not self.metrics:
            raise StudyError(f"{w}: declares no metric; give metrics=[Metric('val_...', direction=...)]")
        for m in self.metrics:
            if not isinstance(m, Metric):
                raise StudyError(f"{w}: metrics holds {m!r}; each is an ablate.Metric")
            check_own_metric(m, where=w)

    def declared(self) -> list[Metric]:
        """The metrics it produces: each declared one (per epoch and final) and, with
        ``on_test``, its test twin (final only, compared on its val metric while training)."""
        out = [own_metric(m) for m in self.metrics]
        if self.on_test:
            out += [own_metric(m, test=True) for m in self.metrics]
        return out


def evaluation(*metrics: Metric, on_test: bool = True) -> Callable[[Callable[..., Mapping[str, Any]]], Evaluation]:
    """Decorator form of :class:`Evaluation`::

        @evaluation(Metric("val_auc", direction="maximize", low=0, high=1, label="val AUC"))
        def auc(model, split): ...

        Study(..., evaluations=[auc], metric="val_auc")
    """

    def wrap(fn: Callable[..., Mapping[str, Any]]) -> Evaluation:
        return Evaluation(fn, metrics, on_test=on_test)

    return wrap


def check_own_metric(m: Metric, *, where: str) -> None:
    """A study's own metric: named ``val_<x>``, not a built-in column, a direction and a range."""
    name = m.name
    if not isinstance(name, str) or not _OWN_NAME.fullmatch(name):
        raise StudyError(
            f"{where}: metric name {name!r}: an evaluation's metric is named val_<name> (lower-case "
            "letters, digits, underscores; it is computed on the validation split and names a SQL column)"
        )
    for taken in (name, test_name(name)):
        if taken in BUILT_IN or taken in _RESERVED:
            raise StudyError(
                f"{where}: metric {name!r} collides with the built-in column {taken!r}; name it differently"
            )
    if m.direction not in DIRECTIONS:
        raise StudyError(f"{where}: metric {name!r} has direction {m.direction!r}; allowed: {', '.join(DIRECTIONS)}")
    for bound in (m.low, m.high):
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or math.isnan(bound):
            raise StudyError(f"{where}: metric {name!r}: range [{m.low!r}, {m.high!r}] must be numbers")
    if not m.low < m.high:
        raise StudyError(f"{where}: metric {name!r}: range [{m.low}, {m.high}] is empty; low must be below high")
    if m.dtype != "float":
        raise StudyError(f"{where}: metric {name!r}: dtype {m.dtype!r}; an evaluation's metrics are float")


def own_metric(m: Metric, *, test: bool = False) -> Metric:
    """``m`` with the flags of a study's own metric: per epoch and final, an objective, rankable;
    stored in the JSON columns (``epochs.extra``, ``trials.extra_metrics``) and a typed column of
    the study's view. ``test``: its twin on the test split (``val_auc`` -> ``test_auc``)."""
    flags: dict[str, Any] = dict(
        per_epoch=not test, per_trial=True, column=False, in_view=False, objective=True,
        rankable=True, table=False, curve=False, plateau=False,
    )
    if test:
        label = m.label.replace("val", "test") if "val" in m.label else f"{m.label} (test)"
        return dataclasses.replace(m, name=test_name(m.name), label=label, epoch_stand_in=m.name, **flags)
    return dataclasses.replace(m, epoch_stand_in=None, **flags)


def declare_metrics(metrics: Sequence[Metric]) -> None:
    """Put a study's own metrics in the table, so that everything that reads it (the trainer's
    objectives, directions, the report's labels and ranges) knows them. A later declaration
    of the same name replaces the earlier one; a built-in name is refused."""
    for m in metrics:
        if m.name in BUILT_IN:
            raise StudyError(f"metric {m.name!r} collides with the built-in column {m.name!r}; name it differently")
        METRICS.replace(m.name, m)


def metric_declaration(m: Metric) -> dict[str, Any]:
    """What the store keeps of a study's own metric (in the study's definition)."""
    return {"name": m.name, "label": m.label, "unit": m.unit, "direction": m.direction,
            "low": m.low if math.isfinite(m.low) else None, "high": m.high if math.isfinite(m.high) else None,
            "test": m.epoch_stand_in is not None}


def metric_from_declaration(d: Mapping[str, Any]) -> Metric:
    """The inverse of :func:`metric_declaration` (a report reads the study's metrics back)."""
    low = -math.inf if d.get("low") is None else float(d["low"])
    high = math.inf if d.get("high") is None else float(d["high"])
    base = Metric(str(d["name"]), str(d.get("label") or ""), unit=str(d.get("unit") or ""),
                  direction=d.get("direction"), low=low, high=high)
    if d.get("test"):
        return dataclasses.replace(own_metric(base), epoch_stand_in="val_" + base.name.removeprefix("test_"),
                                   per_epoch=False)
    return own_metric(base)


def declared_metrics(definition: Mapping[str, Any] | None) -> list[Metric]:
    """A study's own metrics, from its stored definition (none for most studies)."""
    return [metric_from_declaration(d) for d in (definition or {}).get("metrics") or ()]
