"""The data behind the figures that are not statistics: learning curves, parallel coordinates,
cost against accuracy and compute spent. Drawing functions in ``_plots`` only draw these."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ablate.metrics import metric_names
from ablate.report._trials import MAX_LEVELS, format_level, level_order, levels_of

if TYPE_CHECKING:
    from ablate.report._table import AblationTable

#: Per-epoch series drawn as learning curves.
CURVE_SERIES = metric_names(curve=True)


# ------------------------------------------------------------------------- learning curves
def learning_curves(
    epochs: pd.DataFrame,
    completed: pd.DataFrame,
    *,
    configs: Sequence[str] | None = None,
    series: Sequence[str] = CURVE_SERIES,
) -> pd.DataFrame:
    """Per configuration and epoch: mean, std and n over seeds of each per-epoch series.

    Long format: ``config_hash``, ``series`` (train_acc, val_acc, ...), ``epoch``, ``mean``,
    ``std``, ``n``. Only completed trials; ``configs`` restricts to those config hashes.
    """
    keep = set(completed["trial_id"])
    data = epochs[epochs["trial_id"].isin(keep)]
    if configs is not None:
        data = data[data["config_hash"].isin(list(configs))]
    series = [s for s in series if s in data.columns and data[s].notna().any()]
    if data.empty or not series:
        return pd.DataFrame(columns=["config_hash", "series", "epoch", "mean", "std", "n"])
    g = data.groupby(["config_hash", "epoch"], sort=True)[series]
    agg = g.agg(["mean", "std", "count"])
    parts = []
    for s in series:
        part = agg[s].reset_index().rename(columns={"count": "n"})
        part.insert(1, "series", s)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)[["config_hash", "series", "epoch", "mean", "std", "n"]]


# -------------------------------------------------------------------- parallel coordinates
#: Parallel coordinates draw at most this many configurations: beyond a few hundred lines the
#: plot is a solid band, and drawing 2,000 costs more than the rest of the figure.
MAX_PARALLEL_LINES = 200


@dataclass
class ParallelCoordinates:
    """Configurations as polylines: ``lines`` holds one [0, 1] column per axis plus ``value``.

    ``axes`` names the axes in order (factors, then the metric); ``ticks`` gives, per axis, the
    positions and labels to print along it. ``total`` counts the configurations with a value;
    when more than ``lines`` holds, ``chosen`` says which were kept (for the caption).
    """

    lines: pd.DataFrame
    axes: list[str]
    ticks: dict[str, list[tuple[float, str]]]
    metric: str
    total: int = 0
    chosen: str = ""


def parallel_coordinates(
    table: AblationTable,
    factors: Sequence[str] | None = None,
    *,
    max_lines: int = MAX_PARALLEL_LINES,
    seed: int = 0,
) -> ParallelCoordinates:
    """Scale each factor of the ablation table's rows (means over seeds) onto a [0, 1] axis.

    Categorical levels are spread evenly in sorted order; numbers are min-max scaled, on a log
    scale when they are positive and span more than a factor of 20 (learning rates). Axes span
    every configuration; beyond ``max_lines`` configurations only these are kept as lines: the
    best quarter of ``max_lines``, the worst eighth, and the rest a seeded random sample of the
    configurations in between.
    """
    rows = table.rows[table.rows[f"{table.metric}_mean"].notna()]
    factors = list(factors if factors is not None else table.factors)
    lines = pd.DataFrame({"config_hash": rows["config_hash"].to_numpy()})
    ticks: dict[str, list[tuple[float, str]]] = {}
    for f in factors:
        scaled, ticks[f] = _scale_axis(rows[f])
        lines[f] = scaled
    metric_values = rows[f"{table.metric}_mean"].to_numpy(dtype=float)
    # Evenly spaced ticks on the metric axis: one per value would overlap when values are close.
    scaled, ticks[table.metric] = _scale_axis(pd.Series(metric_values), numeric_ticks=5, every_level=False)
    lines[table.metric] = scaled
    lines["value"] = metric_values
    total, chosen = len(lines), ""
    if total > max_lines:
        # Rank 0 is the best configuration.
        order = np.argsort(-metric_values if table.direction == "maximize" else metric_values, kind="stable")
        n_best, n_worst = max_lines // 4, max_lines // 8
        middle = order[n_best : total - n_worst]
        sampled = np.random.default_rng(seed).choice(middle, size=max_lines - n_best - n_worst, replace=False)
        keep = np.sort(np.concatenate([order[:n_best], order[total - n_worst :], sampled]))
        lines = lines.iloc[keep].reset_index(drop=True)
        chosen = (f"{max_lines} of the {total:,} configurations: the {n_best} best, the {n_worst} worst "
                  f"and {len(sampled)} drawn at random (seeded) from the rest")
    return ParallelCoordinates(lines=lines, axes=[*factors, table.metric], ticks=ticks, metric=table.metric,
                               total=total, chosen=chosen)


def log_scale(values: np.ndarray) -> bool:
    """Whether positive values are better shown on a log axis: they span more than 20x and are
    less skewed in log space (a learning rate drawn log-uniformly), unlike a dropout in (0, 0.5)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2 or x.min() <= 0 or x.max() / x.min() <= 20:
        return False

    def skew(v: np.ndarray) -> float:
        sd = v.std()
        return 0.0 if sd == 0 else float(np.mean(((v - v.mean()) / sd) ** 3))

    return abs(skew(np.log10(x))) < abs(skew(x))


