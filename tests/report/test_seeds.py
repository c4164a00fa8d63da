"""The seed view (per configuration: seeds done / planned, mean and t interval, what still
runs) and the per-row sections of trials, on a real study caught while it runs."""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ablate.report import build_report, load_report
from ablate.report._html import section_id
from ablate.report._seeds import interval_text, seed_view
from ablate.store import ResultStore, load_trials
from ablate.study import Study

from .checks import CHROMIUM, CHROMIUM_FLAGS, assert_real_image, load_in_chromium
from .filldb import curve
from .frames import make_trials

#: Error text of the failed trial: markup and quotes that must reach the page escaped.
ERROR = 'Traceback:\n  ValueError: bad <script>alert("x")</script> & \'quote\''
#: Trials finished before the report is written; the next one is left running, the rest queued.
FINISHED = 9


def _outcome(params: dict[str, Any], seed: int) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    effect = {(16, "none"): 0.60, (16, "basic"): 0.64, (24, "none"): 0.70, (24, "basic"): 0.75}
    key = (params["image_size"], params["augment"])
    if key == (16, "none") and seed == 1:
        return "failed", {}, curve(0.2, 0.2, 2)
    if key == (16, "none") and seed == 2:
        return "pruned", {"val_acc": 0.05}, curve(0.1, 0.1, 1)
    val = effect[key] + 0.013 * seed + 0.002 * seed**2
    return "completed", dict(train_acc=val + 0.05, val_acc=val, duration_s=10.0 + seed), curve(val + 0.05, val, 4)


