"""Option values on the command line are checked and converted by Typer, with its own one-line errors."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ablate.cli import app
from ablate.store import ResultStore


def _sql(*args: str, db: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["sql", "SELECT 1 AS one", "--db", str(db), "--csv", *args])
    return result.exit_code, result.output


def test_timeout_values_are_checked_by_typer(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    ResultStore(str(db)).close()
    assert _sql(db=db) == (0, "one\n1\n")  # --timeout at its default, 300.0
    assert _sql("--timeout", "5", db=db) == (0, "one\n1\n")  # "5" checked and converted by Typer
    code, output = _sql("--timeout", "-1", db=db)
    assert code == 2 and "Invalid value for '--timeout'" in output and "greater than or equal to 0" in output
    code, output = _sql("--timeout", "soon", db=db)
    assert code == 2 and "Invalid value for '--timeout'" in output
