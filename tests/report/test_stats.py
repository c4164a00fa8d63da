"""The table's statistics a reviewer checks: recomputed here with scipy/statsmodels, a simulation
under the global null, intervals that agree with the stars, and no significance from round-off."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

from ablate.report import ablation_table
from ablate.report._stats import adjust_family, compare_to_baseline, significant
from ablate.report._tables import markdown_table, table_cells

from .frames import make_trials

FACTORS = ["model", "lr"]
CONFIGS = list(itertools.product(["cnn", "resnet"], [0.1, 0.05, 0.01]))  # 6 configurations


def null_study(rng: np.random.Generator, seeds: int = 3, *, drop: int | None = None) -> pd.DataFrame:
    """6 configurations, no real difference: seed offsets shared by all (what pairing removes) + noise."""
    offset = rng.normal(0, 0.02, seeds)
    rows = [dict(model=m, lr=lr, seed=s, val_acc=0.7 + offset[s] + rng.normal(0, 0.01))
            for s in range(seeds) for m, lr in CONFIGS]
    if drop is not None:
        rows[drop]["status"] = "failed"
    return make_trials(FACTORS, rows)


def table_of(trials: pd.DataFrame, **kw):  # type: ignore[no-untyped-def]
    return ablation_table(trials, factors=FACTORS, metric="val_acc", direction="maximize", **kw)


def assert_interval_agrees_with_star(rows: pd.DataFrame) -> None:
    tested = rows[rows["test"].isin(["paired t", "Welch t"])]
    excludes_zero = (tested["ci_low"] > 0) | (tested["ci_high"] < 0)
    assert (excludes_zero == tested["significant"]).all(), tested[["diff", "ci_low", "ci_high", "p_adjusted"]]


@pytest.mark.parametrize("drop", [None, 4])  # 4: one configuration lost a seed, so one Welch row
def test_every_cell_matches_an_independent_recomputation(drop: int | None) -> None:
    rng = np.random.default_rng(11)
    trials = null_study(rng, seeds=4, drop=drop)
    trials.loc[trials["model"] == "resnet", "val_acc"] += 0.08  # a real effect for some stars
    table = table_of(trials)
    done = trials[trials.status == "completed"]
    base = done[(done.model == "cnn") & (done.lr == 0.1)].sort_values("seed")
    others = [c for c in CONFIGS if c != ("cnn", 0.1)]
    m = len(others)
    raw, expected = [], {}
    for model, lr in others:
        sel = done[(done.model == model) & (done.lr == lr)].sort_values("seed")
        if len(sel) == len(base):
            res = stats.ttest_rel(sel.val_acc.to_numpy(), base.val_acc.to_numpy())
            d = sel.val_acc.to_numpy() - base.val_acc.to_numpy()
            es = TTestPower().solve_power(nobs=len(d), alpha=0.05 / m, power=0.8)
            mdd = es * d.std(ddof=1)
        else:
            res = stats.ttest_ind(sel.val_acc, base.val_acc, equal_var=False)
            a, b = sel.val_acc.to_numpy(), base.val_acc.to_numpy()
            pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
            mdd = TTestIndPower().solve_power(nobs1=len(a), ratio=len(b) / len(a), alpha=0.05 / m, power=0.8) * pooled
        ci = res.confidence_interval(confidence_level=1 - 0.05 / m)
        raw.append(res.pvalue)
        expected[(model, lr)] = (sel.val_acc.mean() - base.val_acc.mean(), ci.low, ci.high, res.pvalue, mdd, len(sel))
    reject, adjusted, _, _ = multipletests(raw, alpha=0.05, method="bonferroni")
    rows = table.rows.set_index(["model", "lr"])
    for (key, (diff, low, high, p, mdd, n)), adj, rej in zip(expected.items(), adjusted, reject, strict=True):
        r = rows.loc[key]
        assert r["n"] == n
        assert r["diff"] == pytest.approx(diff, abs=1e-12)
        assert (r["ci_low"], r["ci_high"]) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
        assert r["p_value"] == pytest.approx(p, rel=1e-9)
        assert r["p_adjusted"] == pytest.approx(adj, rel=1e-9)
        assert r["detectable"] == pytest.approx(mdd, rel=1e-6)
        assert bool(r["significant"]) == bool(rej)
    assert table.n_tests == m and table.interval_level == pytest.approx(1 - 0.05 / m)
    assert rows["significant"].any()
    assert_interval_agrees_with_star(table.rows)


@pytest.mark.slow
def test_family_wise_error_under_the_global_null_is_at_most_alpha() -> None:
    # The statistics ablation_table runs on each row (compare_to_baseline, then adjust_family
    # for the family), on arrays: 3,000 studies in a few seconds instead of minutes of frames.
    rng = np.random.default_rng(2024)
    studies, seeds = 3000, [0, 1, 2]
    false_positives = 0
    for _ in range(studies):
        values = 0.7 + rng.normal(0, 0.02, 3)[None, :] + rng.normal(0, 0.01, (len(CONFIGS), 3))
        family = adjust_family([compare_to_baseline(v, seeds, values[0], seeds) for v in values[1:]])
        for c in family:
            assert ((c.ci_low > 0) or (c.ci_high < 0)) == significant(c)  # CI/test consistency
        false_positives += any(significant(c) for c in family)
    fwer = false_positives / studies
    mc_error = np.sqrt(0.05 * 0.95 / studies)  # 0.004
    assert fwer <= 0.05 + 2 * mc_error, fwer


def test_the_table_interval_agrees_with_its_star_on_every_row() -> None:
    rng = np.random.default_rng(7)
    for i in range(20):
        trials = null_study(rng, drop=i % 7 if i % 2 else None)
        trials.loc[trials["model"] == "resnet", "val_acc"] += rng.uniform(0, 0.08)  # some rows reject
        assert_interval_agrees_with_star(table_of(trials).rows)


def test_identical_seed_wise_differences_get_no_test() -> None:
    # Accuracies on a small validation set: every seed 2 images better (round-off differs at 1e-17).
    rows = [dict(model=m, lr=0.1, seed=s, val_acc=v) for s, base in enumerate([0.9, 0.91, 0.93])
            for m, v in (("cnn", base), ("resnet", base + 0.02))]
    table = ablation_table(make_trials(["model", "lr"], rows), factors=["model", "lr"], metric="val_acc",
                           direction="maximize")
    r = table.rows[~table.rows.is_baseline].iloc[0]
    assert r["test"] == "identical differences: no test" and np.isnan(r["p_value"]) and not r["significant"]
    assert r["diff"] == pytest.approx(0.02)
    assert "identical differences: no test" in markdown_table(table)


def test_a_missing_metric_is_missing_for_every_column_and_counted() -> None:
    rng = np.random.default_rng(5)
    trials = null_study(rng, seeds=3)
    trials["train_acc"] = trials["val_acc"] + 0.05
    hit = trials.index[(trials.model == "resnet") & (trials.lr == 0.05) & (trials.seed == 1)]
    trials.loc[hit, "val_acc"] = np.nan  # completed, but its metric was never written
    trials.loc[trials.index[0], "train_acc"] = np.nan  # another metric missing: that cell says its n
    table = table_of(trials)
    rows = table.rows.set_index(["model", "lr"])
    r = rows.loc[("resnet", 0.05)]
    assert r["n"] == 2 and r["excluded"] == 1 and r["train_acc_n"] == 2
    kept = trials[(trials.model == "resnet") & (trials.lr == 0.05) & (trials.seed != 1)]
    assert r["train_acc_mean"] == pytest.approx(kept.train_acc.mean())  # not the 3-seed mean
    assert table.excluded == {"completed without a value of the metric": 1}
    cells = table_cells(table)
    first = cells.rows[0][cells.keys.index("train_acc")].text
    assert first.endswith("(n = 2)"), first
    assert "Excluded from every statistic: 1 completed without a value of the metric trial(s)" in markdown_table(table)


def test_star_and_note_use_the_same_threshold() -> None:
    rng = np.random.default_rng(3)
    trials = null_study(rng, seeds=4)
    trials.loc[(trials["model"] == "resnet") & (trials["lr"] != 0.01), "val_acc"] += 0.08
    table = table_of(trials)
    text = markdown_table(table)
    assert "* = adjusted p < 0.05" in text
    assert (table.rows["significant"] == (table.rows["p_adjusted"] < 0.05)).all()
    cells = table_cells(table)
    verdicts = [row[cells.keys.index("test")].text for row in cells.rows]
    assert "paired t: better" in verdicts and "paired t: inconclusive" in verdicts
    assert "inconclusive, not 'no effect'" in text
