"""Reports built from real databases filled through the store's public API, drawn and opened."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ablate.report import (
    ReportOptions,
    StudyData,
    build_report,
    collect_report,
    load_report,
    render_report,
)
from ablate.store import ResultStore, load_epochs, load_trials
from ablate.study import Study

from .checks import assert_real_image, load_in_chromium
from .filldb import curve, run_study
from .frames import make_epochs, make_trials
from .test_tables import EFFNET

BASE = dict(dataset="synthetic", num_classes=10, model="cnn", epochs=4)
GRID_PLOTS = ["main_effects", "interactions", "learning_curves", "seeds", "parallel_coordinates",
              "cost", "compute_hours", "predictions"]


def effnet_study() -> Study:
    return Study(
        name="effnet_imgsize",
        base=dict(model="efficientnet_b0", dataset="synthetic", num_classes=100, epochs=10),
        factors=dict(image_size=[64, 128], augment=["none", "basic"]),
        baseline=dict(image_size=128, augment="none"),
        design="ofat",
    )


def effnet_outcome(params: dict[str, Any], seed: int) -> tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, str]]:
    row = next(r for r in EFFNET if (r["image_size"], r["augment"]) == (params["image_size"], params["augment"]))
    metrics = dict(train_acc=row["train_acc"], val_acc=row["val_acc"], duration_s=6.0 * params["image_size"])
    return "completed", metrics, curve(row["train_acc"], row["val_acc"], 10), {}


def grid_outcome(tmp: Path):  # type: ignore[no-untyped-def]
    """Trials of a 2 x 2 grid over 3 seeds: one failure, one pruned, predictions stored."""
    rng = np.random.default_rng(0)
    effect = {(16, "none"): 0.60, (16, "basic"): 0.64, (24, "none"): 0.70, (24, "basic"): 0.75}

    def outcome(params: dict[str, Any], seed: int):  # type: ignore[no-untyped-def]
        key = (params["image_size"], params["augment"])
        if key == (16, "none") and seed == 2:
            return "failed", {"val_acc": 0.99, "duration_s": 3.0}, curve(0.2, 0.2, 1), {}
        if key == (24, "none") and seed == 2:
            return "pruned", {"val_acc": 0.01, "duration_s": 4.0}, curve(0.1, 0.1, 2), {}
        val = effect[key] + 0.01 * seed + rng.normal(0, 0.005)
        path = tmp / f"pred_{key[0]}_{key[1]}_{seed}.npz"
        images = rng.integers(0, 255, size=(30, key[0], key[0], 3), dtype=np.uint8)
        labels = rng.integers(0, 10, 30)
        preds = np.where(rng.random(30) < val, labels, (labels + 1) % 10)
        np.savez(path, images=images, labels=labels, preds=preds, class_names=np.array([f"class {i}" for i in range(10)]))
        metrics = dict(train_acc=val + 0.05, val_acc=val, best_val_acc=val + 0.01, test_acc=val - 0.01,
                       duration_s=20.0 + key[0] + seed, images_per_s=900.0 - 10 * key[0], epochs_run=4)
        return "completed", metrics, curve(val + 0.05, val, 4), {"predictions": str(path)}

    return outcome


@pytest.fixture(scope="module")
def grid_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A 2 x 2 grid with 3 seeds in SQLite, reported once (with SVG) for every test below.

    Reporting it takes seconds, so the tests using it are slow.
    """
    tmp = tmp_path_factory.mktemp("grid")
    url = f"sqlite:///{tmp / 'ablate.db'}"
    study = Study(name="grid_demo", base=BASE, factors=dict(image_size=[16, 24], augment=["none", "basic"]),
                  seeds=[0, 1, 2], design="grid", baseline=dict(image_size=24, augment="basic"))
    with ResultStore(url) as store:
        assert run_study(store, study, grid_outcome(tmp), device="cuda:0") == 12
    out = tmp / "reports" / "grid_demo"
    out.mkdir(parents=True)
    (out / "importance.png").write_bytes(b"stale plot of an earlier (random) study of this name")
    (out / "importance_notes.png").write_bytes(b"the user's own file")
    build_report("grid_demo", db=url, out=out, options=ReportOptions(pdf=True, svg=True))
    yield url, out


