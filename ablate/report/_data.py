"""The report's data functions: store DataFrames in, statistics DataFrames out. Nothing is drawn here.

Every number a report shows comes from one of these functions, so a test can check it against
scipy/statsmodels without rendering anything, and a user can re-derive it from the database:

    trials = load_trials("cifar100_sweep")
    table = ablation_table(trials, factors=["model", "lr"], metric="val_acc", direction="maximize")
    table.rows[["model", "lr", "n", "val_acc_mean", "val_acc_std", "diff", "p_holm"]]

Configuration identity is ``config_hash`` (replicates with different seeds share it); only
``completed`` trials enter a statistic, the others are counted and reported as excluded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ablate.errors import StudyError

COMPLETED = "completed"
#: Columns a report may rank configurations by (``--metric``).
METRIC_COLUMNS = (
    "val_acc",
    "val_loss",
    "val_top5",
    "best_val_acc",
    "train_acc",
    "train_loss",
    "test_acc",
    "test_loss",
)
#: Columns of the ablation table, in this order (those without any value are left out).
TABLE_METRICS = ("train_acc", "val_acc", "best_val_acc", "test_acc", "duration_s")
#: Per-epoch series drawn as learning curves.
CURVE_SERIES = ("train_acc", "val_acc", "train_loss", "val_loss")
ALPHA = 0.05
N_RESAMPLES = 9999
#: Numeric factors with more distinct values than this are binned into quantiles for main effects.
MAX_LEVELS = 8


# ------------------------------------------------------------------------------------- helpers
def metric_direction(metric: str, *, study_metric: str | None = None, study_direction: str | None = None) -> str:
    """``maximize`` or ``minimize`` for a column: the study's own direction for its metric."""
    if metric == study_metric and study_direction:
        return study_direction
    return "minimize" if "loss" in metric or metric in ("duration_s", "peak_mem_mb") else "maximize"


def check_metric(metric: str, trials: pd.DataFrame, *, study: str) -> None:
    """Raise :class:`StudyError` unless ``metric`` is a metric column with at least one value."""
    available = [m for m in METRIC_COLUMNS if m in trials.columns and trials[m].notna().any()]
    if metric not in available:
        raise StudyError(
            f"study {study!r}: --metric {metric!r} is not a recorded metric; "
            f"allowed: {', '.join(available) or ', '.join(METRIC_COLUMNS)}"
        )


def completed_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that count in a statistic: status ``completed``."""
    return trials[trials["status"] == COMPLETED]


def excluded_counts(trials: pd.DataFrame) -> dict[str, int]:
    """How many trials each non-completed status holds (failed, pruned, queued, running)."""
    counts = trials.loc[trials["status"] != COMPLETED, "status"].value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def hashable_factors(trials: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """Factor columns holding lists or dicts (``lr_groups``, coupled JSON levels) as their JSON
    text, so they can be grouped and compared like any other level."""
    import json

    out = trials
    for f in factors:
        col = trials[f]
        if col.dtype == object and col.map(lambda v: isinstance(v, (list, dict))).any():
            out = out.copy() if out is trials else out
            out[f] = col.map(lambda v: json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v)
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
            constants[f] = _plain(values.iloc[0])
    return varying, constants


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, NaN to None: what labels, JSON and optuna expect."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def format_level(value: Any) -> str:
    """A factor level as a short label: 0.05, 128, True, heavy."""
    value = _plain(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _first_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: its earliest trial (lowest number), for factor values and order."""
    return trials.sort_values("number").drop_duplicates("config_hash").set_index("config_hash")


