"""The ablation table: one row per configuration, mean ± std over seeds, and the comparison
with a baseline declared before the results.

    table = ablation_table(trials, factors=["model", "lr"], metric="val_acc", direction="maximize")
    table.rows[["model", "lr", "n", "val_acc_mean", "val_acc_std", "diff", "p_adjusted"]]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ablate.errors import StudyError
from ablate.report._stats import (
    ALPHA,
    NO_DATA,
    TESTS,
    Comparison,
    adjust_family,
    compare_to_baseline,
    family_alpha,
    significant,
)
from ablate.report._trials import (
    COMPLETED,
    TABLE_METRICS,
    counted_trials,
    excluded_counts,
    first_rows,
    format_level,
    formatted_levels,
    hashable_factors,
    metric_direction,
    plain_value,
    sorted_levels,
    split_factors,
)
from ablate.study import DESIGNS

#: ``--baseline best``: the best row, picked after the results (labelled post hoc).
BEST = "best"
ADAPTIVE = tuple(name for name, design in DESIGNS.items() if design.adaptive)


@dataclass
class AblationTable:
    """The ablation table: one row per configuration, and what a reader needs to interpret it.

    ``rows`` holds ``config_hash``, ``label``, the varying factors, ``settings`` (the stored
    config values that differ between configurations besides the factors, e.g. a learning rate
    coupled to the model), ``n`` (counted seeds), ``seeds``, ``excluded`` (trials of this
    configuration left out), ``<m>_mean``, ``<m>_std``, ``<m>_n`` and ``<m>_diff`` for every
    metric in ``metrics``, and for the study metric ``diff``, ``ci_low``/``ci_high``
    (simultaneous interval of the test that ran), ``p_value``, ``p_adjusted`` (Bonferroni),
    ``detectable`` (smallest |Δ| the test detects with 80 % power), ``test``, ``significant``
    and ``is_baseline``. ``per_seed`` holds every replicate's value of the metric.
    """

    rows: pd.DataFrame
    metric: str
    direction: str
    metrics: list[str]
    factors: list[str]
    constants: dict[str, Any]
    baseline: str | None
    baseline_reason: str
    excluded: dict[str, int]
    seeds: list[int] = field(default_factory=list)
    n_tests: int = 0
    alpha: float = ALPHA
    post_hoc: bool = False
    settings: list[str] = field(default_factory=list)
    per_seed: pd.DataFrame = field(default_factory=pd.DataFrame)

    def best(self, column: str) -> set[str]:
        """Config hashes holding the best mean of ``column`` (ties all count)."""
        values = self.rows[f"{column}_mean"]
        if values.notna().sum() == 0:
            return set()
        direction = metric_direction(column, study_metric=self.metric, study_direction=self.direction)
        target = values.min() if direction == "minimize" else values.max()
        return set(self.rows.loc[np.isclose(values, target, rtol=0, atol=1e-12), "config_hash"])

    @property
    def baseline_row(self) -> pd.Series | None:
        if self.baseline is None:
            return None
        return self.rows.set_index("config_hash").loc[self.baseline]

    @property
    def tests_used(self) -> list[str]:
        return sorted(t for t in set(self.rows["test"]) if t in TESTS)

    @property
    def interval_level(self) -> float:
        """Confidence level of each row's interval: 1 - alpha / (number of tests)."""
        return 1 - family_alpha(self.n_tests, self.alpha)


def parse_baseline(text: str) -> dict[str, str] | str:
    """``"image_size=128,augment=none"`` -> ``{"image_size": "128", "augment": "none"}``;
    ``"best"`` stays ``"best"`` (the post-hoc choice)."""
    if text.strip() == BEST:
        return BEST
    result: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise StudyError(
                f"--baseline {text!r}: expected key=value pairs separated by commas (or 'best'), got {part!r}"
            )
        result[key.strip()] = value.strip()
    return result


def _same_level(level: Any, wanted: Any) -> bool:
    level = plain_value(level)
    if not isinstance(wanted, str):
        return bool(level == wanted) or format_level(level) == format_level(wanted)
    if isinstance(level, bool):
        return wanted.lower() in (("true", "1", "yes") if level else ("false", "0", "no"))
    if isinstance(level, (int, float)):
        try:
            return math.isclose(float(wanted), float(level), rel_tol=1e-9, abs_tol=0.0)
        except ValueError:
            return False
    return str(level) == wanted or format_level(level) == wanted or (level is None and wanted.lower() == "none")


