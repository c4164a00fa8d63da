"""`ablate report A B`: studies compared on a real SQLite database, through the real CLI.

The table's means and intervals and the Welch test of the selected configurations are checked
against scipy on the same values the trials stored; the refusals are one line with exit code 2
and write nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from ablate.cli import app
from ablate.errors import StudyError
from ablate.report import comparison_verdicts, load_comparison
from ablate.store import ResultStore
from ablate.study import Study

from .filldb import run_study

runner = CliRunner()
BASE = dict(dataset="synthetic", num_classes=10)
#: Each study's configurations: their (val, test) accuracy per seed, noise added by seed.
NOISE = {0: 0.000, 1: 0.013, 2: -0.008, 3: 0.021}
SCRATCH = {16: 0.60, 32: 0.64}  # cnn_filters -> val accuracy
TUNED = {0.1: 0.81, 0.01: 0.86}  # lr -> val accuracy
WIDE = {0.5: 0.70}
NEAR = {16: 0.645}


def _val(center: float, seed: int, scale: float) -> float:
    return center + scale * NOISE[seed]


def _outcome(centers: dict[Any, float], factor: str, scale: float, seconds: float, n_val: int = 102):  # type: ignore[no-untyped-def]
    def outcome(params: dict[str, Any], seed: int) -> tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, str]]:
        val = _val(centers[params[factor]], seed, scale)
        test = val - 0.02 + 0.5 * scale * NOISE[(seed + 1) % 4]
        return "completed", dict(train_acc=val + 0.1, val_acc=val, test_acc=test, n_val=n_val, n_test=200,
                                 duration_s=seconds * (1 + params[factor] if factor == "lr" else 1) + seed), [], {}

    return outcome


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('compare') / 'ablate.db'}"
    with ResultStore(url) as store:
        run_study(store, Study(name="scratch", base=BASE, factors=dict(cnn_filters=list(SCRATCH)), seeds=[0, 1, 2]),
                  _outcome(SCRATCH, "cnn_filters", 1.0, 100.0))
        run_study(store, Study(name="tuned", base={**BASE, "model": "resnet18"}, factors=dict(lr=list(TUNED)),
                               seeds=[0, 1, 2, 3]), _outcome(TUNED, "lr", 1.5, 60.0))
        run_study(store, Study(name="wide", base={**BASE, "cnn_filters": 64}, factors=dict(lr=list(WIDE)), seeds=[0, 1, 2]),
                  _outcome(WIDE, "lr", 0.5, 200.0))
        run_study(store, Study(name="near", base=BASE, factors=dict(cnn_filters=list(NEAR)), seeds=[0, 1, 2]),
                  _outcome(NEAR, "cnn_filters", 1.0, 100.0))
        def without_test(params: dict[str, Any], seed: int) -> tuple[str, dict[str, Any], list[Any], dict[str, str]]:
            status, metrics, epochs, artifacts = _outcome({0.3: 0.66}, "lr", 1.0, 80.0)(params, seed)
            return status, {k: v for k, v in metrics.items() if k != "test_acc"}, epochs, artifacts

        run_study(store, Study(name="no_test", base=BASE, factors=dict(lr=[0.3]), seeds=[0, 1, 2]), without_test)
        run_study(store, Study(name="once", base=BASE, factors=dict(lr=[0.05]), seeds=[0]),
                  _outcome({0.05: 0.7}, "lr", 1.0, 50.0))
        run_study(store, Study(name="fewer_classes", base={**BASE, "num_classes": 5}, factors=dict(lr=[0.1]), seeds=[0, 1]),
                  _outcome({0.1: 0.7}, "lr", 1.0, 50.0))
        run_study(store, Study(name="other_split", base={**BASE, "val_split": 0.1}, factors=dict(lr=[0.1]), seeds=[0, 1]),
                  _outcome({0.1: 0.7}, "lr", 1.0, 50.0))
        # The same declaration read from other files: the stored validation split is smaller.
        run_study(store, Study(name="moved", base=BASE, factors=dict(lr=[0.1]), seeds=[0, 1]),
                  _outcome({0.1: 0.7}, "lr", 1.0, 50.0, n_val=99))
        run_study(store, Study(name="by_loss", base=BASE, factors=dict(lr=[0.1]), seeds=[0, 1], metric="val_loss"),
                  _outcome({0.1: 0.7}, "lr", 1.0, 50.0))
    return url


def _arm(centers: dict[Any, float], level: Any, seeds: list[int], scale: float) -> tuple[np.ndarray, np.ndarray]:
    val = np.array([_val(centers[level], s, scale) for s in seeds])
    test = val - 0.02 + 0.5 * scale * np.array([NOISE[(s + 1) % 4] for s in seeds])
    return val, test


def _mean_ci(x: np.ndarray) -> str:
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return f"{x.mean():.3f} [{low:.3f}, {high:.3f}]"


@pytest.mark.slow
def test_two_studies_one_table_checked_against_scipy(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["report", "scratch", "tuned", "--db", db], env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    out = tmp_path / "reports" / "scratch_vs_tuned"
    for name in ("index.html", "report.md", "table.md", "table.csv", "cost.png"):
        assert (out / name).is_file(), name
    table = (out / "table.md").read_text()
    # Every configuration of both studies: mean [95 % CI] over seeds of val and test accuracy.
    for centers, seeds, scale in ((SCRATCH, [0, 1, 2], 1.0), (TUNED, [0, 1, 2, 3], 1.5)):
        for level in centers:
            val, test = _arm(centers, level, seeds, scale)
            assert _mean_ci(val) in table, (level, _mean_ci(val), table)
            assert _mean_ci(test) in table, (level, _mean_ci(test))
    assert "| scratch | cnn_filters=32 | **best (validation)** | 3 |" in table
    assert "| tuned | lr=0.1 | baseline | 4 |" in table
    assert "gap: train_acc − val_acc" in table and "+0.100" in table
    assert "train time per trial (s)" in table and "101.0" in table  # seconds 100 + seed, mean over seeds 0-2
    # The test: tuned's best by validation (lr=0.01) against scratch's (cnn_filters=32), on test accuracy.
    _, x = _arm(TUNED, 0.01, [0, 1, 2, 3], 1.5)
    _, y = _arm(SCRATCH, 32, [0, 1, 2], 1.0)
    welch = stats.ttest_ind(x, y, equal_var=False)
    ci = welch.confidence_interval(0.95)
    report = (out / "report.md").read_text()
    expected = (f"tuned (lr=0.01) vs scratch (cnn_filters=32) on test_acc: Δ = {x.mean() - y.mean():+.3f}, "
                f"95 % CI [{ci.low:+.3f}, {ci.high:+.3f}] (Welch's t-test, df = {welch.df:.1f})")
    assert expected in report, report
    assert expected in " ".join(result.output.split()), result.output
    assert "Few seeds (4 and 3 per arm)" in report
    assert f"p {'< 0.001' if welch.pvalue < 0.001 else f'= {welch.pvalue:.3f}'}: better than the reference" in report
    html = (out / "index.html").read_text()
    assert "data:image/png;base64," in html and "Studies compared: scratch vs tuned" in html
    assert f"report: {Path('reports') / 'scratch_vs_tuned' / 'index.html'}" in result.output


@pytest.mark.slow
def test_three_studies_are_a_bonferroni_family(db: str, tmp_path: Path) -> None:
    out = tmp_path / "three"
    result = runner.invoke(app, ["report", "--study", "tuned", "--study", "scratch", "--study", "wide", "--db", db,
                                 "--out", str(out), "--svg"])
    assert result.exit_code == 0, result.output
    assert (out / "cost.svg").is_file() and not (out / "cost.pdf").exists()
    report = (out / "report.md").read_text()
    # tuned (the reference, named first) against scratch and wide: two tests, each at 1 - 0.05 / 2.
    _, ref = _arm(TUNED, 0.01, [0, 1, 2, 3], 1.5)
    for study, label, (_, x) in (("scratch", "cnn_filters=32", _arm(SCRATCH, 32, [0, 1, 2], 1.0)),
                                 ("wide", "all trials", _arm(WIDE, 0.5, [0, 1, 2], 0.5))):
        welch = stats.ttest_ind(x, ref, equal_var=False)
        ci = welch.confidence_interval(0.975)
        p = min(1.0, 2 * welch.pvalue)
        p_text = "< 0.001" if p < 0.001 else f"= {p:.3f}"
        assert (f"{study} ({label}) vs tuned (lr=0.01) on test_acc: Δ = {x.mean() - ref.mean():+.3f}, 97.5 % CI "
                f"[{ci.low:+.3f}, {ci.high:+.3f}] (Welch's t-test, df = {welch.df:.1f}), p {p_text} "
                "(Bonferroni over 2): worse than the reference.") in report, report


def test_a_single_seed_has_no_test_and_says_why(db: str, tmp_path: Path) -> None:
    comparison = load_comparison(["scratch", "once"], db=db)
    (test,) = comparison.tests
    assert not test.tested and test.n == 1 and test.n_reference == 3 and math.isnan(test.p_value)
    assert "no test: 1 and 3 seed(s); a test needs at least 2 on each side" in comparison_verdicts(comparison)[0]
    row = comparison.rows[comparison.rows["study"] == "once"].iloc[0]
    assert row["n"] == 1 and math.isnan(row["ci_low"]) and row["selected"]


def test_an_inconclusive_test_says_low_power_in_words(db: str) -> None:
    # near: 0.645 against scratch's best 0.64, 3 seeds a side with the same noise scale.
    comparison = load_comparison(["scratch", "near"], db=db)
    (test,) = comparison.tests
    _, x = _arm(NEAR, 16, [0, 1, 2], 1.0)
    _, y = _arm(SCRATCH, 32, [0, 1, 2], 1.0)
    check = stats.ttest_ind(x, y, equal_var=False)
    assert test.tested and test.p_value == pytest.approx(check.pvalue) and test.df == pytest.approx(check.df)
    assert test.p_value > 0.05 and test.detectable > abs(test.diff)
    (line,) = comparison_verdicts(comparison)
    assert ": inconclusive. Low power: 3 and 3 seeds per arm. The smallest difference this test detects with 80% power " \
           f"is {test.detectable:.3f}; a smaller true difference is likely missed" in line, line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scratch", "fewer_classes"], "error: cannot compare 'scratch' with 'fewer_classes': they ran on different "
                                       "data (num_classes 10 vs 5)"),
        (["scratch", "other_split"], "error: cannot compare 'scratch' with 'other_split': they ran on different data "
                                     "(val_split 0.2 vs 0.1"),
        (["scratch", "moved"], "error: cannot compare 'scratch' with 'moved': they ran on different data (n_val 102 vs 99)"),
        (["scratch", "by_loss"], "error: cannot compare 'scratch' (val_acc, maximize) with 'by_loss' (val_loss, "
                                 "minimize): the studies select on different metrics"),
        (["scratch", "nope"], "error: no study named 'nope' in sqlite:///"),
        (["scratch", "--study", "scratch", "--study", "tuned"],
         "error: study 'scratch' is named twice; a comparison needs different studies"),
        (["--study", "scratch", "--study", "scratch"],
         "error: study 'scratch' is named twice; a comparison needs different studies"),
        (["scratch", "tuned", "--baseline", "lr=0.1"], "error: --baseline applies to one study's report"),
        (["scratch", "tuned", "--metric", "test_acc"], "error: --metric applies to one study's report"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(db: str, tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["report", "--db", db, "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert not (tmp_path / "x").exists()


def test_without_test_scores_the_comparison_is_on_validation_and_says_so(db: str) -> None:
    comparison = load_comparison(["scratch", "no_test"], db=db)
    assert comparison.reported == "val_acc"
    (test,) = comparison.tests
    x, _ = _arm({0.3: 0.66}, 0.3, [0, 1, 2], 1.0)
    y, _ = _arm(SCRATCH, 32, [0, 1, 2], 1.0)
    assert test.metric == "val_acc" and test.p_value == pytest.approx(stats.ttest_ind(x, y, equal_var=False).pvalue)
    assert any(n.startswith("No test split scored for every selected configuration: the comparison is on val_acc")
               for n in comparison.notes)


def test_fewer_than_two_studies_is_refused_by_the_api(db: str) -> None:
    with pytest.raises(StudyError, match="a comparison needs at least two studies"):
        load_comparison(["scratch"], db=db)


def test_one_name_given_twice_the_old_way_is_one_report(db: str, tmp_path: Path) -> None:
    # `report A --study A` named one study before comparisons existed: still its own report.
    result = runner.invoke(app, ["report", "scratch", "--study", "scratch", "--db", db, "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "table.tex").exists()


TINY = """from ablate import Study
study = Study(name={name!r}, base=dict(dataset="digits", model="cnn", cnn_blocks=1, cnn_filters={filters}, cnn_dense=16,
              epochs=3, batch_size=32, image_size=8, augment="none", num_workers=0, prediction_samples=0),
              factors=dict(lr={lrs!r}), seeds=[0, 1], metric="val_acc")
