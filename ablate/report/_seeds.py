"""The seed-aware view of a study: per configuration, what its seeds gave and which still run.

Replicates are not independent configurations, so the report shows them grouped: per
configuration the seeds done out of those planned, the mean with its 95 % t interval over the
done seeds, and the seeds still running or queued (a report written while the study runs shows
what has finished so far). :func:`trial_sections` lists each configuration's trials, with every
trial's per-epoch curve, for the page's per-row sections. Data only; ``_plots`` and ``_html``
draw and write it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ablate.errors import StudyError
from ablate.report._stats import t_interval
from ablate.report._table import AblationTable
from ablate.report._trials import COMPLETED, clipped_to_range, counted_trials

#: The level of the seed view's intervals (each configuration alone, not a family of tests).
SEED_LEVEL = 0.95
#: Statuses of a trial that has not finished yet, in the order the view names them.
UNFINISHED = ("running", "queued")
#: The per-epoch series a trial's curve shows when the metric has none of its own (test_acc,
#: best_val_acc are final values): the validation series of the same kind.
FALLBACK_SERIES = {"maximize": "val_acc", "minimize": "val_loss"}


def seed_view(table: AblationTable, trials: pd.DataFrame, *, level: float = SEED_LEVEL) -> pd.DataFrame:
    """One row per configuration of ``table`` (its order): the seeds counted and planned, the
    mean of the metric over the counted seeds and its Student-t interval at ``level``.

    Columns: ``config_hash``, ``label``, ``is_baseline``, ``planned`` (trials of the
    configuration, one per seed), ``done`` (completed with a value of the metric: the seeds
    every statistic uses), one count per status (``queued``, ``running``, ``completed``,
    ``failed``, ``pruned``), ``mean``, ``ci_low``, ``ci_high`` (NaN for fewer than 2 done seeds:
    no interval), ``values`` and ``seeds`` (the done seeds' values, seed order) and ``state``
    (what the row is waiting for, in words).
    """
    metric = table.metric
    done = counted_trials(trials, metric).sort_values("seed")
    # Positions per configuration, not sub-frames (as the ablation table does).
    values_of, seeds_of = done[metric].to_numpy(dtype=float), done["seed"].to_numpy(dtype=int)
    by_config = {h: (values_of[i], seeds_of[i]) for h, i in done.groupby("config_hash", sort=False).indices.items()}
    counts = trials.groupby(["config_hash", "status"]).size().unstack(fill_value=0)
    counted = {s: counts[s].to_dict() if s in counts.columns else {}
               for s in ("queued", "running", COMPLETED, "failed", "pruned")}
    rows = []
    for h, label, is_base in zip(table.rows["config_hash"], table.rows["label"], table.rows["is_baseline"],
                                 strict=True):
        values, seeds = by_config.get(h, (np.empty(0), np.empty(0, dtype=int)))
        status = {s: int(of.get(h, 0)) for s, of in counted.items()}
        low, high = clipped_to_range(t_interval(values, level), metric)
        rows.append({
            "config_hash": h,
            "label": label,
            "is_baseline": bool(is_base),
            "planned": sum(status.values()),
            "done": len(values),
            **status,
            "mean": float(values.mean()) if len(values) else math.nan,
            "ci_low": low,
            "ci_high": high,
            "values": values.tolist(),
            "seeds": seeds.tolist(),
            "state": seed_state(status, len(values)),
        })
    columns = ["config_hash", "label", "is_baseline", "planned", "done", "queued", "running", COMPLETED,
               "failed", "pruned", "mean", "ci_low", "ci_high", "values", "seeds", "state"]
    return pd.DataFrame(rows, columns=columns)


def seed_state(status: Mapping[str, int], done: int) -> str:
    """A configuration's progress in words: "2 running, 1 queued", or "finished" (with what
    was left out: "finished; 1 failed")."""
    waiting = [f"{status[s]} {s}" for s in UNFINISHED if status.get(s)]
    lost = [f"{status[s]} {s}" for s in ("failed", "pruned") if status.get(s)]
    missing = status.get(COMPLETED, 0) - done
    if missing > 0:
        lost.append(f"{missing} without the metric")
    if waiting:
        return ", ".join(waiting + lost)
    return "finished" + ("; " + ", ".join(lost) if lost else "")


def seeds_caption(metric_label: str) -> str:
    """What the seed view's numbers are, for the figure's caption and the table's note."""
    return (f"{metric_label} of every done seed (dots) and their mean (diamond) with its 95 % Student-t interval "
            "over the seeds (bar: mean ± t(0.975, n - 1) · s / √n for that configuration alone, not adjusted for "
            "the comparisons of the ablation table, clipped to the metric's range); a configuration with one done seed has no interval. Beside "
            "each name: seeds done of planned, and those still running or queued when the report was written.")


def interval_text(mean: float, low: float, high: float, done: int, digits: int = 3) -> str:
    """``0.712 [0.701, 0.723]``; one seed has no interval and says so in words."""
    if done == 0:
        return "no seed done yet"
    text = f"{mean:.{digits}f}"
    if done == 1:
        return text + " (n = 1: no interval)"
    if math.isnan(low):
        return text
    return f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