def find_config(
    first: pd.DataFrame, levels: Mapping[str, Any], *, factors: Sequence[str], what: str = "--baseline"
) -> str:
    """The config hash whose factor values match ``levels`` (strings from the CLI or real values)."""
    mask = pd.Series(True, index=first.index)
    for key, wanted in levels.items():
        if key not in factors:
            raise StudyError(f"{what} names {key!r}, which is not a factor; factors: {', '.join(factors)}")
        hits = first[key].map(lambda v, w=wanted: _same_level(v, w))
        if not hits.any():
            allowed = ", ".join(format_level(v) for v in sorted_levels(first[key].drop_duplicates()))
            raise StudyError(f"{what} {key}={format_level(wanted)} is not one of its levels ({allowed})")
        mask &= hits.astype(bool)
    matched = list(first.index[mask])
    text = ",".join(f"{k}={format_level(v)}" for k, v in levels.items())
    if not matched:
        raise StudyError(f"{what} {text} matches no configuration of the study (not planned: excluded by its design or "
                         "constraints); "
                         "declare another baseline= in the study or pass --baseline")
    if len(matched) > 1:
        missing = [f for f in factors if f not in levels and first.loc[matched, f].nunique() > 1]
        raise StudyError(f"{what} {text} matches {len(matched)} configurations; also give: {', '.join(missing)}")
    return str(matched[0])


def config_labels(first: pd.DataFrame, varying: Sequence[str], baseline: Mapping[str, Any] | None) -> pd.Series:
    """Short row names: ``lr=0.1, model=resnet18``; for OFAT only what differs from the baseline."""
    # Each distinct level is formatted once (iterrows over 2,000 configurations took 0.5 s).
    texts = {f: formatted_levels(first[f]) for f in varying}
    labels = []
    for i in range(len(first)):
        if baseline is not None:
            changed = [f for f in varying if texts[f][i] != format_level(baseline[f])]
            labels.append("baseline" if not changed else ", ".join(f"{f}={texts[f][i]}" for f in changed))
        else:
            labels.append(", ".join(f"{f}={texts[f][i]}" for f in varying) or "all trials")
    return pd.Series(labels, index=first.index, dtype=object)


