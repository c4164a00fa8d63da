"""Effects of the factors: estimated marginal means, interaction cells, ANOVA and fANOVA.

Main effects come from a fitted OLS model (statsmodels), not from t-intervals over trials pooled
across the other factors: each level's estimated marginal mean averages the model's predictions
over equal weights of the other factors' levels, and its interval uses the model's residual
error. When every configuration ran the same seeds, the seed enters the model as a block.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ablate.report._trials import (
    format_level,
    formatted_levels,
    is_continuous,
    level_order,
    levels_of,
    metric_range,
    plain_value,
    sorted_levels,
)

EFFECT_COLUMNS = ["factor", "level", "value", "n", "mean", "std", "ci_low", "ci_high", "se", "df"]
SEED = "seed"


def seeds_crossed(data: pd.DataFrame) -> bool:
    """Every configuration ran the same two or more seeds once each: seed is then a block
    crossed with the configurations, and its variance can be taken out of the residual."""
    if "seed" not in data.columns or data["seed"].nunique() < 2:
        return False
    sets = data.groupby("config_hash")["seed"].agg(lambda s: (tuple(sorted(s)), len(s) == s.nunique()))
    return bool(sets.map(lambda v: v[1]).all()) and sets.map(lambda v: v[0]).nunique() == 1


def _model_frame(data: pd.DataFrame, factors: Sequence[str], metric: str, seed_block: bool) -> tuple[pd.DataFrame, dict[str, str]]:
    """The data with safe column names (f0, f1, ...) and each factor's levels as labels."""
    names = {f: f"f{i}" for i, f in enumerate(factors)}
    frame = pd.DataFrame({names[f]: formatted_levels(levels_of(data[f])) for f in factors}, index=data.index)
    frame["y"] = data[metric].to_numpy(dtype=float)
    if seed_block:
        frame[SEED] = data["seed"].map(str).to_numpy()
    return frame, names


def estimated_marginal_means(
    data: pd.DataFrame,
    factors: Sequence[str],
    metric: str,
    *,
    seed_block: bool | None = None,
    interactions: bool = False,
    level: float = 0.95,
) -> dict[str, pd.DataFrame]:
    """Per factor, the estimated marginal mean of ``metric`` at each level from the OLS model
    ``metric ~ factors (+ their two-way interactions) (+ seed)`` (the ANOVA's model when
    ``interactions``, else additive), with its standard error and ``level`` interval on the
    model's residual degrees of freedom (none without residual df), clipped to the metric's
    range. Columns: :data:`EFFECT_COLUMNS` (``n`` and ``std`` describe the raw trials at the level).
    Continuous factors (more than 8 values) are binned into quantiles first.
    """
    from scipy.special import stdtrit

    # statsmodels.api imports every model statsmodels has (seconds of a cold `ablate report`).
    from statsmodels.regression.linear_model import OLS

    data = data[data[metric].notna()]
    seed_block = seeds_crossed(data) if seed_block is None else seed_block
    frame, names = _model_frame(data, factors, metric, seed_block)
    columns = [*names.values(), *([SEED] if seed_block else [])]
    levels = {col: list(dict.fromkeys(frame[col])) for col in columns}
    # Treatment coding by hand (first level as reference): the reference row of the model is
    # then explicit, 1/k for each dummy of a factor averaged over its k levels.
    blocks = {col: (frame[col].to_numpy(dtype=object)[:, None] == np.asarray(levels[col][1:], dtype=object)[None, :])
              .astype(float) for col in columns}
    pairs = list(itertools.combinations(names.values(), 2)) if interactions else []
    # Interaction columns: products of the two factors' dummies (treatment coding).
    products = {(a, b): (blocks[a][:, :, None] * blocks[b][:, None, :]).reshape(len(frame), -1) for a, b in pairs}
    X = np.hstack([np.ones((len(frame), 1)), *blocks.values(), *products.values()])
    fit = OLS(frame["y"].to_numpy(), X).fit()
    with np.errstate(divide="ignore", invalid="ignore"):  # no residual df: no error variance, no interval
        params, cov = np.asarray(fit.params), np.asarray(fit.cov_params())
    df = float(fit.df_resid)
    crit = float(stdtrit(df, 0.5 + level / 2)) if df > 0 else math.nan
    low_bound, high_bound = metric_range(metric)
    slices: dict[Any, slice] = {}
    start = 1
    for col in columns:
        slices[col] = slice(start, start + len(levels[col]) - 1)
        start += len(levels[col]) - 1
    for a, b in pairs:
        width = (len(levels[a]) - 1) * (len(levels[b]) - 1)
        slices[(a, b)] = slice(start, start + width)
        start += width
    # Equal weights over every level of every factor: each dummy averages to 1/k.
    means = {col: np.full(len(levels[col]) - 1, 1.0 / len(levels[col])) for col in columns}

    def row_at(col: str | None, i: int) -> np.ndarray:
        """The model row averaged over the reference grid with ``col`` held at its level ``i``."""
        dummies = dict(means)
        if col is not None:
            dummies[col] = np.asarray([1.0 if j == i else 0.0 for j in range(1, len(levels[col]))])
        L = np.zeros(X.shape[1])
        L[0] = 1.0
        for c in columns:
            L[slices[c]] = dummies[c]
        for a, b in pairs:
            L[slices[(a, b)]] = np.outer(dummies[a], dummies[b]).ravel()
        return L

    out: dict[str, pd.DataFrame] = {}
    for f in factors:
        col = names[f]
        keys = levels_of(data[f])
        binned = isinstance(keys.dtype, pd.CategoricalDtype)
        raw = data.assign(_key=formatted_levels(keys)).groupby("_key", sort=False)
        records = []
        for i, lv in enumerate(levels[col]):
            L = row_at(col, i)
            mean = float(L @ params)
            se = float(math.sqrt(max(L @ cov @ L, 0.0))) if df > 0 else math.nan
            group = raw.get_group(lv)
            x = group[metric].to_numpy(dtype=float)
            records.append({
                "factor": f,
                "level": lv,
                "value": float(group[f].median()) if binned else plain_value(group[f].iloc[0]),
                "n": len(x),
                "mean": mean,
                "std": float(x.std(ddof=1)) if len(x) > 1 else math.nan,
                "ci_low": max(mean - crit * se, low_bound) if df > 0 else math.nan,
                "ci_high": min(mean + crit * se, high_bound) if df > 0 else math.nan,
                "se": se,
                "df": df,
            })
        frame_f = pd.DataFrame(records, columns=EFFECT_COLUMNS)
        if binned:
            order = {lab: i for i, lab in enumerate(keys.cat.categories)}
        else:
            order = {lab: i for i, lab in enumerate(level_order(data, f))}
        out[f] = frame_f.sort_values("level", key=lambda c, o=order: c.map(o)).reset_index(drop=True)
    return out


