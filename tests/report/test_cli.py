"""`ablate report` end to end on a real SQLite database: the table, the path, one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ablate.cli import app
from ablate.store import ResultStore
from ablate.study import Study

from .filldb import run_study
from .test_build import effnet_outcome, effnet_study

runner = CliRunner()


@pytest.fixture(scope="module")
def effnet_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The EfficientNet OFAT study, finished, plus a study with nothing completed yet."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'ablate.db'}"
    with ResultStore(url) as store:
        run_study(store, effnet_study(), effnet_outcome)
        waiting = Study(name="waiting", base=dict(dataset="synthetic", num_classes=10), factors=dict(lr=[0.1, 0.05]))
        store.register_study(waiting)
        store.add_trials(waiting, waiting.validate())
    return url


@pytest.mark.slow
def test_report_prints_the_table_and_the_page(effnet_db: str, tmp_path: Path) -> None:
    out = tmp_path / "effnet"
    result = runner.invoke(app, ["report", "--study", "effnet_imgsize", "--db", effnet_db, "--out", str(out)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for number in ("0.348", "0.316", "0.610", "0.580", "0.552", "0.557", "-0.264", "-0.023"):
        assert number in result.output
    assert f"report: {out / 'index.html'}" in result.output
    assert (out / "index.html").exists() and (out / "table.tex").exists()
    assert list(out.glob("*.png")) and not list(out.glob("*.svg")), "PNG only unless --svg"


@pytest.mark.slow
def test_metric_and_baseline_options(effnet_db: str, tmp_path: Path) -> None:
    out = tmp_path / "r"
    result = runner.invoke(app, ["report", "-s", "effnet_imgsize", "--db", effnet_db, "--out", str(out), "--svg",
                                 "--metric", "train_acc", "--baseline", "image_size=64"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in out.glob("*.svg")) == sorted(p.stem for p in out.glob("*.png"))
    table = (out / "table.md").read_text()
    assert "Baseline: image_size=64, augment=none (given by --baseline)." in table
    assert "| 128 | none | 1 | **0.610** | **0.580** | 12.8 | +0.262 |" in table  # Δ train_acc = 0.61 - 0.348


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--study", "nope"], "error: no study named 'nope' in sqlite:///"),
        (["--study", "effnet_imgsize", "--metric", "val_accuracy"],
         "error: study 'effnet_imgsize': --metric 'val_accuracy' is not a recorded metric; allowed: train_acc, "
         "val_acc"),
        (["--study", "effnet_imgsize", "--baseline", "resolution=64"],
         "error: --baseline names 'resolution', which is not a factor; factors: image_size, augment"),
        (["--study", "effnet_imgsize", "--baseline", "image_size=96"],
         "error: --baseline image_size=96 is not one of its levels (64, 128)"),
        (["--study", "waiting"], "error: study 'waiting' has no completed trials to report (2 queued)"),
        (["--study", "effnet_imgsize", "--metric", "test_acc"],
         "error: study 'effnet_imgsize': --metric 'test_acc' has no value in any completed trial; allowed: train_acc, val_acc"),
        (["--study", "effnet_imgsize", "--baseline", "image_size=64,augment=basic"],
         "error: --baseline image_size=64,augment=basic matches no configuration of the study (not planned"),
        (["--study", "effnet_imgsize", "--columns", "val_acc,accuracy"],
         "error: --columns 'accuracy' is not a column of the table; allowed: image_size, augment, n"),
    ],
)
def test_user_errors_are_one_line(effnet_db: str, tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["report", "--db", effnet_db, "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert not (tmp_path / "x").exists()


def test_missing_database_file_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    db = tmp_path / "typo.db"
    result = runner.invoke(app, ["report", "--study", "x", "--db", f"sqlite:///{db}"])
    assert result.exit_code != 0 and "no database at" in result.output
    assert not db.exists()


@pytest.mark.slow
@pytest.mark.parametrize("columns", [80, 160])
def test_the_terminal_table_fits_the_terminal(effnet_db: str, tmp_path: Path, columns: int) -> None:
    grid = Study(name="grid_terminal", base=dict(dataset="synthetic", num_classes=10),
                 factors=dict(image_size=[16, 24], cnn_activation=["relu", "gelu"]), seeds=[0, 1, 2])

    def outcome(params: dict[str, Any], seed: int) -> tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, str]]:
        val = 0.5 + params["image_size"] / 100 + (0.03 if params["cnn_activation"] == "gelu" else 0) + seed / 1000
        return "completed", dict(train_acc=val + 0.05, val_acc=val, best_val_acc=val + 0.01, test_acc=val - 0.01,
                                 duration_s=30.0 + seed), [], {}

    with ResultStore(effnet_db) as store:
        run_study(store, grid, outcome)
    result = runner.invoke(app, ["report", "--study", "grid_terminal", "--db", effnet_db, "--out", str(tmp_path)],
                           env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    table = lines[: next(i for i, line in enumerate(lines) if line.startswith("└")) + 1]
    assert max(len(line) for line in table) <= columns
    assert "…" not in result.output, "a cell was cut"
    body = [line for line in table if line.startswith("│")]
    assert len(body) == 4, "one line per configuration: no cell wrapped"
    header = " ".join(line for line in table if line.startswith("┃"))
    for column in ("image_size", "n", "final val acc", "Δ val_acc"):
        assert column in header, column
    # Every seed moved every configuration alike: no t-test, said in the notes, no p column.
    assert "'identical differences: no test'" in result.output and "p (Bonferroni)" not in header
    assert "0.771 ± 0.001" in result.output  # image_size=24, gelu: 0.77 + seed / 1000 over seeds 0, 1, 2
    if columns == 80:
        hidden = " ".join(result.output.split("Not shown: ")[1].split("; the full table")[0].split())
        assert "final train acc" in hidden and "test acc" in hidden, hidden
        assert "the full table is in table.md, table.csv and index.html." in " ".join(result.output.split())
        assert "test acc" not in header
    else:  # the verdict comes before the other metrics, then as many of them as fit
        assert "test " in header and "final train acc" in header


@pytest.mark.slow
def test_best_baseline_is_labelled_post_hoc_and_columns_choose_the_table(effnet_db: str, tmp_path: Path) -> None:
    out = tmp_path / "best"
    result = runner.invoke(app, ["report", "-s", "effnet_imgsize", "--db", effnet_db, "--out", str(out),
                                 "--baseline", "best", "--columns", "image_size,augment,val_acc,diff"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    table = (out / "table.md").read_text()
    assert "picked post hoc as the best row by val_acc" in table and "Post hoc baseline" in table
    header = next(line for line in table.splitlines() if line.startswith("| image"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["image_size", "augment", "final val acc", "Δ val_acc"]
    tex = (out / "table.tex").read_text()
    assert r"\begin{table}" in tex and r"\label{tab:effnet_imgsize}" in tex
    assert "Every replicate" in (out / "report.md").read_text() and "Every replicate" in (out / "index.html").read_text()


def test_a_grid_baseline_excluded_by_constraints_is_refused_at_plan_time() -> None:
    from ablate.errors import StudyError

    study = Study(name="g", base=dict(dataset="synthetic", num_classes=10),
                  factors=dict(image_size=[16, 24], lr=[0.1, 0.05]), baseline=dict(image_size=24, lr=0.05),
                  constraints=[lambda c: not (c.image_size == 24 and c.lr == 0.05)])
    with pytest.raises(StudyError, match=r"baseline \(image_size=24, lr=0.05\) is excluded by the constraints"):
        study.validate()


@pytest.mark.parametrize("where", ["file", "under_a_file", "dev_null"])
def test_an_output_folder_that_cannot_be_written_is_refused_first(effnet_db: str, tmp_path: Path, where: str) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("the user's own file")
    out = {"file": a_file, "under_a_file": a_file / "report", "dev_null": Path("/dev/null/report")}[where]
    result = runner.invoke(app, ["report", "effnet_imgsize", "--db", effnet_db, "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: report --out "), result.output
    assert a_file.read_text() == "the user's own file"