def config_settings(
    first: pd.DataFrame, factors: Sequence[str], base: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """What ran, from the trials' stored configs: the settings every configuration shares
    (restricted to what the study's ``base`` names, plus anything that varies), and per
    configuration the settings besides the factors that differ between configurations
    (a learning rate coupled to the model, a batch size coupled to the image size).
    """
    if "config" not in first.columns:
        return dict(base or {}), {}
    configs = {h: dict(c) if isinstance(c, Mapping) else {} for h, c in first["config"].items()}
    keys = list(dict.fromkeys(k for c in configs.values() for k in c))
    skip = {*factors, "seed"}
    constants: dict[str, Any] = {}
    varying: list[str] = []
    for key in keys:
        if key in skip:
            continue
        if len(_distinct(c.get(key) for c in configs.values())) > 1:
            varying.append(key)
        elif base is None or key in base:
            constants[key] = next(iter(configs.values())).get(key)
    per_config = {h: {k: c.get(k) for k in varying} for h, c in configs.items()}
    return constants, per_config


def _distinct(values: Iterable[Any]) -> set[Any]:
    """The distinct values of one config key; lists and dicts by their JSON text (hashing plain
    values first: JSON for every key of 2,000 configs took seconds)."""
    values = list(values)
    try:
        return {(type(v), v) for v in values}
    except TypeError:
        return {json.dumps(v, sort_keys=True, default=str) for v in values}


def _settings_text(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={format_level(v)}" for k, v in settings.items())


def ablation_table(
    trials: pd.DataFrame,
    *,
    factors: Sequence[str],
    metric: str,
    direction: str,
    design: str = "grid",
    baseline: Mapping[str, Any] | str | None = None,
    study_baseline: Mapping[str, Any] | None = None,
    declared_levels: Mapping[str, Sequence[Any]] | None = None,
    base: Mapping[str, Any] | None = None,
    metrics: Sequence[str] = TABLE_METRICS,
    alpha: float = ALPHA,
) -> AblationTable:
    """One row per configuration with mean, std, n over seeds and the comparison to the baseline.

    The baseline is chosen before the results: ``baseline`` when given (``{factor: level}``,
    levels as strings or values), else the study's declared ``study_baseline``, else the first
    declared level of each factor (``declared_levels``; without them, the first planned
    configuration, which for a grid or OFAT plan is the same), and for random/TPE searches the
    first trial. ``baseline="best"`` picks the best row by ``metric`` after the fact; the table
    then says so (its p-values are optimistic). Only completed trials with a value of ``metric``
    count; the others are counted in ``excluded`` (per reason) and per row.
    """
    if trials.empty:
        raise StudyError("the study has no trials yet; run it first (ablate run)")
    factors = [f for f in factors if f in trials.columns]
    trials = hashable_factors(trials, factors)
    varying, constants = split_factors(trials, factors)
    metrics = [m for m in dict.fromkeys([*metrics, metric]) if m in trials.columns]
    done = counted_trials(trials, metric)
    if done.empty:
        counts = ", ".join(f"{v} {k}" for k, v in excluded_counts(trials, metric).items())
        raise StudyError(f"no completed trials with a value of {metric} to report ({counts})")
    metrics = [m for m in metrics if done[m].notna().any() or m == metric]

    first = first_rows(trials)
    # Positions per configuration, not sub-frames: slicing 400 frames costs more than the tests.
    positions = done.groupby("config_hash", sort=False).indices
    values = done[metric].to_numpy(dtype=float)
    seeds_of = done["seed"].to_numpy()
    groups = {h: (values[i], seeds_of[i]) for h, i in positions.items()}
    left_out = trials[(trials["status"] != COMPLETED) | trials[metric].isna()].groupby("config_hash").size()

    # Columns gathered in a dict and framed once: 40 column inserts into a growing frame cost
    # half a second on the demo study.
    hashes = [str(h) for h in first.index]
    cols: dict[str, Any] = {"config_hash": hashes, "first_number": first["number"].to_numpy()}
    for f in varying:
        cols[f] = first[f].to_numpy()
    setting_constants, per_config = config_settings(first, factors, base)
    settings = list(next(iter(per_config.values()), {}))
    if settings:
        cols["settings"] = [_settings_text(per_config.get(h, {})) for h in first.index]
    cols["n"] = np.asarray([len(groups[h][0]) if h in groups else 0 for h in first.index], dtype=int)
    cols["seeds"] = [",".join(str(s) for s in sorted(groups[h][1])) if h in groups else "" for h in first.index]
    cols["excluded"] = left_out.reindex(first.index, fill_value=0).to_numpy(dtype=int)
    stats = done.groupby("config_hash")[metrics].agg(["mean", "std", "count"]).reindex(first.index)
    for m in metrics:
        cols[f"{m}_mean"] = stats[(m, "mean")].to_numpy(dtype=float)
        cols[f"{m}_std"] = stats[(m, "std")].to_numpy(dtype=float)
        cols[f"{m}_n"] = stats[(m, "count")].fillna(0).to_numpy(dtype=int)
    summary = pd.DataFrame({"config_hash": hashes, "n": cols["n"], f"{metric}_mean": cols[f"{metric}_mean"]})

    base_hash, reason, post_hoc = _choose_baseline(
        summary, first, factors=factors, varying=varying, constants=constants, metric=metric, direction=direction,
        design=design, baseline=baseline, study_baseline=study_baseline, declared_levels=declared_levels,
    )
    base_levels = {f: first.loc[base_hash, f] for f in varying} if design == "ofat" else None
    is_base = np.asarray([h == base_hash for h in hashes])
    cols["is_baseline"] = is_base

    # ---- differences and tests against the baseline
    for m in metrics:
        cols[f"{m}_diff"] = cols[f"{m}_mean"] - cols[f"{m}_mean"][is_base][0]
    base_values, base_seeds = groups[base_hash]
    others = [h for h in hashes if h != base_hash]
    raw = [compare_to_baseline(groups[h][0], list(groups[h][1]), base_values, list(base_seeds))
           if h in groups else Comparison(math.nan, NO_DATA, 0, len(base_values)) for h in others]
    found = dict(zip(others, adjust_family(raw, alpha), strict=True))
    comparisons = [found.get(h) for h in hashes]
    for column in ("diff", "ci_low", "ci_high", "p_value", "p_adjusted", "detectable"):
        cols[column] = np.asarray([0.0 if c is None and column == "diff" else math.nan if c is None
                                   else getattr(c, column) for c in comparisons], dtype=float)
    cols["test"] = ["baseline" if c is None else c.test for c in comparisons]
    cols["significant"] = np.asarray([c is not None and significant(c, alpha) for c in comparisons], dtype=bool)
    labels = config_labels(first, varying, base_levels).to_numpy()
    rows = pd.DataFrame({"config_hash": hashes, "label": labels, **{k: v for k, v in cols.items() if k != "config_hash"}})

    if design in ADAPTIVE:
        # Adaptive designs have no meaningful declaration order: rank by the metric instead.
        rows = rows.sort_values(f"{metric}_mean", ascending=direction == "minimize", na_position="last")
    else:
        rows = rows.sort_values("first_number")
    rows = rows.reset_index(drop=True)
    seeds = sorted(int(s) for s in trials["seed"].drop_duplicates())
    return AblationTable(
        rows=rows,
        metric=metric,
        direction=direction,
        metrics=metrics,
        factors=varying,
        constants={**setting_constants, **constants},
        baseline=base_hash,
        baseline_reason=reason,
        excluded=excluded_counts(trials, metric),
        seeds=seeds,
        n_tests=sum(c is not None and c.tested for c in comparisons),
        alpha=alpha,
        post_hoc=post_hoc,
        settings=settings,
        per_seed=_per_seed(rows, groups, seeds),
    )


def _per_seed(rows: pd.DataFrame, groups: Mapping[str, tuple[np.ndarray, np.ndarray]], seeds: Sequence[int]) -> pd.DataFrame:
    """Every replicate's value of the metric: one row per configuration (the table's order), one
    column per seed (NaN where that seed did not count)."""
    position = {s: i for i, s in enumerate(seeds)}
    grid = np.full((len(rows), len(seeds)), math.nan)
    for r, h in enumerate(rows["config_hash"]):
        if h in groups:
            values, of = groups[h]
            grid[r, [position[int(s)] for s in of]] = values
    out = rows[["config_hash", "label"]].reset_index(drop=True)
    return pd.concat([out, pd.DataFrame(grid, columns=[f"seed {s}" for s in seeds])], axis=1)


def _choose_baseline(
    rows: pd.DataFrame,
    first: pd.DataFrame,
    *,
    factors: Sequence[str],
    varying: Sequence[str],
    constants: Mapping[str, Any],
    metric: str,
    direction: str,
    design: str,
    baseline: Mapping[str, Any] | str | None,
    study_baseline: Mapping[str, Any] | None,
    declared_levels: Mapping[str, Sequence[Any]] | None,
) -> tuple[str, str, bool]:
    """The baseline's config hash, the sentence saying where it comes from, and whether it was
    picked after the results."""
    counted = rows.set_index("config_hash")["n"]
    if baseline == BEST:
        scores = rows.set_index("config_hash")[f"{metric}_mean"]
        best = scores.idxmin() if direction == "minimize" else scores.idxmax()
        return (str(best), f"picked post hoc as the best row by {metric}: its p-values are optimistic and every "
                           "Δ favours it by construction", True)
    known = set(varying) | set(constants)
    if isinstance(baseline, Mapping) and baseline:
        levels, what, reason = dict(baseline), "--baseline", "given by --baseline"
    elif study_baseline:
        levels = {k: v for k, v in study_baseline.items() if k in known}
        what, reason = "the study's baseline", "declared by the study"
    elif design not in ADAPTIVE and declared_levels and all(f in declared_levels for f in varying):
        levels = {f: declared_levels[f][0] for f in varying if declared_levels[f]}
        what, reason = "the default baseline (first declared levels)", "the first declared level of each factor"
    else:
        levels = {}
        what = "the first trial"
        reason = ("the first trial of the search, chosen before any result" if design in ADAPTIVE
                  else "the first planned configuration (the first declared level of each factor)")
    base_hash = str(first["number"].idxmin())
    if levels:
        try:
            base_hash = find_config(first, levels, factors=factors, what=what)
        except StudyError:
            if what != "the default baseline (first declared levels)":
                raise
            # Constraints dropped that combination: the first planned one is still chosen before any result.
            reason = "the first planned configuration (the constraints exclude the first declared levels)"
    if counted.get(base_hash, 0) == 0:
        text = ",".join(f"{f}={format_level(first.loc[base_hash, f])}" for f in varying) or "the only configuration"
        raise StudyError(f"{what} {text} has no completed trial with a value of {metric}; "
                         "pass --baseline to compare against another row")
    return base_hash, reason, False
