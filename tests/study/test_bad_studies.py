"""A corpus of broken study files: each must fail `ablate plan` and `ablate run` with the same
line naming the field (both run the one validation pipeline, `ablate.run.plan_trials`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablate.cli import app

BAD = sorted((Path(__file__).parent / "bad_studies").glob("*.py"))


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path} lacks its '# expect:' header"
    return first.removeprefix("# expect: ")


def test_corpus_is_large_enough() -> None:
    assert len(BAD) >= 20


def _one_line(command: list[str], path: Path) -> str:
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    (line,) = lines
    assert line.startswith("error: ")
    assert "Traceback" not in result.output
    assert path.name in line  # names the study file
    return line


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_study_is_one_line_naming_the_field_for_plan_and_run(path: Path, tmp_path: Path) -> None:
    """`ablate plan` refuses exactly what `ablate run` refuses, with the same line, before any write."""
    db = tmp_path / "r.db"
    planned = _one_line(["plan", str(path)], path)
    assert expected(path) in planned
    ran = _one_line(["run", str(path), "--db", str(db), "--runs-dir", str(tmp_path / "runs")], path)
    assert ran == planned
    assert not db.exists()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("from ablate import Study\nx = (\n", "broken.py:2: syntax error"),
        ("import sys\n\nimport no_such_module_here\n", "broken.py:3: ModuleNotFoundError"),
        ("raise KeyboardInterrupt\n", "broken.py:1: interrupted while loading"),
    ],
)
def test_errors_give_the_line_for_a_relative_path_too(
    text: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("broken.py").write_text(text)
    for command in (["plan", "broken.py"], ["run", "broken.py", "--db", "r.db"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, result.output
        (line,) = result.output.splitlines()
        assert line.startswith(f"error: {says}"), line
    assert not Path("r.db").exists()
