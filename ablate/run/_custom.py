"""Calling a study's own ``train=`` function, so that whatever it does fails its trial only.

The function is user code: it may return None or a list, metrics that are text, NaN or integers
no database column holds, report epochs the store cannot take, or call ``sys.exit``. Each of
these raises :class:`CustomTrainError` with one line saying what was wrong, which the worker
records as that trial's failure before going on with the next trial. What the function may
call and return is the contract in :mod:`ablate.trial`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.metrics import METRICS, Metric
from ablate.trial import EpochMetrics, epoch_values

# The largest integer a BIGINT column (and SQLite's INTEGER) holds.
INT64_MAX = 2**63 - 1
# Keys the database stores in numeric columns, and those of them that hold integers.
_NUMERIC_KEYS = {name for name, m in METRICS.items() if m.column and m.dtype != "text"} | {"epoch"}
_INT_KEYS = {name for name, m in METRICS.items() if m.column and m.is_int}
# The artifacts table's kind column holds this many characters.
MAX_ARTIFACT_NAME = 64


class CustomTrainError(Exception):
    """A study's train function misbehaved; the message says how, in one line."""


@dataclass
class CustomResult:
    """What a train function handed back: its final metrics and the files it registered."""

    metrics: dict[str, Any]
    artifacts: dict[str, str] = field(default_factory=dict)


def run_custom_train(
    train: Callable[..., Any], config: Any, reporter: Any, metric: str, *,
    directory: Path | None = None, declared: Sequence[Metric] = (),
) -> CustomResult:
    """Call ``train(config, reporter)`` and return its metrics, checked to be storable (and
    the study's own ``declared`` metrics within their ranges), and the artifacts it added.
    ``directory`` is the trial's folder, the reporter's ``directory`` for its files."""
    name = getattr(train, "__qualname__", "train")
    checked = _CheckedReporter(reporter, name, directory, declared)
    try:
        returned = train(config, checked)
    except SystemExit as e:
        raise CustomTrainError(
            f"{name}() called sys.exit({e.code!r}) instead of returning metrics"
        ) from None
    return CustomResult(check_custom_metrics(returned, metric, name, declared), checked.artifacts)


def check_custom_metrics(
    returned: Any, metric: str, name: str = "train", declared: Sequence[Metric] = ()
) -> dict[str, Any]:
    """The metrics a train function returned, or CustomTrainError naming what cannot be stored.

    A mapping with string keys; the study's ``metric`` present; every number finite and every
    integer within 64 bits; the columns the database types as numbers (val_acc, n_params, ...)
    numeric; the study's declared metrics numbers within their declared range.
    """
    if not isinstance(returned, Mapping):
        raise CustomTrainError(
            f"{name}() returned {_shown(returned)}, not a dict of metrics such as "
            f"{{{metric!r}: 0.93}}"
        )
    metrics = dict(returned)
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise CustomTrainError(f"{name}() returned a metric named {key!r}; names are strings")
        _check_value(f"{name}() returned metric {key!r}", key, value)
        _check_declared(f"{name}() returned metric {key!r}", key, value, declared)
    if metrics.get(metric) is None:
        raise CustomTrainError(
            f"{name}() returned no {metric!r}, the study's metric (it returned "
            f"{', '.join(map(repr, metrics)) or 'nothing'})"
        )
    return metrics


def _check_value(what: str, key: str, value: Any) -> None:
    if value is None or key == "stop_reason":
        return
    number = _as_number(value)
    if number is None:
        if key in _NUMERIC_KEYS:
            raise CustomTrainError(f"{what} is {_shown(value)}, not a number")
        return  # any other value is kept as JSON (as text if need be)
    if isinstance(number, float) and not math.isfinite(number):
        raise CustomTrainError(f"{what} is {number}; only finite numbers can be stored")
    if isinstance(number, int) and abs(number) > INT64_MAX:
        raise CustomTrainError(f"{what} is {number}, too large to store in 64 bits")
    if key in _INT_KEYS and isinstance(number, float) and not number.is_integer():
        raise CustomTrainError(f"{what} is {number}, not a whole number")


def _check_declared(what: str, key: str, value: Any, declared: Sequence[Metric]) -> None:
    own = next((m for m in declared if m.name == key), None)
    if own is None or value is None:
        return
    number = _as_number(value)
    if number is None:
        raise CustomTrainError(f"{what} is {_shown(value)}, not a number")
    if not own.low <= number <= own.high:
        raise CustomTrainError(f"{what} is {number}, outside its declared range [{own.low}, {own.high}]")


def _as_number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            inner = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        return inner if isinstance(inner, (int, float)) and not isinstance(inner, bool) else None
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


class _CheckedReporter:
    """The worker's reporter, with each reported epoch checked before it reaches the store, and
    the files the train function registers (``add_artifact``) kept for the trial's result."""

    def __init__(self, reporter: Any, name: str, directory: Path | None = None, declared: Sequence[Metric] = ()) -> None:
        self._reporter = reporter
        self._name = name
        self._directory = directory
        self._declared = declared
        self.artifacts: dict[str, str] = {}

    @property
    def directory(self) -> Path:
        """The trial's own folder (made on first use), for the files the train function writes."""
        if self._directory is None:
            raise CustomTrainError(f"{self._name}() asked for reporter.directory, which this run has none of")
        self._directory.mkdir(parents=True, exist_ok=True)
        return self._directory

    def add_artifact(self, name: str, path: str | os.PathLike[str]) -> None:
        """Record the file at ``path`` as the trial's artifact ``name`` (a checkpoint, a
        figure); stored with the trial's result, in the ``artifacts`` table."""
        if not isinstance(name, str) or not name or len(name) > MAX_ARTIFACT_NAME:
            raise CustomTrainError(
                f"{self._name}() added an artifact named {name!r}; a name is a string of 1 to "
                f"{MAX_ARTIFACT_NAME} characters"
            )
        try:
            file = Path(path).expanduser().resolve()
        except TypeError:
            raise CustomTrainError(f"{self._name}() added artifact {name!r} at {_shown(path)}, not a path") from None
        if not file.exists():
            raise CustomTrainError(f"{self._name}() added artifact {name!r} at {file}, which does not exist")
        self.artifacts[name] = str(file)

    def report_epoch(self, m: Any) -> None:
        try:
            values = epoch_values(m)
        except TypeError:
            raise CustomTrainError(
                f"{self._name}() reported {_shown(m)} as an epoch; report a dict or an EpochMetrics"
            ) from None
        epoch = values.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise CustomTrainError(
                f"{self._name}() reported an epoch numbered {epoch!r}; epochs are integers >= 1"
            )
        for key, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                continue  # a diverged loss: stored as NULL for that epoch, as the trainer's are
            _check_value(f"{self._name}() reported {key!r} at epoch {epoch}", str(key), value)
            _check_declared(f"{self._name}() reported {key!r} at epoch {epoch}", str(key), value, self._declared)
        # The worker's reporter reads as_dict(): a dict gets one.
        self._reporter.report_epoch(m if isinstance(m, EpochMetrics) else _Epoch(values))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reporter, name)


class _Epoch:
    """A plain dict reported as an epoch, given the ``as_dict`` the worker's reporter reads."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def as_dict(self) -> dict[str, Any]:
        return self._values