# --------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class Comparison:
    """One configuration against the baseline on one metric."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str  # "paired t" | "Welch t" | "n = 1" | "no data"


def _resample_means(rng: np.random.Generator, n: int, n_resamples: int) -> np.ndarray:
    """(n_resamples, n) weights: row b times a sample gives the mean of bootstrap resample b."""
    idx = rng.integers(0, n, size=(n_resamples, n))
    flat = (np.arange(n_resamples)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=n_resamples * n).reshape(n_resamples, n) / n


def bootstrap_cis(
    samples: Sequence[np.ndarray],
    base: np.ndarray | None = None,
    *,
    n_resamples: int = N_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> np.ndarray:
    """Percentile bootstrap CIs of ``mean(s)`` (or ``mean(s) - mean(base)``) for many samples.

    Returns an array (len(samples), 2) of (low, high). Seeded, so a report is reproducible: a
    sample's interval depends only on its values, its length and ``seed``, never on the other
    samples, which is what lets samples of equal length share one resampling matrix (a grid
    of 400 configurations costs one matrix product instead of 400 scipy calls).
    """
    out = np.full((len(samples), 2), math.nan)
    by_length: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        by_length.setdefault(len(s), []).append(i)
    tail = (1 - level) / 2 * 100
    for n, members in by_length.items():
        rng = np.random.default_rng(seed)
        stats = np.stack([np.asarray(samples[i], dtype=float) for i in members]) @ _resample_means(rng, n, n_resamples).T
        if base is not None:
            b = np.asarray(base, dtype=float)
            stats = stats - (_resample_means(rng, len(b), n_resamples) @ b)[None, :]
        out[members] = np.percentile(stats, [tail, 100 - tail], axis=1).T
    return out


def bootstrap_ci(
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    n_resamples: int = N_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``mean(x)`` (one sample) or ``mean(x) - mean(y)`` (independent)."""
    low, high = bootstrap_cis([np.asarray(x, dtype=float)], y, n_resamples=n_resamples, level=level, seed=seed)[0]
    return float(low), float(high)


def _t_p_value(t: np.ndarray | float, df: np.ndarray | float) -> np.ndarray:
    """Two-sided p-value of Student's t with ``df`` degrees of freedom (scipy.special, no scipy.stats:
    importing scipy.stats costs about a second and the formula is all a t-test needs)."""
    from scipy.special import stdtr

    with np.errstate(all="ignore"):
        return np.asarray(2 * stdtr(df, -np.abs(t)), dtype=float)


