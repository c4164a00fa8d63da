"""The statistics of a comparison with the baseline: tests, their intervals, power, multiplicity.

One family of tests per table (every row with a test against the baseline). p-values are
Bonferroni-adjusted over that family and each interval is the same test's simultaneous
interval at level ``1 - alpha / m``, so an interval excludes 0 exactly when its adjusted p is
below ``alpha`` (Holm's step-down rejects a little more often but has no interval that agrees
with it row by row). Each comparison also says the smallest difference its test could have
detected with 80 % power at the observed seed noise, which is what a non-significant row can
honestly claim: not "no effect", but "no effect larger than this was likely to be missed".
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

ALPHA = 0.05
POWER = 0.8

PAIRED = "paired t"
WELCH = "Welch t"
#: Tests that ran; every other ``test`` value says why there is none.
TESTS = (PAIRED, WELCH)
NO_DATA = "no data"
SINGLE = "n = 1: no test"
IDENTICAL = "identical differences: no test"
NO_SPREAD = "no spread: no test"


@dataclass(frozen=True)
class Comparison:
    """One configuration against the baseline on one metric.

    ``p_value`` is the test's own; ``p_adjusted``, ``ci_low``/``ci_high`` and ``detectable``
    are filled by :func:`adjust_family` for the family the comparison belongs to.
    """

    diff: float
    test: str  # one of TESTS, or why no test ran (NO_DATA, SINGLE, IDENTICAL, NO_SPREAD)
    n: int
    n_base: int
    se: float = math.nan
    df: float = math.nan
    p_value: float = math.nan
    noise: float = math.nan  # sd of the seed-wise differences (paired) or pooled sd (Welch)
    p_adjusted: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    detectable: float = math.nan

    @property
    def tested(self) -> bool:
        return self.test in TESTS


def _t_p_value(t: float, df: float) -> float:
    """Two-sided p-value of Student's t (scipy.special: importing scipy.stats costs a second)."""
    from scipy.special import stdtr

    return float(2 * stdtr(df, -abs(t)))


def _t_quantile(q: float, df: float) -> float:
    from scipy.special import stdtrit

    return float(stdtrit(df, q))


def _no_spread(x: np.ndarray) -> bool:
    # Round-off, not noise: 0.93 - 0.91 and 0.95 - 0.93 differ in the 17th digit, which would
    # make a t-test of "identical" seed-wise differences return p = 1e-29.
    return bool(np.ptp(x) <= 1e-10 * max(1.0, float(np.abs(x).max())))


def _pairing(seeds: Sequence[int], base_seeds: Sequence[int]) -> list[int] | None:
    """Baseline positions aligned to ``seeds`` when both hold exactly the same seeds, else None."""
    if len(set(seeds)) == len(seeds) == len(base_seeds) == len(set(base_seeds)) and set(seeds) == set(base_seeds):
        order = {s: i for i, s in enumerate(base_seeds)}
        return [order[s] for s in seeds]
    return None


def compare_to_baseline(
    values: Sequence[float] | np.ndarray,
    seeds: Sequence[int],
    base_values: Sequence[float] | np.ndarray,
    base_seeds: Sequence[int],
    *,
    paired: bool = True,
) -> Comparison:
    """The difference of means from the baseline and its t-test, not yet adjusted for a family.

    Paired t-test on the seed-wise differences when both sides hold exactly the same seeds (the
    seed fixes data order and initialisation, so pairing removes that variance); Welch's t-test
    otherwise, and always with ``paired=False`` (studies compared: one seed number in two
    different studies shares nothing). No test with fewer than two values on either side, or when the differences (or
    both sides' values) are all equal. Pass the result through :func:`adjust_family` for its
    interval and detectable difference (a family of one for a single comparison).
    """
    x, y = np.asarray(values, dtype=float), np.asarray(base_values, dtype=float)
    if len(x) == 0 or len(y) == 0:
        return Comparison(math.nan, NO_DATA, len(x), len(y))
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return Comparison(diff, SINGLE, len(x), len(y))
    order = _pairing(list(seeds), list(base_seeds)) if paired else None
    if order is not None:
        d = x - y[order]
        if _no_spread(d):
            return Comparison(diff, IDENTICAL, len(x), len(y))
        sd = float(d.std(ddof=1))
        se, df = sd / math.sqrt(len(d)), float(len(d) - 1)
        return Comparison(diff, PAIRED, len(x), len(y), se=se, df=df, p_value=_t_p_value(diff / se, df), noise=sd)
    if _no_spread(x) and _no_spread(y):
        return Comparison(diff, NO_SPREAD, len(x), len(y))
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))  # Welch-Satterthwaite
    pooled = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2))
    return Comparison(diff, WELCH, len(x), len(y), se=se, df=float(df), p_value=_t_p_value(diff / se, df), noise=pooled)


def family_alpha(m: int, alpha: float = ALPHA) -> float:
    """The per-test level of a Bonferroni family of ``m`` tests (``alpha`` for one or none)."""
    return alpha / max(m, 1)


def adjust_family(comparisons: Sequence[Comparison], alpha: float = ALPHA) -> list[Comparison]:
    """Bonferroni-adjusted p-values, simultaneous ``1 - alpha`` intervals and the smallest
    detectable difference (80 % power) for the tested comparisons of one family."""
    m = sum(c.tested for c in comparisons)
    level = family_alpha(m, alpha)
    out = []
    for c in comparisons:
        if not c.tested:
            out.append(c)
            continue
        half = _t_quantile(1 - level / 2, c.df) * c.se
        out.append(replace(
            c,
            p_adjusted=min(1.0, c.p_value * m),
            ci_low=c.diff - half,
            ci_high=c.diff + half,
            detectable=_effect_size(c.test, c.n, c.n_base, level) * c.noise,
        ))
    return out


def significant(c: Comparison, alpha: float = ALPHA) -> bool:
    """The star: the adjusted p is below ``alpha`` (the same threshold the table's note states)."""
    return c.tested and c.p_adjusted < alpha


@functools.lru_cache(maxsize=256)
def _effect_size(test: str, n: int, n_base: int, alpha: float) -> float:
    """Standardised effect detected with 80 % power by the two-sided test at ``alpha``
    (statsmodels' TTestPower for paired differences, TTestIndPower for two samples). It
    depends on the sample sizes and the level only, so a grid of 2,000 rows solves it once."""
    from statsmodels.stats.power import TTestIndPower, TTestPower

    if test == PAIRED:
        es = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=POWER, alternative="two-sided")
    else:
        es = TTestIndPower().solve_power(effect_size=None, nobs1=n, ratio=n_base / n, alpha=alpha, power=POWER,
                                         alternative="two-sided")
    return float(np.asarray(es).item())


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean; NaN for fewer than two values."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    half = _t_quantile(0.5 + level / 2, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    m = float(x.mean())
    return m - half, m + half


def bootstrap_ci(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray | None = None,
    *,
    n_resamples: int = 9999,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``mean(x)`` or ``mean(x) - mean(y)`` (independent samples),
    on request only: at 3 seeds it is [min, max] of the data and covers far less than 95 %,
    which is why the table uses the t-test's own interval."""
    from scipy.stats import bootstrap

    data = (np.asarray(x, dtype=float),) if y is None else (np.asarray(x, dtype=float), np.asarray(y, dtype=float))

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        mean = np.mean(samples[0], axis=axis)
        return mean if len(samples) == 1 else mean - np.mean(samples[1], axis=axis)

    res = bootstrap(data, statistic, n_resamples=n_resamples, confidence_level=level, method="percentile",
                    rng=np.random.default_rng(seed), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