"""


@pytest.mark.slow
def test_two_tiny_digits_studies_trained_for_real(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'digits.db'}"
    for name, filters, lrs in (("digits_a", 4, [0.05]), ("digits_b", 16, [0.1, 0.02])):
        (tmp_path / f"{name}.py").write_text(TINY.format(name=name, filters=filters, lrs=lrs))
        run = runner.invoke(app, ["run", str(tmp_path / f"{name}.py"), "--db", db, "--runs-dir", str(tmp_path / "runs")])
        assert run.exit_code == 0, run.output
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["report", "digits_a", "digits_b", "--db", db, "--out", str(out)])
    assert result.exit_code == 0, result.output
    comparison = load_comparison(["digits_a", "digits_b"], db=db)
    assert comparison.reported == "test_acc" and comparison.dataset.startswith("dataset=digits")
    assert "n_test=" in comparison.dataset  # the stored split sizes are part of what is compared
    (test,) = comparison.tests
    assert test.n == test.n_reference == 2
    with ResultStore(db) as store:
        a = store.load_trials("digits_a")
    row = comparison.rows[comparison.rows["study"] == "digits_a"].iloc[0]
    assert row["mean"] == pytest.approx(a["val_acc"].mean()) and row["time_s"] == pytest.approx(a["duration_s"].mean())
    assert (row["mean"] > 0.5), "the tiny CNN learned the digits"
    assert (out / "cost.png").stat().st_size > 10_000


def test_the_inaturalist_pair_declares_the_same_data() -> None:
    # Part B compares fine-tuning with the CNN from scratch: `ablate report inat_scratch
    # inat_finetune` refuses unless both study files declare the same data and metric.
    from ablate.report._compare import DATASET_FIELDS
    from ablate.study import TrialConfig, load_studies

    root = Path(__file__).parents[2] / "studies"
    (scratch,) = load_studies(root / "inat_scratch.py")
    (finetune,) = load_studies(root / "inat_finetune.py")
    default = TrialConfig()
    for field in DATASET_FIELDS:
        assert field not in scratch.factors and field not in finetune.factors, field
        assert scratch.base.get(field, getattr(default, field)) == finetune.base.get(field, getattr(default, field)), field
    assert (scratch.metric, scratch.direction) == (finetune.metric, finetune.direction)