@pytest.mark.slow
def test_every_output_file_is_written_and_every_plot_is_a_real_image(grid_report: tuple[str, Path]) -> None:
    _, out = grid_report
    for name in ("index.html", "report.md", "table.md", "table.csv", "table.tex"):
        assert (out / name).stat().st_size > 100, name
    for plot in GRID_PLOTS:
        assert_real_image(out / f"{plot}.png")
        ET.parse(out / f"{plot}.svg")  # well-formed XML
        assert (out / f"{plot}.pdf").read_bytes().startswith(b"%PDF"), plot
    assert not (out / "importance.png").exists(), "stale plot left behind"
    assert (out / "importance_notes.png").exists(), "a file the report does not own was removed"
    # No ANOVA skip note: the grid is full with 2+ completed seeds per cell.
    assert "Two-way ANOVA" in (out / "report.md").read_text()


@pytest.mark.slow
def test_table_numbers_rederive_from_the_database(grid_report: tuple[str, Path]) -> None:
    url, out = grid_report
    trials = load_trials("grid_demo", db=url)
    done = trials[trials.status == "completed"]
    expected = done.groupby(["image_size", "augment"]).agg(
        n=("val_acc", "size"), mean=("val_acc", "mean"), std=("val_acc", "std"), test=("test_acc", "mean"))
    table = pd.read_csv(out / "table.csv").set_index(["image_size", "augment"])
    for key, r in expected.iterrows():
        assert table.loc[key, "n"] == r["n"]
        assert table.loc[key, "val_acc_mean"] == pytest.approx(r["mean"], abs=1e-12)
        assert table.loc[key, "val_acc_std"] == pytest.approx(r["std"], abs=1e-12)
        assert table.loc[key, "test_acc_mean"] == pytest.approx(r["test"], abs=1e-12)
    # The failed (val 0.99) and pruned (val 0.01) trials are excluded, and counted.
    assert table.loc[(16, "none"), "n"] == 2 and table.loc[(16, "none"), "excluded"] == 1
    assert table.loc[(24, "basic"), "is_baseline"]  # the grid's declared baseline
    assert table.loc[(16, "none"), "test"] == "Welch t"  # seed 2 missing: no pairing
    assert table.loc[(16, "basic"), "test"] == "paired t"
    md = (out / "table.md").read_text()
    assert "Excluded from every statistic: 1 failed, 1 pruned trial(s)." in md
    assert "Constant: dataset = synthetic, num_classes = 10, model = cnn, epochs = 4. Seeds: 0, 1, 2." in md


@pytest.mark.slow
def test_html_is_self_contained_and_loads_without_console_errors(grid_report: tuple[str, Path], tmp_path: Path) -> None:
    _, out = grid_report
    page = (out / "index.html").read_text()
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page), "a resource outside the page"
    assert page.count('src="data:image/png;base64,') == len(GRID_PLOTS)
    assert 'class="sortable"' in page and "<script>" in page
    shot = tmp_path / "shot.png"
    assert load_in_chromium(out / "index.html", screenshot=shot) == []
    assert_real_image(shot)