def paired_t_test(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """p-value of the paired t-test of ``x - y`` (same as ``scipy.stats.ttest_rel``)."""
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    n = len(d)
    with np.errstate(all="ignore"):
        t = d.mean() / (d.std(ddof=1) / math.sqrt(n))
    return float(_t_p_value(t, n - 1))


def welch_t_test(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """p-value of Welch's unequal-variance t-test (same as ``scipy.stats.ttest_ind(equal_var=False)``)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    with np.errstate(all="ignore"):
        t = (a.mean() - b.mean()) / math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(_t_p_value(t, df))


def _pairing(seeds: Sequence[int], base_seeds: Sequence[int]) -> list[int] | None:
    """Baseline positions aligned to ``seeds`` when both hold exactly the same seeds, else None."""
    if len(set(seeds)) == len(seeds) == len(base_seeds) == len(set(base_seeds)) and set(seeds) == set(base_seeds):
        order = {s: i for i, s in enumerate(base_seeds)}
        return [order[s] for s in seeds]
    return None


def compare_many(
    samples: Sequence[tuple[Sequence[float], Sequence[int]]],
    base_values: Sequence[float],
    base_seeds: Sequence[int],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> list[Comparison]:
    """:func:`compare_to_baseline` for many (values, seeds) samples against one baseline."""
    y = np.asarray(base_values, dtype=float)
    result: list[Comparison | None] = [None] * len(samples)
    paired: list[tuple[int, np.ndarray, float]] = []
    welch: list[tuple[int, np.ndarray, float]] = []
    for i, (values, seeds) in enumerate(samples):
        x = np.asarray(values, dtype=float)
        if len(x) == 0 or len(y) == 0:
            result[i] = Comparison(math.nan, math.nan, math.nan, math.nan, "no data")
            continue
        diff = float(x.mean() - y.mean())
        if len(x) < 2 or len(y) < 2:
            result[i] = Comparison(diff, math.nan, math.nan, math.nan, "n = 1")
            continue
        order = _pairing(list(seeds), list(base_seeds))
        if order is not None:
            d = x - y[order]
            paired.append((i, d, paired_t_test(x, y[order])))
        else:
            welch.append((i, x, welch_t_test(x, y)))
    # Identical values on both sides leave t undefined (0/0): p stays NaN, shown as "no test".
    for group, base, name in ((paired, None, "paired t"), (welch, y, "Welch t")):
        if not group:
            continue
        cis = bootstrap_cis([s for _, s, _ in group], base, n_resamples=n_resamples, seed=seed)
        for (i, _, p), (low, high) in zip(group, cis, strict=True):
            x = np.asarray(samples[i][0], dtype=float)
            result[i] = Comparison(float(x.mean() - y.mean()), float(low), float(high), p, name)
    return [r for r in result if r is not None]


def compare_to_baseline(
    values: Sequence[float],
    seeds: Sequence[int],
    base_values: Sequence[float],
    base_seeds: Sequence[int],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Comparison:
    """Difference of means from the baseline, its bootstrap CI and a t-test p-value.

    Paired t-test on the per-seed differences when both sides hold exactly the same seeds (the
    seed fixes data order and initialisation, so pairing removes that variance); Welch's t-test
    otherwise. With fewer than two values on either side there is no test and no interval.
    """
    return compare_many([(values, seeds)], base_values, base_seeds, n_resamples=n_resamples, seed=seed)[0]


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Holm-adjusted p-values and rejections; NaN entries (no test) stay NaN / False.

    The same numbers as ``statsmodels.stats.multitest.multipletests(p, method="holm")`` (the
    tests check it), in numpy: statsmodels runs a full ``gc.collect()`` per call, 0.2 s in a
    process holding a large study.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(p), math.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m:
        order = np.argsort(p[ok], kind="stable")
        # Step-down: the k-th smallest p is multiplied by (m - k), kept monotone, capped at 1.
        stepped = np.minimum(np.maximum.accumulate(p[ok][order] * np.arange(m, 0, -1)), 1.0)
        values = np.empty(m)
        values[order] = stepped
        adjusted[ok] = values
    reject = np.zeros(len(p), dtype=bool)
    reject[ok] = adjusted[ok] <= alpha
    return adjusted, reject


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean; NaN for fewer than two values."""
    from scipy.special import stdtrit

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    half = float(stdtrit(len(x) - 1, 0.5 + level / 2) * x.std(ddof=1) / math.sqrt(len(x)))
    m = float(x.mean())
    return m - half, m + half


# ------------------------------------------------------------------------- the ablation table
@dataclass
class AblationTable:
    """The ablation table: one row per configuration, and what a reader needs to interpret it.

    ``rows`` holds ``config_hash``, ``label``, the varying factors, ``n`` (completed seeds),
    ``seeds``, ``excluded`` (trials of this configuration not completed), ``<m>_mean``,
    ``<m>_std`` and ``<m>_diff`` for every metric in ``metrics``, and for the study metric
    ``ci_low``, ``ci_high`` (95 % bootstrap CI of the difference), ``p_value``, ``p_holm``,
    ``test`` and ``significant`` (Holm-adjusted p < 0.05), plus ``is_baseline``.
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

    def best(self, column: str) -> set[str]:
        """Config hashes holding the best mean of ``column`` (ties all count)."""
        values = self.rows[f"{column}_mean"]
        if values.notna().sum() == 0:
            return set()
        target = values.min() if metric_direction(column, study_metric=self.metric, study_direction=self.direction) == "minimize" else values.max()
        return set(self.rows.loc[np.isclose(values, target, rtol=0, atol=1e-12), "config_hash"])

    @property
    def baseline_row(self) -> pd.Series | None:
        if self.baseline is None:
            return None
        return self.rows.set_index("config_hash").loc[self.baseline]

    @property
    def tests_used(self) -> list[str]:
        return sorted(t for t in set(self.rows["test"]) if t in ("paired t", "Welch t"))


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


def formatted_levels(values: pd.Series) -> list[str]:
    """``format_level`` of every value, computing each distinct value's text once."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    texts = [format_level(u) for u in uniques]
    missing = format_level(math.nan)
    return [texts[c] if c >= 0 else missing for c in codes]


def parse_baseline(text: str) -> dict[str, str]:
    """``"image_size=128,augment=none"`` -> ``{"image_size": "128", "augment": "none"}``."""
    result: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise StudyError(f"--baseline {text!r}: expected key=value pairs separated by commas, got {part!r}")
        result[key.strip()] = value.strip()
    return result


def _same_level(level: Any, wanted: Any) -> bool:
    level = _plain(level)
    if not isinstance(wanted, str):
        return bool(level == wanted) or format_level(level) == format_level(wanted)
    if isinstance(level, bool):
        return wanted.lower() in (("true", "1", "yes") if level else ("false", "0", "no"))
    if isinstance(level, (int, float)):
        try:
            return math.isclose(float(wanted), float(level), rel_tol=1e-9, abs_tol=0.0)
        except ValueError:
            return False
    return str(level) == wanted or (level is None and wanted.lower() == "none")


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
            allowed = ", ".join(format_level(v) for v in _sorted_levels(first[key].drop_duplicates()))
            raise StudyError(f"{what} {key}={format_level(wanted)} is not one of its levels ({allowed})")
        mask &= hits.astype(bool)
    matched = list(first.index[mask])
    if not matched:
        text = ",".join(f"{k}={format_level(v)}" for k, v in levels.items())
        raise StudyError(f"{what} {text} matches no configuration of the study")
    if len(matched) > 1:
        text = ",".join(f"{k}={format_level(v)}" for k, v in levels.items())
        missing = [f for f in factors if f not in levels and first.loc[matched, f].nunique() > 1]
        raise StudyError(f"{what} {text} matches {len(matched)} configurations; also give: {', '.join(missing)}")
    return str(matched[0])


def level_order(data: pd.DataFrame, factor: str) -> list[str]:
    """Display order of a factor's levels (as labels): numbers ascending, anything else in the
    order the study declared them, which is the order of their first trial."""
    col = data[factor]
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return [format_level(v) for v in _sorted_levels(col.drop_duplicates())]
    if "number" in data.columns:
        col = data.sort_values("number")[factor]
    return list(dict.fromkeys(format_level(v) for v in col))


def _sorted_levels(values: Iterable[Any]) -> list[Any]:
    values = list(values)
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=format_level)


def ablation_table(
    trials: pd.DataFrame,
    *,
    factors: Sequence[str],
    metric: str,
    direction: str,
    design: str = "grid",
    baseline: Mapping[str, Any] | None = None,
    study_baseline: Mapping[str, Any] | None = None,
    metrics: Sequence[str] = TABLE_METRICS,
    n_resamples: int = N_RESAMPLES,
    alpha: float = ALPHA,
) -> AblationTable:
    """One row per configuration with mean, std, n over seeds and the comparison to the baseline.

    The baseline row is ``baseline`` when given (``{factor: level}``, levels as strings or
    values), else the study's OFAT baseline (``study_baseline``; the first configuration of an
    OFAT study when it has none), else the best row by ``metric``. Only completed trials count;
    the others are counted in ``excluded`` (per status) and per row.
    """
    if trials.empty:
        raise StudyError("the study has no trials yet; run it first (ablate run)")
    factors = [f for f in factors if f in trials.columns]
    trials = hashable_factors(trials, factors)
    varying, constants = split_factors(trials, factors)
    metrics = [m for m in dict.fromkeys([*metrics, metric]) if m in trials.columns]
    done = completed_trials(trials)
    if done.empty:
        counts = ", ".join(f"{v} {k}" for k, v in excluded_counts(trials).items())
        raise StudyError(f"no completed trials to report ({counts})")
    metrics = [m for m in metrics if done[m].notna().any() or m == metric]

    first = _first_rows(trials)
    # Positions per configuration, not sub-frames: slicing 400 frames costs more than the tests.
    positions = done.groupby("config_hash", sort=False).indices
    values = done[metric].to_numpy(dtype=float)
    seeds_of = done["seed"].to_numpy()
    groups = {h: (values[i][~np.isnan(values[i])], seeds_of[i][~np.isnan(values[i])]) for h, i in positions.items()}
    not_done = trials[trials["status"] != COMPLETED].groupby("config_hash").size()

    rows = pd.DataFrame({"config_hash": first.index.astype(str)})
    rows["first_number"] = first["number"].to_numpy()
    for f in varying:
        rows[f] = first[f].to_numpy()
    rows["n"] = [len(groups[h][0]) if h in groups else 0 for h in first.index]
    rows["seeds"] = [
        ",".join(str(s) for s in sorted(groups[h][1])) if h in groups else "" for h in first.index
    ]
    rows["excluded"] = not_done.reindex(first.index, fill_value=0).to_numpy(dtype=int)
    for m in metrics:
        stats_m = done.groupby("config_hash")[m].agg(["mean", "std"])
        rows[f"{m}_mean"] = rows["config_hash"].map(stats_m["mean"]).astype(float)
        rows[f"{m}_std"] = rows["config_hash"].map(stats_m["std"]).astype(float)

    # ---- which row is the baseline
    reason = ""
    base_hash: str | None = None
    if baseline:
        base_hash = find_config(first, baseline, factors=factors)
        reason = "given by --baseline"
        if rows.loc[rows["config_hash"] == base_hash, "n"].iloc[0] == 0:
            raise StudyError(
                f"--baseline {','.join(f'{k}={v}' for k, v in baseline.items())} has no completed trials"
            )
    elif design == "ofat":
        if study_baseline:
            base_hash = find_config(first, {k: v for k, v in study_baseline.items() if k in varying or k in constants}, factors=factors, what="study baseline")
        else:
            base_hash = str(first["number"].idxmin())
        reason = "the OFAT baseline"
        if rows.loc[rows["config_hash"] == base_hash, "n"].iloc[0] == 0:
            base_hash, reason = None, "the OFAT baseline has no completed trial; best row used instead"
    if base_hash is None:
        scores = rows.set_index("config_hash")[f"{metric}_mean"]
        base_hash = str(scores.idxmin() if direction == "minimize" else scores.idxmax())
        reason = reason or f"the best row by {metric}"

    base_levels = {f: first.loc[base_hash, f] for f in varying} if design == "ofat" else None
    rows.insert(1, "label", config_labels(first, varying, base_levels).to_numpy())
    rows["is_baseline"] = rows["config_hash"] == base_hash

    # ---- differences and tests against the baseline
    base_group = groups[base_hash]
    for m in metrics:
        rows[f"{m}_diff"] = rows[f"{m}_mean"] - rows.loc[rows["is_baseline"], f"{m}_mean"].iloc[0]
    others = [h for h in rows["config_hash"] if h != base_hash and h in groups]
    found = dict(zip(others, compare_many(
        [(groups[h][0], list(groups[h][1])) for h in others],
        base_group[0], list(base_group[1]), n_resamples=n_resamples,
    ), strict=True))
    comparisons = [
        Comparison(0.0, math.nan, math.nan, math.nan, "baseline") if h == base_hash
        else found.get(h, Comparison(math.nan, math.nan, math.nan, math.nan, "no data"))
        for h in rows["config_hash"]
    ]
    rows["diff"] = [c.diff for c in comparisons]
    rows["ci_low"] = [c.ci_low for c in comparisons]
    rows["ci_high"] = [c.ci_high for c in comparisons]
    rows["p_value"] = [c.p_value for c in comparisons]
    rows["test"] = [c.test for c in comparisons]
    adjusted, reject = holm(rows["p_value"].to_numpy(), alpha=alpha)
    rows["p_holm"] = adjusted
    rows["significant"] = reject

    if design in ("random", "tpe"):
        # Adaptive designs have no meaningful declaration order: rank by the metric instead.
        rows = rows.sort_values(f"{metric}_mean", ascending=direction == "minimize", na_position="last")
    else:
        rows = rows.sort_values("first_number")
    return AblationTable(
        rows=rows.reset_index(drop=True),
        metric=metric,
        direction=direction,
        metrics=metrics,
        factors=varying,
        constants=constants,
        baseline=base_hash,
        baseline_reason=reason,
        excluded=excluded_counts(trials),
        seeds=sorted(int(s) for s in trials["seed"].drop_duplicates()),
        n_tests=int(rows["p_value"].notna().sum()),
        alpha=alpha,
    )


# ---------------------------------------------------------------------------- main effects
def _levels_of(values: pd.Series) -> pd.Series:
    """Group keys for a factor: its levels, or, for a continuous factor, 5 quantile bins named
    by the smallest and largest value they hold (an ordered categorical)."""
    if (
        pd.api.types.is_numeric_dtype(values)
        and not pd.api.types.is_bool_dtype(values)
        and values.nunique() > MAX_LEVELS
    ):
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


def main_effects(
    completed: pd.DataFrame,
    factor: str,
    metric: str,
    *,
    hold: Mapping[str, Any] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """The metric per level of ``factor``: n, mean, std and a t-interval of the mean.

    A grid averages over the other factors (every completed trial at that level counts). For
    OFAT pass ``hold`` (the baseline's levels of the other factors): only trials that differ
    from the baseline in ``factor`` alone enter, so each level is compared at the baseline.
    Continuous factors (more than 8 values) are binned into quantiles.
    """
    data = completed
    if hold:
        for other, value in hold.items():
            if other != factor:
                data = data[data[other].map(lambda v, w=value: format_level(v) == format_level(w))]
    data = data[data[metric].notna()]
    keys = _levels_of(data[factor])
    binned = isinstance(keys.dtype, pd.CategoricalDtype)
    out = []
    for key, g in data.groupby(keys, sort=True, observed=True, dropna=False):
        x = g[metric].to_numpy(dtype=float)
        low, high = t_interval(x, level)
        out.append(
            {
                "factor": factor,
                "level": format_level(key),
                "value": float(g[factor].median()) if binned else _plain(key),
                "n": len(x),
                "mean": float(x.mean()),
                "std": float(x.std(ddof=1)) if len(x) > 1 else math.nan,
                "ci_low": low,
                "ci_high": high,
            }
        )
    frame = pd.DataFrame(out, columns=["factor", "level", "value", "n", "mean", "std", "ci_low", "ci_high"])
    if not isinstance(keys.dtype, pd.CategoricalDtype):  # quantile bins are already in order
        rank = {lv: i for i, lv in enumerate(level_order(data, factor))}
        frame = frame.sort_values("level", key=lambda c: c.map(rank)).reset_index(drop=True)
    return frame


def interaction_means(completed: pd.DataFrame, row_factor: str, col_factor: str, metric: str) -> pd.DataFrame:
    """Mean, std and n of ``metric`` for every pair of levels of two factors (long format)."""
    data = completed[completed[metric].notna()]
    g = data.groupby([row_factor, col_factor], sort=True, dropna=False)[metric]
    out = g.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    ranks = [{lv: i for i, lv in enumerate(level_order(data, f))} for f in (row_factor, col_factor)]
    key = [[r[format_level(v)] for v in out[f]] for r, f in zip(ranks, (row_factor, col_factor), strict=True)]
    return out.iloc[np.lexsort((key[1], key[0]))].reset_index(drop=True)


def is_full_grid(completed: pd.DataFrame, factors: Sequence[str], *, min_replicates: int = 2) -> bool:
    """Every combination of the factors' levels holds at least ``min_replicates`` completed trials."""
    if not factors:
        return False
    counts = completed.groupby(list(factors), dropna=False).size()
    cells = math.prod(completed[f].nunique(dropna=False) for f in factors)
    return len(counts) == cells and int(counts.min()) >= min_replicates


def anova_table(completed: pd.DataFrame, factors: Sequence[str], metric: str) -> pd.DataFrame:
    """Type-II ANOVA (statsmodels OLS) of ``metric`` on the factors and their two-way interactions.

    Columns: ``source`` (``image_size``, ``image_size x augment``, ``Residual``), ``df``,
    ``sum_sq``, ``mean_sq``, ``F``, ``p``. Meant for a full grid with replicates (see
    :func:`is_full_grid`); each factor is treated as categorical.
    """
    # The two modules needed: statsmodels.api and statsmodels.formula.api import every model
    # statsmodels has (1,900 modules against 1,450 here; seconds of a cold `ablate report`).
    from statsmodels.regression.linear_model import OLS
    from statsmodels.stats.anova import anova_lm

    data = completed[[*factors, metric]].dropna(subset=[metric]).copy()
    names = {f: f"f{i}" for i, f in enumerate(factors)}
    data = data.rename(columns={**names, metric: "y"})
    for f in names.values():
        data[f] = data[f].map(format_level)
    terms = [f"C({n})" for n in names.values()]
    formula = "y ~ " + (f"({' + '.join(terms)}) ** 2" if len(terms) > 1 else terms[0])
    model = OLS.from_formula(formula, data=data).fit()
    table = anova_lm(model, typ=2)
    back = {f"C({n})": f for f, n in names.items()}

    def source(term: str) -> str:
        return " x ".join(back.get(part, part) for part in term.split(":"))

    out = pd.DataFrame(
        {
            "source": [source(str(t)) for t in table.index],
            "df": table["df"].to_numpy(),
            "sum_sq": table["sum_sq"].to_numpy(),
            "F": table["F"].to_numpy(),
            "p": table["PR(>F)"].to_numpy(),
        }
    )
    out.insert(3, "mean_sq", out["sum_sq"] / out["df"])
    return out


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


# ------------------------------------------------------------------------ factor importance
#: fANOVA's cost grows faster than linearly with trials (Optuna's default forest took 160 s on
#: 2,000 trials, 4 s on 200): a seeded subsample of this many trials is evaluated.
IMPORTANCE_MAX_TRIALS = 200
#: 12 trees of depth <= 6 took 0.2 s where 32 of depth <= 8 took 1 s (200 trials, 5 factors).
#: Against a 64-tree forest on the same trials, an importance moved by up to 0.15 with another
#: forest seed (0.17 for 16 trees, 0.07 for 32); between two seeded subsamples of 200 trials of
#: one study it moved by up to 0.3: the subsample, not the forest, limits the precision.
IMPORTANCE_TREES = 12
IMPORTANCE_DEPTH = 6


def factor_importance(
    completed: pd.DataFrame,
    factors: Sequence[str],
    metric: str,
    direction: str,
    *,
    seed: int = 0,
    max_trials: int = IMPORTANCE_MAX_TRIALS,
) -> pd.DataFrame:
    """fANOVA importance of each factor for ``metric`` (Optuna's FanovaImportanceEvaluator).

    Our completed trials are copied into an in-memory Optuna study (``create_trial`` +
    ``add_trial``) with distributions inferred from the values seen, then evaluated with a
    forest of 12 trees of depth <= 6. Beyond ``max_trials`` trials a seeded random subsample is
    used. Returns ``factor``, ``importance`` (summing to 1, most important first) and
    ``trials`` (how many entered).
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    data = completed[completed[metric].notna()]
    if len(data) > max_trials:
        data = data.sample(n=max_trials, random_state=seed)
    usable = [f for f in factors if data[f].nunique(dropna=False) > 1]
    if len(data) < 2 or not usable:
        return pd.DataFrame(columns=["factor", "importance", "trials"])
    distributions: dict[str, Any] = {}
    for f in usable:
        col = data[f]
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col) or col.isna().any():
            distributions[f] = CategoricalDistribution(_sorted_levels({_plain(v) for v in col}))
        elif pd.api.types.is_integer_dtype(col):
            distributions[f] = IntDistribution(int(col.min()), int(col.max()))
        else:
            lo, hi = float(col.min()), float(col.max())
            distributions[f] = FloatDistribution(lo, hi, log=log_scale(col.to_numpy()))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if direction == "minimize" else "maximize")
    for row in data[[*usable, metric]].to_dict("records"):
        params = {f: _plain(row[f]) for f in usable}
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=float(row[metric]))
        )
    evaluator = optuna.importance.FanovaImportanceEvaluator(
        n_trees=IMPORTANCE_TREES, max_depth=IMPORTANCE_DEPTH, seed=seed
    )
    scores = optuna.importance.get_param_importances(study, evaluator=evaluator, params=usable)
    return pd.DataFrame(
        {"factor": list(scores), "importance": [float(v) for v in scores.values()], "trials": len(data)}
    )


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
        keys = _levels_of(ran[f])
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
