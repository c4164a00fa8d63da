"""What a trial is to a report: which trials count, which columns are metrics, how levels print.

Every other report module starts from these: configuration identity is ``config_hash``
(replicates with different seeds share it); only ``completed`` trials with a value of the
study metric enter a statistic, the others are counted and reported as excluded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ablate.errors import StudyError
from ablate.metrics import METRICS, default_direction, metric_names
from ablate.study import describe_ops

COMPLETED = "completed"
#: Columns a report may rank configurations by (``--metric``).
METRIC_COLUMNS = metric_names(rankable=True)
#: Columns of the ablation table, in this order (those without any value are left out).
TABLE_METRICS = metric_names(table=True)
#: Numeric factors with more distinct values than this are continuous (binned, or drawn as a scatter).
MAX_LEVELS = 8
#: Why a completed trial is left out of the table when it has no value of the study metric.
NO_METRIC = "completed without a value of the metric"


def metric_direction(metric: str, *, study_metric: str | None = None, study_direction: str | None = None) -> str:
    """``maximize`` or ``minimize`` for a column: the study's own direction for its metric,
    else the metric table's."""
    if metric == study_metric and study_direction:
        return study_direction
    return default_direction(metric)


def metric_range(metric: str) -> tuple[float, float]:
    """The values a metric can take (intervals of its means are clipped to them): [0, 1] for
    accuracies, [0, inf) for losses and times, as the metric table says."""
    if metric in METRICS:
        m = METRICS.get(metric, where="report")
        return float(m.low), float(m.high)
    return -math.inf, math.inf


def clipped_to_range(interval: tuple[float, float], metric: str) -> tuple[float, float]:
    """An interval of a mean within the values the metric can take (an accuracy's within [0, 1]);
    NaN (no interval) stays NaN."""
    low, high = metric_range(metric)
    return float(np.clip(interval[0], low, high)), float(np.clip(interval[1], low, high))


def check_metric(metric: str, trials: pd.DataFrame, *, study: str) -> None:
    """Raise :class:`StudyError` unless ``metric`` is a metric column with at least one value
    among the completed trials."""
    done = completed_trials(trials)
    # Read now, not at import: the study's own metrics join the table when its data is loaded.
    rankable = metric_names(rankable=True)
    available = [m for m in rankable if m in done.columns and done[m].notna().any()]
    if metric not in available:
        known = metric in rankable
        what = "has no value in any completed trial" if known else "is not a recorded metric"
        raise StudyError(
            f"study {study!r}: --metric {metric!r} {what}; "
            f"allowed: {', '.join(available) or ', '.join(rankable)}"
        )


def completed_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that count in a statistic: status ``completed``."""
    return trials[trials["status"] == COMPLETED]


def counted_trials(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Completed trials with a value of ``metric``: the ones every statistic of a report uses.

    A completed trial without the metric (NULL, NaN) is missing for every column of its row,
    not only for the metric's, so all cells of a row describe the same replicates.
    """
    done = completed_trials(trials)
    return done[done[metric].notna()]


def excluded_counts(trials: pd.DataFrame, metric: str | None = None) -> dict[str, int]:
    """How many trials each reason leaves out: non-completed statuses (failed, pruned, queued,
    running) and, given ``metric``, completed trials without its value."""
    counts = trials.loc[trials["status"] != COMPLETED, "status"].value_counts()
    out = {str(k): int(v) for k, v in counts.items()}
    if metric is not None and metric in trials.columns:
        missing = int(((trials["status"] == COMPLETED) & trials[metric].isna()).sum())
        if missing:
            out[NO_METRIC] = missing
    return out


def hashable_factors(trials: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """Factor columns holding lists or dicts (``lr_groups``, coupled JSON levels) as their JSON
    text, so they can be grouped and compared like any other level."""
    out = trials
    for f in factors:
        col = trials[f]
        if col.dtype == object and col.map(lambda v: isinstance(v, (list, dict))).any():
            out = out.copy() if out is trials else out
            out[f] = col.map(lambda v: _json_level(v) if isinstance(v, (list, dict)) else v)
    return out


def split_factors(trials: pd.DataFrame, factors: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """The factors whose value differs between trials, and the constant ones with their value."""
    varying: list[str] = []
    constants: dict[str, Any] = {}
    for f in factors:
        values = trials[f].drop_duplicates()
        if len(values) > 1:
            varying.append(f)
        elif len(values) == 1:
            constants[f] = plain_value(values.iloc[0])
    return varying, constants


def plain_value(value: Any) -> Any:
    """numpy scalars to Python ones, NaN to None: what labels, JSON and optuna expect."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def format_level(value: Any) -> str:
    """A factor level as a short label: 0.05, 128, True, heavy."""
    value = plain_value(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return _json_level(value)
    return str(value)


def _json_level(value: Any) -> str:
    """A list or dict level as text: an augment_ops list as ``crop(padding=4) > hflip()``, any
    other as its JSON."""
    return describe_ops(value) or json.dumps(value, sort_keys=True)


def formatted_levels(values: pd.Series) -> list[str]:
    """``format_level`` of every value, computing each distinct value's text once."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    texts = [format_level(u) for u in uniques]
    missing = format_level(math.nan)
    return [texts[c] if c >= 0 else missing for c in codes]


def sorted_levels(values: Iterable[Any]) -> list[Any]:
    values = list(values)
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=format_level)


def level_order(data: pd.DataFrame, factor: str) -> list[str]:
    """Display order of a factor's levels (as labels): numbers ascending, anything else in the
    order the study declared them, which is the order of their first trial."""
    col = data[factor]
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return [format_level(v) for v in sorted_levels(col.drop_duplicates())]
    if "number" in data.columns:
        col = data.sort_values("number")[factor]
    return list(dict.fromkeys(format_level(v) for v in col))


def is_continuous(values: pd.Series) -> bool:
    """A numeric factor with more distinct values than :data:`MAX_LEVELS` (a sampled learning rate)."""
    return (
        pd.api.types.is_numeric_dtype(values)
        and not pd.api.types.is_bool_dtype(values)
        and values.nunique() > MAX_LEVELS
    )


def levels_of(values: pd.Series) -> pd.Series:
    """Group keys for a factor: its levels, or, for a continuous factor, 5 quantile bins named
    by the smallest and largest value they hold (an ordered categorical)."""
    if is_continuous(values):
        bins = pd.qcut(values, q=5, duplicates="drop")
        spans = values.groupby(bins, observed=True).agg(["min", "max"])
        # qcut's own edges reach below the smallest value (-0.0009 for a learning rate): name
        # each bin by the values in it instead.
        names = {b: f"{lo:.2g} – {hi:.2g}" for b, (lo, hi) in spans.iterrows()}
        if len(set(names.values())) < len(names):  # tiny spans print alike: number them
            names = {b: f"{i + 1}: {name}" for i, (b, name) in enumerate(names.items())}
        labels = [names[b] for b in spans.index]
        return pd.Series(pd.Categorical(bins.map(names), categories=labels, ordered=True), index=values.index)
    return values


def first_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: its earliest trial (lowest number), for factor values and order."""
    return trials.sort_values("number").drop_duplicates("config_hash").set_index("config_hash")