def _scale_axis(
    values: pd.Series, numeric_ticks: int = 4, every_level: bool = True
) -> tuple[np.ndarray, list[tuple[float, str]]]:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        x = values.to_numpy(dtype=float)
        if log_scale(x):
            x = np.log10(x)
            fmt = lambda v: f"{10 ** v:.3g}"  # noqa: E731
        else:
            fmt = lambda v: f"{v:.3g}"  # noqa: E731
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)
        if every_level and values.nunique() <= MAX_LEVELS:
            marks = sorted(set(x.tolist()))
        else:
            marks = list(np.linspace(lo, hi, numeric_ticks))
        span = hi - lo or 1.0
        offset = 0.5 if hi == lo else 0.0
        return (x - lo) / span + offset, [((m - lo) / span + offset, fmt(m)) for m in marks]
    labels = list(dict.fromkeys(format_level(v) for v in values))
    pos = {lab: (i / (len(labels) - 1) if len(labels) > 1 else 0.5) for i, lab in enumerate(labels)}
    return values.map(lambda v: pos[format_level(v)]).to_numpy(dtype=float), [(pos[lab], lab) for lab in labels]


# --------------------------------------------------------------------------------- cost
def pareto_front(cost: Sequence[float], value: Sequence[float], direction: str) -> np.ndarray:
    """Which points no other point beats: no more cost and at least as good, one strictly."""
    c = np.asarray(cost, dtype=float)
    v = np.asarray(value, dtype=float)
    if direction == "minimize":
        v = -v
    front = np.zeros(len(c), dtype=bool)
    best = -math.inf
    # Cheapest first (ties: best value first); a point is on the front if it beats every cheaper one.
    for i in np.lexsort((-v, c)):
        if np.isnan(c[i]) or np.isnan(v[i]):
            continue
        if v[i] > best:
            front[i] = True
            best = v[i]
    return front


def cost_table(table: AblationTable, completed: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: mean training time (s), images/s, the metric, and Pareto membership."""
    data = completed[completed[table.metric].notna()]
    cols = {"duration_s": "time_s", "images_per_s": "images_per_s", table.metric: "value"}
    present = [c for c in cols if c in data.columns]
    agg = data.groupby("config_hash")[present].mean().rename(columns=cols)
    rows = table.rows.set_index("config_hash")
    out = agg.reindex([h for h in rows.index if h in agg.index])
    out.insert(0, "label", rows.loc[out.index, "label"])
    if "time_s" in out.columns:
        out["pareto"] = pareto_front(out["time_s"], out["value"], table.direction)
    else:
        out["pareto"] = False
    return out.reset_index()


def device_kind(device: Any) -> str:
    """``GPU`` for CUDA/MPS devices, ``CPU`` otherwise (names as the trainer records them)."""
    text = str(device or "").lower()
    return "GPU" if any(k in text for k in ("cuda", "gpu", "nvidia", "mps", "rocm")) else "CPU"


def compute_hours(trials: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """Device hours spent per factor level and device kind, counting every trial that ran.

    Failed and pruned trials cost compute too, so they are included (unlike in the table).
    Columns: ``factor``, ``level``, ``device`` (GPU/CPU), ``hours``, ``trials``.
    """
    ran = trials[trials["duration_s"].notna()]
    if ran.empty:
        return pd.DataFrame(columns=["factor", "level", "device", "hours", "trials"])
    # The store renames the trial's device column when a factor is called "device".
    column = "trial_device" if "trial_device" in ran.columns else "device"
    kinds = ran[column].map(device_kind) if column in ran.columns else pd.Series("CPU", index=ran.index)
    parts = []
    for f in factors:
        keys = levels_of(ran[f])
        g = ran.assign(_level=keys, _device=kinds).groupby(["_level", "_device"], observed=True, sort=True)
        agg = g["duration_s"].agg(["sum", "count"]).reset_index()
        if not isinstance(keys.dtype, pd.CategoricalDtype):
            rank = {lv: i for i, lv in enumerate(level_order(ran, f))}
            agg = agg.iloc[np.argsort([rank[format_level(k)] for k in agg["_level"]], kind="stable")]
        parts.append(
            pd.DataFrame(
                {
                    "factor": f,
                    "level": [format_level(k) for k in agg["_level"]],
                    "device": agg["_device"].to_numpy(),
                    "hours": agg["sum"].to_numpy(dtype=float) / 3600.0,
                    "trials": agg["count"].to_numpy(dtype=int),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)