def main_effects(
    completed: pd.DataFrame,
    factor: str,
    metric: str,
    *,
    factors: Sequence[str] | None = None,
    hold: Mapping[str, Any] | None = None,
    seed_block: bool | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """The estimated marginal mean of ``metric`` per level of ``factor`` (see
    :func:`estimated_marginal_means`), from a model of ``factors`` (default: ``factor`` alone).

    For OFAT pass ``hold`` (the baseline's levels of the other factors): only trials that differ
    from the baseline in ``factor`` alone enter, a one-factor model, so each level is compared
    at the baseline.
    """
    data = completed
    if hold:
        for other, value in hold.items():
            if other != factor:
                data = data[data[other].map(lambda v, w=value: format_level(v) == format_level(w))]
        factors = [factor]
    data = data[data[metric].notna()]
    if data.empty:
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    model_factors = list(dict.fromkeys([factor, *(factors or [])]))
    model_factors = [f for f in model_factors if f == factor or data[f].nunique(dropna=False) > 1]
    return estimated_marginal_means(data, model_factors, metric, seed_block=seed_block, level=level)[factor]


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


def anova_table(
    completed: pd.DataFrame, factors: Sequence[str], metric: str, *, seed_block: bool | None = None
) -> pd.DataFrame:
    """Type-II ANOVA (statsmodels OLS) of ``metric`` on the factors and their two-way interactions,
    plus ``seed`` as a block when every configuration ran the same seeds (:func:`seeds_crossed`).

    Columns: ``source`` (``image_size``, ``image_size x augment``, ``seed (block)``,
    ``Residual``), ``df``, ``sum_sq``, ``mean_sq``, ``F``, ``p``. Meant for a full grid with
    replicates (see :func:`is_full_grid`); each factor is treated as categorical.
    """
    from statsmodels.regression.linear_model import OLS
    from statsmodels.stats.anova import anova_lm

    data = completed[completed[metric].notna()]
    seed_block = seeds_crossed(data) if seed_block is None else seed_block
    frame, names = _model_frame(data, factors, metric, seed_block)
    terms = [f"C({n})" for n in names.values()]
    formula = "y ~ " + (f"({' + '.join(terms)}) ** 2" if len(terms) > 1 else terms[0])
    if seed_block:
        formula += f" + C({SEED})"
    table = anova_lm(OLS.from_formula(formula, data=frame).fit(), typ=2)
    back = {f"C({n})": f for f, n in names.items()} | {f"C({SEED})": "seed (block)"}

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


def significant_interactions(anova: pd.DataFrame | None, alpha: float = 0.05) -> list[str]:
    """The interaction sources of an ANOVA table with p < ``alpha`` (``a x b``)."""
    if anova is None:
        return []
    rows = anova[anova["source"].str.contains(" x ") & (anova["p"] < alpha)]
    return rows["source"].tolist()


# ------------------------------------------------------------------------ factor importance
#: fANOVA's cost grows faster than linearly with trials (Optuna's default forest took 160 s on
#: 2,000 trials, 4 s on 200): a seeded subsample of this many trials is evaluated.
IMPORTANCE_MAX_TRIALS = 200
#: 12 trees of depth <= 6 took 0.2 s where 32 of depth <= 8 took 1 s (200 trials, 5 factors).
IMPORTANCE_TREES = 12
IMPORTANCE_DEPTH = 6
#: Forest seeds evaluated: the spread of a factor's importance across them is printed beside it
#: (against a 64-tree forest an importance moved by up to 0.15 with another forest seed).
IMPORTANCE_SEEDS = 3


def factor_importance(
    completed: pd.DataFrame,
    factors: Sequence[str],
    metric: str,
    direction: str,
    *,
    categorical: Collection[str] = (),
    seed: int = 0,
    forest_seeds: int = IMPORTANCE_SEEDS,
    max_trials: int = IMPORTANCE_MAX_TRIALS,
) -> pd.DataFrame:
    """fANOVA importance of each factor for ``metric`` (Optuna's FanovaImportanceEvaluator).

    Our completed trials are copied into an in-memory Optuna study (``create_trial`` +
    ``add_trial``). Factors declared as choices (``categorical``), and any non-numeric one, get
    a ``CategoricalDistribution``: ``choice(4, 8, 16)`` is three categories, not an int range.
    The others are int or float ranges (log when spread over decades). The forest (12 trees of
    depth <= 6) is fitted with ``forest_seeds`` seeds. Returns ``factor``, ``importance`` (mean
    over forest seeds, most important first), ``low`` and ``high`` (its range over the seeds)
    and ``trials`` (how many entered, a seeded subsample beyond ``max_trials``).
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from ablate.report._figure_data import log_scale

    data = completed[completed[metric].notna()]
    if len(data) > max_trials:
        data = data.sample(n=max_trials, random_state=seed)
    usable = [f for f in factors if data[f].nunique(dropna=False) > 1]
    if len(data) < 2 or not usable:
        return pd.DataFrame(columns=["factor", "importance", "low", "high", "trials"])
    distributions: dict[str, Any] = {}
    for f in usable:
        col = data[f]
        numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        if f in categorical or not numeric or col.isna().any():
            distributions[f] = CategoricalDistribution(sorted_levels({plain_value(v) for v in col}))
        elif pd.api.types.is_integer_dtype(col):
            distributions[f] = IntDistribution(int(col.min()), int(col.max()))
        else:
            lo, hi = float(col.min()), float(col.max())
            distributions[f] = FloatDistribution(lo, hi, log=log_scale(col.to_numpy()))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if direction == "minimize" else "maximize")
    for row in data[[*usable, metric]].to_dict("records"):
        params = {f: plain_value(row[f]) for f in usable}
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=float(row[metric]))
        )
    runs = []
    for s in range(seed, seed + max(forest_seeds, 1)):
        evaluator = optuna.importance.FanovaImportanceEvaluator(
            n_trees=IMPORTANCE_TREES, max_depth=IMPORTANCE_DEPTH, seed=s
        )
        scores = optuna.importance.get_param_importances(study, evaluator=evaluator, params=usable, normalize=True)
        runs.append({f: float(scores.get(f, 0.0)) for f in usable})
    table = pd.DataFrame(runs)
    out = pd.DataFrame({
        "factor": usable,
        "importance": table.mean().to_numpy(),
        "low": table.min().to_numpy(),
        "high": table.max().to_numpy(),
        "trials": len(data),
    })
    return out.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def continuous_points(completed: pd.DataFrame, factor: str, metric: str) -> pd.DataFrame | None:
    """For a continuous factor of a random/TPE search: every trial as a point (``value``,
    ``metric``) and a LOWESS trend over them (``trend``, sorted by value), for a scatter with a
    trend line instead of evenly spaced categories; None for a factor with few levels."""
    data = completed[completed[metric].notna()]
    if not is_continuous(data[factor]):
        return None
    from statsmodels.nonparametric.smoothers_lowess import lowess

    from ablate.report._figure_data import log_scale

    x = data[factor].to_numpy(dtype=float)
    y = data[metric].to_numpy(dtype=float)
    log = log_scale(x)
    order = np.argsort(x, kind="stable")
    xs = np.log10(x[order]) if log else x[order]
    # delta: points closer than 1 % of the range reuse their neighbour's fit (2,000 points took
    # 1 s without it, LOWESS being quadratic in the points).
    fitted = lowess(y[order], xs, frac=2 / 3, delta=0.01 * float(np.ptp(xs)), return_sorted=False)
    return pd.DataFrame({"value": x[order], metric: y[order], "trend": fitted, "log": log})