@pytest.mark.slow
def test_the_console_check_catches_a_broken_page(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom'); notDefined();</script></body></html>")
    messages = load_in_chromium(bad)
    assert any("boom" in m for m in messages) and any("notDefined" in m for m in messages)


@pytest.mark.slow
def test_markdown_links_the_plots_next_to_it(grid_report: tuple[str, Path]) -> None:
    _, out = grid_report
    md = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(links) == sorted(f"{p}.png" for p in GRID_PLOTS)
    assert all((out / link).exists() for link in links)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_effnet_ofat_study_from_the_store(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = request.getfixturevalue("sqlite_url" if engine == "sqlite" else "pg_url")
    with ResultStore(url) as store:
        assert run_study(store, effnet_study(), effnet_outcome) == 3
    report = load_report("effnet_imgsize", db=url)
    rows = report.table.rows
    assert rows["label"].tolist() == ["baseline", "image_size=64", "augment=basic"]
    assert rows[["train_acc_mean", "val_acc_mean"]].values.tolist() == [[0.61, 0.58], [0.348, 0.316], [0.552, 0.557]]
    assert report.table.constants["model"] == "efficientnet_b0"
    assert report.effects_hold == {"image_size": 128, "augment": "none"}
    # Each row's trials with their curves, read as one per-epoch column (load_epoch_series).
    epochs = load_epochs("effnet_imgsize", db=url)
    for section in report.trial_sections:
        (trial,) = section.trials
        e, v = section.curves[int(trial["trial_id"])]
        own = epochs[epochs["trial_id"] == trial["trial_id"]]
        assert e.tolist() == own["epoch"].tolist() and v.tolist() == own["val_acc"].tolist()
    if engine == "sqlite":  # drawing does not depend on the engine: once is enough
        index = render_report(report, tmp_path / "out")
        md = (index.parent / "table.md").read_text()
        assert "| 64 | none | 1 | 0.348 | 0.316 |" in md and "| 128 | basic | 1 | 0.552 | 0.557 |" in md
        assert "| 128 | none | 1 | **0.610** | **0.580** |" in md
        for plot in ("main_effects", "learning_curves", "cost"):
            assert_real_image(tmp_path / "out" / f"{plot}.png")


@pytest.mark.slow
def test_adaptive_study_gets_importance_and_binned_effects(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):
        lr = float(10 ** rng.uniform(-4, -1))
        rows.append(dict(lr=lr, cnn_activation=["relu", "gelu", "silu"][i % 3], seed=0,
                         val_acc=0.9 - 0.05 * (np.log10(lr) + 2.5) ** 2 + rng.normal(0, 0.01),
                         train_acc=0.95, duration_s=30 + rng.uniform(0, 10)))
    trials = make_trials(["lr", "cnn_activation"], rows)
    report = collect_report(StudyData(study="cnn_tpe", design="tpe", trials=trials, epochs=make_epochs(trials, ["lr"], 3),
                            factors=["lr", "cnn_activation"], metric="val_acc", direction="maximize"))
    assert report.importance is not None and report.importance.iloc[0]["factor"] == "lr"
    assert len(report.effects["lr"]) == 5  # quantile bins
    assert report.interactions == [] and report.anova is None
    # Adaptive designs rank rows by the metric.
    assert report.table.rows["val_acc_mean"].is_monotonic_decreasing
    render_report(report, tmp_path, ReportOptions(workers=1))
    assert_real_image(tmp_path / "importance.png")
    assert_real_image(tmp_path / "parallel_coordinates.png")


def test_a_study_without_varying_factors_still_reports(tmp_path: Path) -> None:
    rows = [dict(lr=0.1, seed=s, val_acc=0.5 + s / 100, train_acc=0.6, duration_s=10.0) for s in range(3)]
    trials = make_trials(["lr"], rows)
    report = collect_report(StudyData(study="one_config", design="grid", trials=trials, epochs=make_epochs(trials, ["lr"], 3),
                            factors=["lr"], metric="val_acc", direction="maximize"))
    assert report.table.factors == [] and report.table.constants == {"lr": 0.1}
    assert report.table.rows["val_acc_mean"].tolist() == pytest.approx([0.51])
    assert report.effects == {} and report.parallel is None and report.hours is None
    index = render_report(report, tmp_path, ReportOptions(workers=1))
    assert "Constant: lr = 0.1. Seeds: 0, 1, 2." in (tmp_path / "table.md").read_text()
    assert index.exists() and (tmp_path / "learning_curves.png").exists()


@pytest.mark.slow
def test_drawing_in_forked_workers_writes_the_same_plots(tmp_path: Path) -> None:
    rows = [dict(lr=lr, act=act, seed=s, val_acc=0.5 + lr + s / 100, train_acc=0.7, duration_s=20.0 + s)
            for lr in (0.1, 0.2) for act in ("relu", "gelu") for s in (0, 1)]
    trials = make_trials(["lr", "act"], rows)
    report = collect_report(StudyData(study="forked", design="grid", trials=trials, epochs=make_epochs(trials, ["lr", "act"], 3),
                            factors=["lr", "act"], metric="val_acc", direction="maximize"))
    render_report(report, tmp_path / "serial", ReportOptions(workers=1))
    render_report(report, tmp_path / "forked", ReportOptions(workers=2))
    serial = sorted(p.name for p in (tmp_path / "serial").glob("*.png"))
    assert serial == sorted(p.name for p in (tmp_path / "forked").glob("*.png"))
    assert len(serial) == 7  # seeds.png among them
    for name in serial:
        assert_real_image(tmp_path / "forked" / name)
    # Same drawing, same pixels: the workers used the report's style too.
    from PIL import Image

    for name in serial:
        with Image.open(tmp_path / "serial" / name) as a, Image.open(tmp_path / "forked" / name) as b:
            assert np.array_equal(np.asarray(a), np.asarray(b)), name


@pytest.mark.slow
def test_large_grid_keeps_its_figures_readable(tmp_path: Path) -> None:
    """4 x 4 x 4 configurations: heatmap cells show the mean alone (the caption says so), the
    keys name configurations by their levels under one line of factor names."""
    from ablate.report._build import key_labels

    sizes, augs, acts = [16, 24, 32, 40], ["none", "basic", "heavy", "trivial"], ["relu", "gelu", "silu", "mish"]
    rows = [dict(image_size=s, augment=a, act=f, seed=seed, val_acc=0.4 + s / 100 + 0.01 * i + seed / 1000,
                 train_acc=0.9, duration_s=20.0 + s + seed)
            for s in sizes for i, a in enumerate(augs) for f in acts for seed in (0, 1)]
    trials = make_trials(["image_size", "augment", "act"], rows)
    report = collect_report(StudyData(study="big_grid", design="grid", trials=trials,
                            epochs=make_epochs(trials, ["image_size", "augment", "act"], 3),
                            factors=["image_size", "augment", "act"], metric="val_acc", direction="maximize"))
    labels, title = key_labels(report)
    first = report.table.rows.iloc[0]
    assert title == "image_size, augment, act:"
    assert labels[first["config_hash"]] == f"{first['image_size']}, {first['augment']}, {first['act']}"
    render_report(report, tmp_path, ReportOptions(workers=1))
    md = (tmp_path / "report.md").read_text()
    assert "48 cells: each shows the mean alone (n = 8 to 8 trials per cell)" in md
    for plot in ("main_effects", "interactions", "learning_curves", "parallel_coordinates", "cost", "compute_hours"):
        assert_real_image(tmp_path / f"{plot}.png")
    assert not list(tmp_path.glob("*.svg"))


@pytest.mark.slow
def test_every_table_csv_cell_rederives_from_plain_sql(grid_report: tuple[str, Path]) -> None:
    """Plain SQL on the study's view, scipy and statsmodels: no ablate function in the loop."""
    import sqlite3

    from scipy import stats
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.power import TTestIndPower, TTestPower

    url, out = grid_report
    with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
        view = pd.read_sql("SELECT * FROM study_grid_demo WHERE status = 'completed' AND val_acc IS NOT NULL", con)
    table = pd.read_csv(out / "table.csv").set_index(["image_size", "augment"])
    cells = {k: g.sort_values("seed") for k, g in view.groupby(["image_size", "augment"])}
    base = cells[(24, "basic")]  # the study's declared baseline
    others = [k for k in cells if k != (24, "basic")]
    m = len(others)
    raw = {}
    for key, g in cells.items():
        r = table.loc[key]
        for metric in ("val_acc", "train_acc", "test_acc", "duration_s"):
            assert r[f"{metric}_mean"] == pytest.approx(g[metric].mean(), abs=1e-12)
            assert r[f"{metric}_std"] == pytest.approx(g[metric].std(ddof=1), abs=1e-12)
        assert r["n"] == len(g)
        if key == (24, "basic"):
            continue
        a, b = g.val_acc.to_numpy(), base.val_acc.to_numpy()
        if list(g.seed) == list(base.seed):
            res = stats.ttest_rel(a, b)
            mdd = TTestPower().solve_power(nobs=len(a), alpha=0.05 / m, power=0.8) * (a - b).std(ddof=1)
        else:
            res = stats.ttest_ind(a, b, equal_var=False)
            pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
            mdd = TTestIndPower().solve_power(nobs1=len(a), ratio=len(b) / len(a), alpha=0.05 / m, power=0.8) * pooled
        ci = res.confidence_interval(confidence_level=1 - 0.05 / m)
        assert r["diff"] == pytest.approx(a.mean() - b.mean(), abs=1e-12)
        assert (r["ci_low"], r["ci_high"]) == (pytest.approx(ci.low, rel=1e-9), pytest.approx(ci.high, rel=1e-9))
        assert r["p_value"] == pytest.approx(res.pvalue, rel=1e-9)
        assert r["detectable"] == pytest.approx(mdd, rel=1e-6)
        raw[key] = res.pvalue
    reject, adjusted, _, _ = multipletests(list(raw.values()), alpha=0.05, method="bonferroni")
    for key, adj, rej in zip(raw, adjusted, reject, strict=True):
        assert table.loc[key, "p_adjusted"] == pytest.approx(adj, rel=1e-9)
        assert bool(table.loc[key, "significant"]) == bool(rej)