@pytest.fixture(scope="module")
def running_study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A 2 x 2 grid over 3 seeds in SQLite, reported while it runs: 9 trials finished (one
    failed with markup in its error, one pruned), one running with 2 epochs recorded, 2 queued.
    Reporting it takes seconds, so the tests using it are slow."""
    tmp = tmp_path_factory.mktemp("seeds")
    url = f"sqlite:///{tmp / 'ablate.db'}"
    study = Study(name="seeds_live", base=dict(dataset="synthetic", num_classes=10, model="cnn", epochs=4),
                  factors=dict(image_size=[16, 24], augment=["none", "basic"]), seeds=[0, 1, 2], design="grid",
                  baseline=dict(image_size=24, augment="basic"))
    with ResultStore(url) as store:
        store.register_study(study)
        store.add_trials(study, study.validate())
        for i in range(FINISHED + 1):
            claimed = store.claim_next_trial(study.name, worker="w0", host="test", device="cpu", lease_s=600)
            assert claimed is not None
            status, metrics, epochs = _outcome(dict(claimed.params), claimed.seed)
            for row in epochs[: 2 if i == FINISHED else None]:
                store.record_epoch(claimed.trial_id, row)
            if i < FINISHED:  # the last one claimed stays running
                assert store.finish_trial(claimed.trial_id, "w0", status=status, metrics=metrics, artifacts={},
                                          error=ERROR if status == "failed" else None)
    out = tmp / "report"
    build_report("seeds_live", db=url, out=out)
    yield url, out


@pytest.mark.slow
def test_seed_view_numbers_are_scipy_t_intervals(running_study: tuple[str, Path]) -> None:
    url, _ = running_study
    report = load_report("seeds_live", db=url)
    trials = load_trials("seeds_live", db=url)
    done = trials[(trials["status"] == "completed") & trials["val_acc"].notna()]
    assert report.seeds is not None
    view = report.seeds.set_index("config_hash")
    checked = {1: 0, 2: 0}
    for h, group in trials.groupby("config_hash"):
        values = done.loc[done["config_hash"] == h, "val_acc"].to_numpy(dtype=float)
        row = view.loc[h]
        assert row["planned"] == len(group) == 3
        assert row["done"] == len(values)
        assert row["running"] == (group["status"] == "running").sum()
        assert row["queued"] == (group["status"] == "queued").sum()
        if len(values) >= 2:
            low, high = np.clip(stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values)), 0, 1)
            assert row["mean"] == pytest.approx(values.mean(), abs=1e-12)
            assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
            checked[2] += 1
        elif len(values) == 1:
            assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
            assert interval_text(row["mean"], row["ci_low"], row["ci_high"], 1).endswith("(n = 1: no interval)")
            checked[1] += 1
    assert checked[1] >= 1 and checked[2] >= 1, checked  # both kinds of row were seen
    # The page prints the same interval for every row.
    md = (running_study[1] / "report.md").read_text()
    for _, row in view.iterrows():
        assert interval_text(row["mean"], row["ci_low"], row["ci_high"], int(row["done"])) in md


def test_seed_view_from_frames_matches_scipy_with_unequal_seeds() -> None:
    """The data function alone: 2, 3 and 5 seeds, one with a missing metric."""
    from ablate.report import ablation_table

    rng = np.random.default_rng(3)
    rows = [dict(model=m, seed=s, val_acc=float(rng.uniform(0.5, 0.9))) for m, k in (("a", 2), ("b", 3), ("c", 5))
            for s in range(k)]
    rows.append(dict(model="c", seed=5, val_acc=math.nan))
    trials = make_trials(["model"], rows)
    table = ablation_table(trials, factors=["model"], metric="val_acc", direction="maximize")
    view = seed_view(table, trials).set_index("label")
    for m, k in (("a", 2), ("b", 3), ("c", 5)):
        x = trials.loc[(trials["model"] == m) & trials["val_acc"].notna(), "val_acc"].to_numpy()
        low, high = np.clip(stats.t.interval(0.95, k - 1, loc=x.mean(), scale=stats.sem(x)), 0, 1)
        r = view.loc["baseline" if m == "a" else f"model={m}"] if "baseline" in view.index else view.loc[f"model={m}"]
        assert r["done"] == k and r["ci_low"] == pytest.approx(low, abs=1e-12) and r["ci_high"] == pytest.approx(high, abs=1e-12)
    assert "1 without the metric" in view.loc["model=c", "state"]


def test_an_interval_past_the_metrics_range_is_clipped_to_it() -> None:
    """Two seeds of an accuracy near 1: the t interval runs past 1.0, which no accuracy reaches."""
    from ablate.report import ablation_table

    rows = [dict(model="a", seed=0, val_acc=0.99), dict(model="a", seed=1, val_acc=0.80),
            dict(model="b", seed=0, val_acc=0.50), dict(model="b", seed=1, val_acc=0.52)]
    trials = make_trials(["model"], rows)
    view = seed_view(ablation_table(trials, factors=["model"], metric="val_acc", direction="maximize"), trials)
    a = view.set_index("label").iloc[0]
    low, high = stats.t.interval(0.95, 1, loc=0.895, scale=stats.sem([0.99, 0.80]))
    assert high > 1 and low < 0  # the raw interval leaves [0, 1] on both sides
    assert (a["ci_low"], a["ci_high"]) == (0.0, 1.0)
    b = view.set_index("label").iloc[1]
    assert (b["ci_low"], b["ci_high"]) == (pytest.approx(stats.t.interval(0.95, 1, loc=0.51, scale=0.01)[0]),
                                           pytest.approx(stats.t.interval(0.95, 1, loc=0.51, scale=0.01)[1]))


def _section(page: str, config_hash: str) -> str:
    start = page.index(f'id="{section_id(config_hash)}"')
    return page[start:page.index("</details>", start)]


@pytest.mark.slow
def test_running_seed_shows_as_running_and_queued_as_queued(running_study: tuple[str, Path]) -> None:
    url, out = running_study
    trials = load_trials("seeds_live", db=url)
    running = trials[trials["status"] == "running"]
    assert len(running) == 1 and (trials["status"] == "queued").sum() == 2
    page = (out / "index.html").read_text()
    section = _section(page, running["config_hash"].iloc[0])
    assert "running" in section.split("</summary>")[0]  # the summary line says so
    trial_row = next(r for r in section.split("<tr>") if f'<td class="num">{int(running["number"].iloc[0])}</td>' in r)
    assert "<td>running</td>" in trial_row
    assert "<polyline" in trial_row  # the two epochs it has recorded so far
    # The seed table highlights every configuration still waiting for a seed.
    table = page[page.index('<table id="seeds">'):]
    table = table[:table.index("</table>")]
    waiting = trials.groupby("config_hash")["status"].apply(lambda s: s.isin(["running", "queued"]).any())
    assert table.count('<tr class="pending">') == int(waiting.sum()) >= 1
    md = (out / "report.md").read_text()
    assert "1 trial(s) running, 2 queued" in md
    assert re.search(r"\| running \|", md) and re.search(r"\| queued \|", md)


@pytest.mark.slow
def test_failed_trial_error_is_escaped_in_its_rows_section(running_study: tuple[str, Path]) -> None:
    url, out = running_study
    trials = load_trials("seeds_live", db=url)
    failed = trials[trials["status"] == "failed"]
    assert len(failed) == 1
    page = (out / "index.html").read_text()
    section = _section(page, failed["config_hash"].iloc[0])
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;quote&#x27;" in section
    assert "<script>alert" not in page
    assert page.count('<td class="error"') == 1


@pytest.mark.slow
def test_every_link_resolves_and_the_page_loads_in_chromium(running_study: tuple[str, Path], tmp_path: Path) -> None:
    _, out = running_study
    page = (out / "index.html").read_text()
    links = re.findall(r'href="#([^"]+)"', page)
    ids = set(re.findall(r'id="([^"]+)"', page))
    assert len(links) == 2 * 4  # the ablation table's and the seed table's rows
    assert set(links) <= ids, set(links) - ids
    assert len(re.findall(r'<details class="trials"', page)) == 4
    assert page.count("<svg") == (load_trials("seeds_live", db=running_study[0])["status"] != "queued").sum()
    shot = tmp_path / "page.png"
    assert load_in_chromium(out / "index.html", screenshot=shot) == []
    assert_real_image(shot)
    # Opened at a row's link, the page opens that section (a script; closed <details> hide it).
    target = links[0]
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                               (out / "index.html").resolve().as_uri() + "#" + target],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    opened = re.findall(r'<details class="trials" id="([^"]+)" open', done.stdout)
    assert opened == [target]


@pytest.mark.slow
def test_seeds_figure_is_drawn_and_single_seed_studies_skip_it(running_study: tuple[str, Path], tmp_path: Path) -> None:
    from ablate.report import ReportOptions, collect_report, render_report
    from ablate.report._model import StudyData

    _, out = running_study
    assert_real_image(out / "seeds.png")
    assert (out / "report.md").read_text().count("(seeds.png)") == 1
    trials = make_trials(["model"], [dict(model=m, seed=0, val_acc=v) for m, v in (("a", 0.5), ("b", 0.6))])
    data = StudyData(study="one_seed", design="grid", trials=trials, factors=["model"], metric="val_acc",
                     direction="maximize", epochs=pd.DataFrame())
    render_report(collect_report(data), tmp_path, ReportOptions(workers=1))
    assert not (tmp_path / "seeds.png").exists()
    assert "(n = 1: no interval)" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_epoch_series_reads_one_known_column_only(running_study: tuple[str, Path]) -> None:
    from ablate.errors import StudyError
    from ablate.store import ReadOnlyResults, load_epochs

    url, _ = running_study
    with ReadOnlyResults(url) as store:
        series = store.load_epoch_series("seeds_live", "val_acc")
        with pytest.raises(StudyError, match="no per-epoch column 'val_acc; DROP TABLE trials'"):
            store.load_epoch_series("seeds_live", "val_acc; DROP TABLE trials")
    full = load_epochs("seeds_live", db=url)
    assert list(series.columns) == ["trial_id", "epoch", "val_acc"]
    pd.testing.assert_frame_equal(series, full[["trial_id", "epoch", "val_acc"]].sort_values(["trial_id", "epoch"])
                                  .reset_index(drop=True))


@pytest.mark.slow
def test_ablate_report_again_adds_the_seeds_that_finished_since(running_study: tuple[str, Path], tmp_path: Path) -> None:
    """The real CLI on a copy of the running study: the running seed shows as running, then,
    once its worker finishes it, the next `ablate report` counts it."""
    import sqlite3

    from typer.testing import CliRunner

    from ablate.cli import app

    url, _ = running_study
    copy = tmp_path / "copy.db"
    with sqlite3.connect(url.removeprefix("sqlite:///")) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    db = f"sqlite:///{copy}"
    running = load_trials("seeds_live", db=db).query("status == 'running'").iloc[0]

    def seed_row() -> str:
        out = tmp_path / "report"
        result = CliRunner().invoke(app, ["report", "seeds_live", "--db", db, "--out", str(out)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        md = (out / "report.md").read_text()
        label = next(line for line in md.splitlines() if line.startswith("| image_size=16, augment=basic |"))
        return label

    before = seed_row()
    assert "| 2/3 |" in before and "| running |" in before and "1 running" in before
    with ResultStore(db) as store:
        assert store.finish_trial(int(running["trial_id"]), "w0", status="completed",
                                  metrics=dict(val_acc=0.7, train_acc=0.75), artifacts={})
    after = seed_row()
    values = load_trials("seeds_live", db=db).query("status == 'completed' and image_size == 16 and augment == 'basic'")
    x = values["val_acc"].to_numpy(dtype=float)
    low, high = np.clip(stats.t.interval(0.95, 2, loc=x.mean(), scale=stats.sem(x)), 0, 1)
    assert f"| 3/3 | {x.mean():.3f} [{low:.3f}, {high:.3f}] |" in after and "| finished |" in after
