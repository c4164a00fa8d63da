"""The report's data functions against scipy / statsmodels / numpy computed here, on known values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.formula.api import ols
from statsmodels.stats.multitest import multipletests

from ablate.errors import StudyError
from ablate.report import (
    ablation_table,
    anova_table,
    bootstrap_ci,
    compare_to_baseline,
    compute_hours,
    factor_importance,
    interaction_means,
    is_full_grid,
    learning_curves,
    main_effects,
    parallel_coordinates,
    pareto_front,
    parse_baseline,
)
from ablate.report._figure_data import log_scale
from ablate.report._trials import completed_trials

from .frames import make_epochs, make_trials

FACTORS = ["image_size", "augment"]
CELL_EFFECT = {(64, "none"): 0.50, (64, "basic"): 0.53, (128, "none"): 0.60, (128, "basic"): 0.64}


def grid_trials(seeds: int = 4, *, noise: float = 0.01, seed: int = 7) -> pd.DataFrame:
    """A 2 x 2 grid, ``seeds`` replicates, seed-major like the planner, with per-seed offsets."""
    rng = np.random.default_rng(seed)
    seed_offset = rng.normal(0, 0.02, seeds)  # shared by every config: what pairing removes
    rows = []
    for s in range(seeds):
        for size, aug in itertools.product((64, 128), ("none", "basic")):
            v = CELL_EFFECT[(size, aug)] + seed_offset[s] + rng.normal(0, noise)
            rows.append(dict(image_size=size, augment=aug, seed=s, val_acc=v, train_acc=v + 0.05,
                             best_val_acc=v + 0.01, duration_s=100.0 + size + rng.normal(0, 2),
                             images_per_s=4000.0 - 10 * size))
    return make_trials(FACTORS, rows)


def values_of(trials: pd.DataFrame, size: int, aug: str, column: str = "val_acc") -> pd.DataFrame:
    sel = trials[(trials.image_size == size) & (trials.augment == aug) & (trials.status == "completed")]
    return sel.sort_values("seed")


# ---------------------------------------------------------------------------- the table
def test_means_stds_n_and_paired_tests_match_scipy_and_statsmodels() -> None:
    trials = grid_trials()
    table = ablation_table(trials, factors=FACTORS, metric="val_acc", direction="maximize",
                           baseline={"image_size": "128", "augment": "none"})
    rows = table.rows.set_index(["image_size", "augment"])
    base = values_of(trials, 128, "none")
    p_raw = []
    for size, aug in CELL_EFFECT:
        sel = values_of(trials, size, aug)
        r = rows.loc[(size, aug)]
        assert r["n"] == 4
        assert r["val_acc_mean"] == pytest.approx(sel.val_acc.mean(), abs=1e-12)
        assert r["val_acc_std"] == pytest.approx(sel.val_acc.std(ddof=1), abs=1e-12)
        assert r["train_acc_mean"] == pytest.approx(sel.train_acc.mean(), abs=1e-12)
        if (size, aug) == (128, "none"):
            assert r["is_baseline"] and r["test"] == "baseline"
            continue
        assert r["diff"] == pytest.approx(sel.val_acc.mean() - base.val_acc.mean(), abs=1e-12)
        expected = stats.ttest_rel(sel.val_acc.to_numpy(), base.val_acc.to_numpy()).pvalue
        assert r["test"] == "paired t"
        assert r["p_value"] == pytest.approx(expected, rel=1e-9)
        p_raw.append((size, aug, expected))
    reject, adjusted, _, _ = multipletests([p for *_, p in p_raw], alpha=0.05, method="bonferroni")
    for (size, aug, _), adj, rej in zip(p_raw, adjusted, reject, strict=True):
        assert rows.loc[(size, aug), "p_adjusted"] == pytest.approx(adj, rel=1e-9)
        assert bool(rows.loc[(size, aug), "significant"]) == bool(rej)
    assert table.n_tests == 3
    # The effects are 4+ std of the noise apart: the tests must find them.
    assert rows.loc[(64, "none"), "significant"]


def test_two_sample_bootstrap_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.6, 0.02, 6), rng.normal(0.55, 0.03, 4)
    low, high = bootstrap_ci(x, y)
    ref = stats.bootstrap((x, y), lambda a, b, axis: a.mean(axis) - b.mean(axis), n_resamples=9999,
                          method="percentile", vectorized=True, rng=np.random.default_rng(0)).confidence_interval
    width = ref.high - ref.low
    assert low == pytest.approx(ref.low, abs=0.08 * width)
    assert high == pytest.approx(ref.high, abs=0.08 * width)
    # Seeded: the same call gives the same interval.
    assert bootstrap_ci(x, y) == (low, high)


def test_missing_seed_falls_back_to_welch() -> None:
    trials = grid_trials()
    # Seed 3 of (64, none) failed: the seeds differ from the baseline's, so no pairing.
    idx = trials[(trials.image_size == 64) & (trials.augment == "none") & (trials.seed == 3)].index
    trials.loc[idx, "status"] = "failed"
    table = ablation_table(trials, factors=FACTORS, metric="val_acc", direction="maximize",
                           baseline={"image_size": 128, "augment": "none"})
    r = table.rows.set_index(["image_size", "augment"]).loc[(64, "none")]
    sel, base = values_of(trials, 64, "none"), values_of(trials, 128, "none")
    assert r["n"] == 3 and r["seeds"] == "0,1,2" and r["excluded"] == 1
    assert r["test"] == "Welch t"
    expected = stats.ttest_ind(sel.val_acc, base.val_acc, equal_var=False).pvalue
    assert r["p_value"] == pytest.approx(expected, rel=1e-9)
    assert table.excluded == {"failed": 1}


@pytest.mark.parametrize("n", [2, 3, 7])
def test_t_tests_match_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    x, y = rng.normal(0, 1, n), rng.normal(0.5, 2, n + 1)
    paired = compare_to_baseline(x, list(range(n)), y[:n], list(range(n)))
    welch = compare_to_baseline(x, list(range(n)), y, list(range(n + 1)))
    assert paired.test == "paired t" and welch.test == "Welch t"
    assert paired.p_value == pytest.approx(stats.ttest_rel(x, y[:n]).pvalue, rel=1e-9)
    assert welch.p_value == pytest.approx(stats.ttest_ind(x, y, equal_var=False).pvalue, rel=1e-9)


def test_failed_and_pruned_trials_are_excluded_and_counted() -> None:
    trials = grid_trials(seeds=3)
    extra = make_trials(FACTORS, [
        # A failed and a pruned trial that recorded absurd metrics: none of it may count.
        dict(image_size=64, augment="none", seed=10, status="failed", val_acc=99.0, train_acc=99.0, duration_s=5.0),
        dict(image_size=64, augment="none", seed=11, status="pruned", val_acc=-99.0, train_acc=-99.0, duration_s=7.0),
        dict(image_size=128, augment="basic", seed=12, status="queued"),
    ])
    extra["trial_id"] += 100
    extra["number"] += 100
    both = pd.concat([trials, extra], ignore_index=True)
    table = ablation_table(both, factors=FACTORS, metric="val_acc", direction="maximize")
    clean = ablation_table(trials, factors=FACTORS, metric="val_acc", direction="maximize")
    cols = ["val_acc_mean", "val_acc_std", "train_acc_mean", "n", "p_value", "ci_low"]
    pd.testing.assert_frame_equal(table.rows[cols], clean.rows[cols])
    assert table.excluded == {"failed": 1, "pruned": 1, "queued": 1}
    per_row = table.rows.set_index(["image_size", "augment"])["excluded"]
    assert per_row[(64, "none")] == 2 and per_row[(128, "basic")] == 1 and per_row[(64, "basic")] == 0
    # Compute hours do count them: they ran.
    hours = compute_hours(both, FACTORS)
    at64 = hours[(hours.factor == "image_size") & (hours.level == "64")]
    ran64 = both[(both.image_size == 64) & both.duration_s.notna()]
    assert at64["hours"].sum() == pytest.approx(ran64.duration_s.sum() / 3600)
    assert at64["trials"].sum() == len(ran64)


def test_n_equal_one_has_no_p_values() -> None:
    trials = grid_trials(seeds=1)
    table = ablation_table(trials, factors=FACTORS, metric="val_acc", direction="maximize")
    others = table.rows[~table.rows.is_baseline]
    assert set(others["test"]) == {"n = 1: no test"}
    assert others["p_value"].isna().all() and others["p_adjusted"].isna().all() and others["ci_low"].isna().all()
    assert others["diff"].notna().all() and table.n_tests == 0
    assert not table.rows["significant"].any()


def test_default_baseline_is_the_first_declared_level_never_the_best_row() -> None:
    trials = grid_trials()
    table = ablation_table(trials, factors=FACTORS, metric="val_acc", direction="maximize")
    base = table.baseline_row
    assert (base["image_size"], base["augment"]) == (64, "none")  # the first planned configuration
    assert not table.post_hoc
    declared = ablation_table(trials, factors=FACTORS, metric="val_acc", direction="maximize",
                              declared_levels={"image_size": [128, 64], "augment": ["basic", "none"]})
    assert (declared.baseline_row["image_size"], declared.baseline_row["augment"]) == (128, "basic")
    assert declared.baseline_reason == "the first declared level of each factor"
    grid = ablation_table(trials, factors=FACTORS, metric="val_acc", direction="maximize",
                          study_baseline={"image_size": 128, "augment": "none"},
                          declared_levels={"image_size": [64, 128], "augment": ["none", "basic"]})
    assert (grid.baseline_row["image_size"], grid.baseline_row["augment"]) == (128, "none")
    assert grid.baseline_reason == "declared by the study"


def test_a_default_baseline_dropped_by_constraints_falls_back_to_the_first_planned_row() -> None:
    trials = grid_trials()
    kept = trials[~((trials.image_size == 64) & (trials.augment == "none"))]
    levels = {"image_size": [64, 128], "augment": ["none", "basic"]}
    table = ablation_table(kept, factors=FACTORS, metric="val_acc", direction="maximize", declared_levels=levels)
    assert (table.baseline_row["image_size"], table.baseline_row["augment"]) == (64, "basic")
    assert "constraints exclude the first declared levels" in table.baseline_reason
    with pytest.raises(StudyError, match="the study's baseline image_size=64,augment=none matches no configuration"):
        ablation_table(kept, factors=FACTORS, metric="val_acc", direction="maximize", declared_levels=levels,
                       study_baseline={"image_size": 64, "augment": "none"})


def test_best_baseline_only_on_request_and_labelled_post_hoc() -> None:
    trials = grid_trials()
    table = ablation_table(trials, factors=FACTORS, metric="val_acc", direction="maximize", baseline="best")
    best = table.rows.loc[table.rows.val_acc_mean.idxmax()]
    assert best["is_baseline"] and table.post_hoc and "post hoc" in table.baseline_reason
    assert table.best("val_acc") == {best["config_hash"]}
    trials["val_loss"] = 1 - trials["val_acc"]
    low = ablation_table(trials, factors=FACTORS, metric="val_loss", direction="minimize", baseline="best")
    assert low.rows.loc[low.rows.is_baseline, "config_hash"].item() == best["config_hash"]
    # duration is a cost: its best is the smallest.
    assert low.best("duration_s") == {low.rows.loc[low.rows.duration_s_mean.idxmin(), "config_hash"]}


def test_ofat_baseline_comes_from_the_study() -> None:
    rows = [dict(image_size=128, augment="none", val_acc=0.58), dict(image_size=64, augment="none", val_acc=0.316),
            dict(image_size=128, augment="basic", val_acc=0.557)]
    trials = make_trials(FACTORS, rows)
    table = ablation_table(trials, factors=FACTORS, metric="val_acc", direction="maximize", design="ofat",
                           study_baseline={"image_size": 128, "augment": "none"})
    assert table.rows["label"].tolist() == ["baseline", "image_size=64", "augment=basic"]
    assert table.baseline_reason == "declared by the study"
    assert table.rows["diff"].tolist() == pytest.approx([0.0, 0.316 - 0.58, 0.557 - 0.58])


@pytest.mark.parametrize(
    ("baseline", "message"),
    [
        ({"img": "64"}, "--baseline names 'img', which is not a factor; factors: image_size, augment"),
        ({"image_size": "96"}, "--baseline image_size=96 is not one of its levels (64, 128)"),
        ({"image_size": "64"}, "--baseline image_size=64 matches 2 configurations; also give: augment"),
    ],
)
def test_bad_baselines_are_one_line_errors(baseline: dict[str, str], message: str) -> None:
    with pytest.raises(StudyError) as e:
        ablation_table(grid_trials(), factors=FACTORS, metric="val_acc", direction="maximize", baseline=baseline)
    assert str(e.value) == message


def test_parse_baseline() -> None:
    assert parse_baseline("image_size=128, augment=none") == {"image_size": "128", "augment": "none"}
    with pytest.raises(StudyError, match="key=value"):
        parse_baseline("image_size")


def test_no_completed_trials_is_an_error() -> None:
    trials = make_trials(FACTORS, [dict(image_size=64, augment="none", status="failed")])
    with pytest.raises(StudyError, match=r"no completed trials with a value of val_acc to report \(1 failed\)"):
        ablation_table(trials, factors=FACTORS, metric="val_acc", direction="maximize")


# --------------------------------------------------------------------------- main effects
def test_main_effects_are_estimated_marginal_means_with_the_models_residual_error() -> None:
    trials = grid_trials(seeds=3)
    done = completed_trials(trials)
    effects = main_effects(done, "augment", "val_acc", factors=FACTORS, seed_block=True)
    assert effects["level"].tolist() == ["none", "basic"]  # declaration order, not alphabetical
    # Independent: the additive model with seed as a block, fitted here; in a balanced grid the
    # marginal mean is the raw mean and its standard error sqrt(MSE / trials at the level).
    fit = ols("val_acc ~ C(image_size) + C(augment) + C(seed)", data=done).fit()
    crit = stats.t.ppf(0.975, fit.df_resid)
    for _, r in effects.iterrows():
        x = done[done.augment == r["level"]].val_acc.to_numpy()
        se = math.sqrt(fit.mse_resid / len(x))
        assert (r["n"], r["mean"], r["df"]) == (len(x), pytest.approx(x.mean()), fit.df_resid)
        assert (r["ci_low"], r["ci_high"]) == (pytest.approx(x.mean() - crit * se), pytest.approx(x.mean() + crit * se))


def test_main_effects_of_a_full_grid_use_the_anovas_model() -> None:
    from ablate.report import estimated_marginal_means

    trials = grid_trials(seeds=3)
    done = completed_trials(trials)
    effects = estimated_marginal_means(done, FACTORS, "val_acc", seed_block=True, interactions=True)
    fit = ols("val_acc ~ C(image_size) * C(augment) + C(seed)", data=done).fit()
    crit = stats.t.ppf(0.975, fit.df_resid)
    for factor, frame in effects.items():
        for _, r in frame.iterrows():
            x = done[done[factor].map(str) == r["level"]].val_acc.to_numpy()
            se = math.sqrt(fit.mse_resid / len(x))  # balanced: the cell-mean model's error over n at the level
            assert r["mean"] == pytest.approx(x.mean()) and r["df"] == fit.df_resid
            assert r["ci_high"] - r["mean"] == pytest.approx(crit * se)


def test_main_effect_intervals_are_clipped_or_omitted() -> None:
    # One seed, 2 x 2 grid: the additive model keeps 1 residual df; a wide interval is clipped to [0, 1].
    rows = [dict(a=a, b=b, seed=0, val_acc=v) for (a, b), v in
            {(1, "x"): 0.05, (1, "y"): 0.95, (2, "x"): 0.9, (2, "y"): 0.1}.items()]
    effects = main_effects(make_trials(["a", "b"], rows), "a", "val_acc", factors=["a", "b"])
    assert (effects["ci_low"] >= 0).all() and (effects["ci_high"] <= 1).all()
    assert (effects["ci_low"] == 0).any() and (effects["ci_high"] == 1).any()
    # One trial per level and nothing else: no residual df, no interval.
    lone = main_effects(make_trials(["a"], [dict(a=1, val_acc=0.5), dict(a=2, val_acc=0.6)]), "a", "val_acc")
    assert lone["ci_low"].isna().all() and lone["mean"].tolist() == pytest.approx([0.5, 0.6])


def test_ofat_main_effects_hold_the_other_factors_at_baseline() -> None:
    rows = [dict(image_size=128, augment="none", val_acc=0.58, seed=s) for s in (0, 1)]
    rows += [dict(image_size=64, augment="none", val_acc=0.31 + s / 100, seed=s) for s in (0, 1)]
    rows += [dict(image_size=128, augment="basic", val_acc=0.55, seed=s) for s in (0, 1)]
    done = make_trials(FACTORS, rows)
    eff = main_effects(done, "image_size", "val_acc", hold={"image_size": 128, "augment": "none"})
    # (128, basic) differs in augment: it must not enter image_size's effect.
    assert eff.set_index("level")["mean"].to_dict() == pytest.approx({"64": 0.315, "128": 0.58})


def test_continuous_factors_are_binned() -> None:
    rng = np.random.default_rng(0)
    rows = [dict(lr=float(10 ** rng.uniform(-4, -1)), val_acc=float(rng.uniform())) for _ in range(60)]
    trials = make_trials(["lr"], rows)
    eff = main_effects(trials, "lr", "val_acc")
    assert len(eff) == 5 and eff["n"].sum() == 60
    # Bins are named by the values they hold: the first starts at the smallest learning rate.
    assert eff["level"].iloc[0].startswith(f"{trials.lr.min():.2g} – ")
    assert eff["level"].iloc[-1].endswith(f" – {trials.lr.max():.2g}")
    assert eff["value"].is_monotonic_increasing


def test_log_scale_only_for_values_spread_over_decades() -> None:
    rng = np.random.default_rng(0)
    assert log_scale(10 ** rng.uniform(-5, -1, 200))  # a log-uniform learning rate
    assert not log_scale(rng.uniform(0.0001, 0.5, 200))  # a dropout: spans 1000x, but linearly
    assert not log_scale(np.array([32.0, 64.0, 128.0]))  # less than 20x
    assert log_scale(np.array([0.1, 0.05, 0.01, 0.001]))


# -------------------------------------------------------------------------- interactions, ANOVA
def test_interaction_means() -> None:
    trials = grid_trials()
    done = completed_trials(trials)
    means = interaction_means(done, "image_size", "augment", "val_acc")
    assert len(means) == 4
    for _, r in means.iterrows():
        x = values_of(trials, r["image_size"], r["augment"]).val_acc
        assert r["mean"] == pytest.approx(x.mean()) and r["n"] == len(x)


def test_two_way_anova_with_seed_block_matches_hand_computed_sums_of_squares() -> None:
    trials = grid_trials(seeds=3, noise=0.02)
    done = completed_trials(trials)
    assert is_full_grid(done, FACTORS)
    table = anova_table(done, FACTORS, "val_acc").set_index("source")  # seeds crossed: a block
    y = done.val_acc.to_numpy()
    grand = y.mean()
    n = 3
    ss_a = sum(2 * n * (done[done.image_size == a].val_acc.mean() - grand) ** 2 for a in (64, 128))
    ss_b = sum(2 * n * (done[done.augment == b].val_acc.mean() - grand) ** 2 for b in ("none", "basic"))
    cells = done.groupby(FACTORS).val_acc
    ss_cells = sum(n * (m - grand) ** 2 for m in cells.mean())
    ss_ab = ss_cells - ss_a - ss_b
    ss_seed = sum(4 * (done[done.seed == s].val_acc.mean() - grand) ** 2 for s in range(n))
    ss_res = float(((done.val_acc - cells.transform("mean")) ** 2).sum()) - ss_seed
    df_res = len(y) - 4 - (n - 1)
    assert table.loc["image_size", "sum_sq"] == pytest.approx(ss_a, rel=1e-9)
    assert table.loc["augment", "sum_sq"] == pytest.approx(ss_b, rel=1e-9)
    assert table.loc["image_size x augment", "sum_sq"] == pytest.approx(ss_ab, rel=1e-6, abs=1e-12)
    assert table.loc["seed (block)", "sum_sq"] == pytest.approx(ss_seed, rel=1e-9)
    assert table.loc["Residual", "sum_sq"] == pytest.approx(ss_res, rel=1e-9)
    assert table.loc["Residual", "df"] == df_res
    f_a = ss_a / (ss_res / df_res)
    assert table.loc["image_size", "F"] == pytest.approx(f_a, rel=1e-9)
    assert table.loc["image_size", "p"] == pytest.approx(stats.f.sf(f_a, 1, df_res), rel=1e-6)
    # Seeds not crossed (one configuration lost a seed): no block.
    partial = done.drop(done.index[-1])
    assert "seed (block)" not in set(anova_table(partial, FACTORS, "val_acc")["source"])


def test_full_grid_needs_replicates_in_every_cell() -> None:
    trials = grid_trials(seeds=2)
    done = completed_trials(trials)
    assert is_full_grid(done, FACTORS)
    assert not is_full_grid(done[done.seed == 0], FACTORS)
    assert not is_full_grid(done[~((done.image_size == 64) & (done.augment == "none") & (done.seed == 1))], FACTORS)


# -------------------------------------------------------------------------- learning curves
def test_learning_curves_average_over_seeds_of_completed_trials() -> None:
    trials = grid_trials(seeds=3)
    trials.loc[trials.index[-1], "status"] = "failed"
    epochs = make_epochs(trials, FACTORS, n_epochs=4)
    curves = learning_curves(epochs, completed_trials(trials))
    h = trials.config_hash.iloc[-1]
    failed_id = trials.trial_id.iloc[-1]
    part = curves[(curves.config_hash == h) & (curves.series == "val_acc") & (curves.epoch == 2)].iloc[0]
    ref = epochs[(epochs.config_hash == h) & (epochs.epoch == 2) & (epochs.trial_id != failed_id)].val_acc
    assert part["n"] == 2 and part["mean"] == pytest.approx(ref.mean()) and part["std"] == pytest.approx(ref.std())
    assert set(curves.series) == {"train_acc", "val_acc", "train_loss", "val_loss"}


# -------------------------------------------------------------------------- cost, importance, coordinates
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 20), st.integers(0, 20)), min_size=1, max_size=25),
       st.sampled_from(["maximize", "minimize"]))
def test_pareto_front_matches_brute_force(points: list[tuple[int, int]], direction: str) -> None:
    cost = [float(c) for c, _ in points]
    value = [float(v) for _, v in points]
    front = pareto_front(cost, value, direction)
    sign = 1 if direction == "maximize" else -1

    def dominated(c: float, v: float) -> bool:
        return any(c2 <= c and sign * v2 >= sign * v and (c2 < c or sign * v2 > sign * v)
                   for c2, v2 in zip(cost, value, strict=True))

    optimal = {(c, v) for c, v in zip(cost, value, strict=True) if not dominated(c, v)}
    kept = [(cost[i], value[i]) for i in range(len(cost)) if front[i]]
    # Every optimal point is on the front exactly once (of equal points one is kept); no other.
    assert sorted(kept) == sorted(optimal)


def test_factor_importance_finds_the_factor_that_matters() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(80):
        lr = float(10 ** rng.uniform(-4, -1))
        act = str(rng.choice(["relu", "gelu", "silu"]))
        rows.append(dict(lr=lr, activation=act, dropout=float(rng.uniform(0, 0.5)),
                         val_acc=0.9 - 0.1 * (math.log10(lr) + 2.5) ** 2 + rng.normal(0, 0.002)))
    trials = make_trials(["lr", "activation", "dropout"], rows)
    imp = factor_importance(trials, ["lr", "activation", "dropout"], "val_acc", "maximize")
    assert imp.iloc[0]["factor"] == "lr" and imp.iloc[0]["importance"] > 0.8
    assert imp["importance"].sum() == pytest.approx(1.0)
    sub = factor_importance(trials, ["lr", "activation", "dropout"], "val_acc", "maximize", max_trials=40)
    assert sub["trials"].iloc[0] == 40 and sub.iloc[0]["factor"] == "lr"
    # Stability across forest seeds: each mean lies within its range over the seeds.
    assert ((imp["low"] <= imp["importance"] + 1e-12) & (imp["importance"] <= imp["high"] + 1e-12)).all()


def test_factor_importance_treats_declared_choices_as_categories() -> None:
    import optuna

    rng = np.random.default_rng(1)
    # filters = choice(4, 8, 16): 8 is best, so an int range (monotone splits) would blur it.
    rows = [dict(filters=int(f), lr=float(10 ** rng.uniform(-3, -1)),
                 val_acc=(0.9 if f == 8 else 0.7) + rng.normal(0, 0.01)) for f in rng.choice([4, 8, 16], 60)]
    trials = make_trials(["filters", "lr"], rows)
    seen: list[object] = []
    original = optuna.trial.create_trial

    def spy(**kw):  # type: ignore[no-untyped-def]
        seen.append(kw["distributions"]["filters"])
        return original(**kw)

    optuna.trial.create_trial = spy
    try:
        imp = factor_importance(trials, ["filters", "lr"], "val_acc", "maximize", categorical={"filters"})
    finally:
        optuna.trial.create_trial = original
    assert isinstance(seen[0], optuna.distributions.CategoricalDistribution)
    assert seen[0].choices == (4, 8, 16)
    assert imp.iloc[0]["factor"] == "filters"


def test_continuous_factors_of_a_search_are_points_with_a_trend() -> None:
    from ablate.report import continuous_points

    rng = np.random.default_rng(2)
    rows = [dict(lr=float(10 ** rng.uniform(-4, -1)), val_acc=float(rng.uniform(0.5, 0.9))) for _ in range(30)]
    trials = make_trials(["lr"], rows)
    points = continuous_points(trials, "lr", "val_acc")
    assert points is not None and len(points) == 30 and points["value"].is_monotonic_increasing
    assert bool(points["log"].iloc[0]) and points["trend"].between(0.5, 0.9).all()
    assert continuous_points(make_trials(["k"], [dict(k=k, val_acc=0.5) for k in (1, 2, 3)]), "k", "val_acc") is None


def test_parallel_coordinates_scale_axes() -> None:
    rows = [dict(lr=lr, act=act, val_acc=v) for lr, act, v in
            [(1e-4, "relu", 0.5), (1e-3, "gelu", 0.7), (1e-2, "relu", 0.9), (1e-1, "gelu", 0.6)]]
    table = ablation_table(make_trials(["lr", "act"], rows), factors=["lr", "act"], metric="val_acc", direction="maximize")
    pc = parallel_coordinates(table)
    lines = pc.lines.set_index("value")
    # lr spans 1000x: log scale puts the decades evenly apart.
    assert lines.loc[[0.5, 0.7, 0.9, 0.6], "lr"].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert lines.loc[0.9, "val_acc"] == 1.0 and lines.loc[0.5, "val_acc"] == 0.0
    assert sorted(lines["act"]) == [0, 0, 1, 1]
    assert pc.axes == ["lr", "act", "val_acc"]


def test_compare_to_baseline_single() -> None:
    c = compare_to_baseline([0.6, 0.62], [0, 1], [0.5], [0])
    assert c.test == "n = 1: no test" and math.isnan(c.p_value) and c.diff == pytest.approx(0.11)


def test_parallel_coordinates_draw_the_best_the_worst_and_a_seeded_sample() -> None:
    rng = np.random.default_rng(5)
    lrs = 10 ** rng.uniform(-4, -1, 300)
    rows = [dict(lr=float(lr), act=["relu", "gelu"][i % 2], val_acc=float(0.3 + i / 1000)) for i, lr in enumerate(lrs)]
    table = ablation_table(make_trials(["lr", "act"], rows), factors=["lr", "act"], metric="val_acc",
                           direction="maximize", design="random")
    pc = parallel_coordinates(table, max_lines=40)
    assert pc.total == 300 and len(pc.lines) == 40
    values = sorted(pc.lines["value"], reverse=True)
    every = sorted(table.rows["val_acc_mean"], reverse=True)
    assert values[:10] == pytest.approx(every[:10]) and values[-5:] == pytest.approx(every[-5:])
    middle = set(every[10:-5])
    assert all(v in middle for v in values[10:-5]) and len(set(values)) == 40
    assert pc.chosen == ("40 of the 300 configurations: the 10 best, the 5 worst and 25 drawn at random "
                         "(seeded) from the rest")
    # Seeded: the same lines again; another seed, another sample of the middle.
    assert parallel_coordinates(table, max_lines=40).lines.equals(pc.lines)
    assert not parallel_coordinates(table, max_lines=40, seed=1).lines.equals(pc.lines)
    # The axes span every configuration, not only those drawn.
    labels = [label for _, label in pc.ticks["lr"]]
    assert labels[0] == f"{lrs.min():.3g}" and labels[-1] == f"{lrs.max():.3g}"
    # A minimized metric keeps its lowest values as the best.
    low = parallel_coordinates(ablation_table(make_trials(["lr", "act"], rows), factors=["lr", "act"], metric="val_acc",
                                              direction="minimize", design="random"), max_lines=40)
    assert sorted(low.lines["value"])[:10] == pytest.approx(sorted(every)[:10])
    small = parallel_coordinates(table, max_lines=300)
    assert len(small.lines) == 300 and small.chosen == ""
