"""The trial contract: what a training loop hands ablate, and how it is told to stop.

Both the built-in trainer (:func:`ablate.train.train_trial`) and a study's own ``train=``
function report through a :class:`Reporter` the worker passes in::

    def train(config, reporter):            # Study(train=train, ...)
        for epoch in range(1, config.epochs + 1):
            ...
            reporter.report_epoch({"epoch": epoch, "val_acc": acc, "val_loss": loss})
        return {"val_acc": acc, "test_acc": test}

- ``reporter.report_epoch(m)`` after each epoch, with an :class:`EpochMetrics` or a plain dict
  holding an integer ``epoch`` >= 1 (1-based) and numbers. Keys named in the metric table
  (:data:`ablate.metrics.METRICS`: ``val_acc``, ``train_loss``, ...) go to their columns of
  ``epochs``, others to its ``extra`` JSON. It stores the epoch, renews the trial's lease and
  may raise :class:`TrialPruned` (a pruner stopped the trial) or another exception that means
  the worker lost the trial: let both propagate.
- ``reporter.on_batch(epoch, batch, n_batches, loss)`` (optional, ``loss`` may be None) keeps
  the progress line moving within a long epoch.
- A ``train=`` function may also write files to ``reporter.directory`` (the trial's own folder)
  and register them with ``reporter.add_artifact(name, path)`` (its checkpoints, a figure):
  stored in the ``artifacts`` table with the trial's result.
- At the end the built-in trainer returns a :class:`TrainResult`; a ``train=`` function returns
  a dict of final metrics holding the study's metric (the same keys, see
  :meth:`TrainResult.metrics_dict`). A metric of its own (``f1``) is declared in the study,
  ``Study(metrics=[Metric("f1", "macro F1", direction="maximize", high=1.0, objective=True)],
  metric="f1")``, and may then be the study's metric (pruners and TPE read it from the epochs'
  and the result's ``extra``); values outside its declared range fail the trial.
- ``ablate run --smoke`` runs a ``train=`` study with its base changed as ``Study(smoke=dict(
  epochs=1, ...))`` says (first seed only, under the name ``<study>_smoke``).

Units: accuracies are fractions in [0, 1], losses are mean cross-entropy per image, times in
seconds, memory in MiB. Importing this module imports neither torch nor the trainer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ablate.metrics import metric_names


class TrialPruned(Exception):
    """Raised by a reporter to stop a trial early; :func:`~ablate.train.train_trial` lets it propagate."""


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
    # The values of the study's own evaluations on the validation split (val_auc, ...).
    evaluated: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The epoch's values, the evaluations' among the others (one flat dict, as stored)."""
        values = dataclasses.asdict(self)
        values.update(values.pop("evaluated"))
        return values

    def value(self, name: str) -> Any:
        """One metric of the epoch: a field, or a value of the study's evaluations (None if absent)."""
        if name in self.evaluated:
            return self.evaluated[name]
        return getattr(self, name, None)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EpochMetrics:
        """The inverse of :meth:`as_dict` (a resumed trial reads its history back)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"evaluated"}
        known = {k: v for k, v in values.items() if k in names}
        return cls(**known, evaluated={k: v for k, v in values.items() if k not in names})


@runtime_checkable
class Reporter(Protocol):
    """What a training loop reports each epoch to (the worker's reporter; see the module doc)."""

    def report_epoch(self, m: EpochMetrics | Mapping[str, Any]) -> None:
        """Store epoch ``m``; may raise :class:`TrialPruned`."""
        ...


def epoch_values(m: EpochMetrics | Mapping[str, Any]) -> dict[str, Any]:
    """The values of a reported epoch, whether it came as an EpochMetrics (or anything with
    ``as_dict``) or as a plain dict. TypeError for anything else."""
    as_dict = getattr(m, "as_dict", None)
    values = as_dict() if callable(as_dict) else m
    if not isinstance(values, Mapping):
        raise TypeError(f"an epoch is reported as an EpochMetrics or a dict, not {type(m).__name__}")
    return dict(values)


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
    test_acc: float | None  # test_checkpoint's weights (best or last epoch) on the test split; None without one
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
    # Final values of the study's own evaluations: the last epoch's val_x, the test split's test_x.
    evaluated: dict[str, float] = field(default_factory=dict)
    # The epoch whose weights scored the test split (test_checkpoint: best or last); None without.
    test_epoch: int | None = None

    def metrics_dict(self) -> dict[str, Any]:
        """The results for the database: each final metric of the table this result holds
        (NaN and infinities become None), the stop reason, the split sizes, and ``data``
        (split sources and normalisation)."""
        held = {f.name for f in dataclasses.fields(self)}
        out: dict[str, Any] = {}
        for name in metric_names(per_trial=True):
            if name in held:
                value = getattr(self, name)
                out[name] = None if isinstance(value, float) and not math.isfinite(value) else value
        splits = self.data.get("splits", {})
        for split in ("train", "val", "test"):
            out[f"n_{split}"] = splits[split]["n"] if split in splits else None
        out["data"] = self.data or None
        out.update(self.evaluated)
        return out