# ---------------------------------------------------------------------- per-row sections
@dataclass
class ConfigTrials:
    """One configuration's trials for its section of the page: what sets it apart from the
    others (``settings``), and per trial (``trials``: number, seed, status, the metric, epochs
    run, worker, error) its curve of ``series`` per epoch (``curves``: trial id -> (epochs,
    values)). ``low``/``high`` span every curve of the configuration, so its seeds share a scale."""

    config_hash: str
    label: str
    settings: dict[str, Any]
    trials: list[dict[str, Any]]
    series: str | None
    curves: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    low: float = math.nan
    high: float = math.nan


def trial_curves(
    metric: str,
    direction: str,
    *,
    epochs: pd.DataFrame | None = None,
    read: Callable[[str], pd.DataFrame] | None = None,
) -> tuple[str | None, pd.DataFrame | None]:
    """The per-epoch series every trial's curve shows, and its rows (trial_id, epoch, series):
    the metric's own when it is recorded per epoch, else the validation accuracy (or loss, for
    a metric minimised). ``read`` reads one column of the store (the whole study); without it
    the rows come from ``epochs``."""
    for name in dict.fromkeys((metric, FALLBACK_SERIES.get(direction, "val_acc"), "val_acc", "val_loss")):
        if read is not None:
            try:
                rows = read(name)
            except StudyError:  # not a per-epoch column of the store (test_acc is final only)
                continue
        elif epochs is not None and name in epochs.columns:
            rows = epochs.loc[epochs[name].notna(), ["trial_id", "epoch", name]]
        else:
            continue
        if not rows.empty:
            return name, rows
    return None, None


TRIAL_COLUMNS = ("trial_id", "number", "seed", "status", "epochs_run", "worker", "error")


def trial_sections(
    table: AblationTable, trials: pd.DataFrame, series: str | None = None, epochs: pd.DataFrame | None = None
) -> list[ConfigTrials]:
    """Per configuration of ``table`` (its order): its trials by seed, each with its curve of
    ``series`` from ``epochs`` (rows trial_id, epoch, series: :func:`trial_curves`).

    Every trial is listed, whatever its status: a running trial shows the epochs it has
    recorded so far, a failed one its error text. ``settings`` holds the stored config's values
    of the varying factors and of the table's ``settings`` (what else differs between
    configurations); every other value is the same in all of them.
    """
    metric = table.metric
    curves: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if series is not None and epochs is not None:
        data = epochs[["trial_id", "epoch", series]].dropna(subset=[series]).sort_values(["trial_id", "epoch"])
        ids = data["trial_id"].to_numpy(dtype=int)
        e, v = data["epoch"].to_numpy(dtype=float), data[series].to_numpy(dtype=float)
        # One pass over sorted rows: cut at each change of trial id (groupby over 2,000 trials
        # builds 2,000 frames).
        cuts = np.flatnonzero(np.diff(ids)) + 1
        for start, stop in zip(np.r_[0, cuts], np.r_[cuts, len(ids)], strict=True):
            if stop > start:
                curves[int(ids[start])] = (e[start:stop], v[start:stop])
    columns = [c for c in (*TRIAL_COLUMNS, metric) if c in trials.columns]
    ordered = trials.sort_values(["seed", "number"])
    # Plain records grouped by hand: a groupby of 2,000 configurations builds 2,000 frames.
    groups: dict[str, list[dict[str, Any]]] = {}
    for h, record in zip(ordered["config_hash"], ordered[columns].to_dict("records"), strict=True):
        groups.setdefault(h, []).append(record)
    configs = trials.drop_duplicates("config_hash").set_index("config_hash")["config"] if "config" in trials else None
    # What tells configurations apart: the factors that vary and the settings coupled to them;
    # everything else is the same in every configuration (stated once on the page).
    shown = [*table.factors, *table.settings]
    sections = []
    for h, label in zip(table.rows["config_hash"], table.rows["label"], strict=True):
        rows = groups.get(h, [])
        own = {int(r["trial_id"]): curves[int(r["trial_id"])] for r in rows if int(r["trial_id"]) in curves}
        every = [c[1] for c in own.values()]
        low = float(min(v.min() for v in every)) if every else math.nan
        high = float(max(v.max() for v in every)) if every else math.nan
        config = (configs.get(h) if configs is not None else None) or {}
        settings = {k: config[k] for k in shown if k in config}
        sections.append(ConfigTrials(str(h), str(label), settings, rows, series, own, low, high))
    return sections


def chosen_rows(view: pd.DataFrame, direction: str, limit: int) -> pd.DataFrame:
    """At most ``limit`` rows of the seed view for its figure: the baseline, the configurations
    still running, then the best by mean, in the table's order."""
    if len(view) <= limit:
        return view
    ranked = view.sort_values("mean", ascending=direction == "minimize", na_position="last")
    pending = view[(view["running"] > 0) | (view["queued"] > 0)]
    keep = list(dict.fromkeys([*view.loc[view["is_baseline"], "config_hash"], *pending["config_hash"],
                               *ranked["config_hash"]]))[:limit]
    return view[view["config_hash"].isin(keep)]


def seeds_worth_drawing(view: pd.DataFrame) -> bool:
    """A figure of seeds is worth drawing when some configuration plans more than one."""
    return bool(len(view)) and int(view["planned"].max()) > 1

