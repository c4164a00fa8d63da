"""A corpus of broken study files: each must fail `ablate plan` with one line naming the field."""

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


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_study_is_one_line_naming_the_field(path: Path) -> None:
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    (line,) = lines
    assert line.startswith("error: ")
    assert "Traceback" not in result.output
    assert path.name in line  # names the study file
    assert expected(path) in line
