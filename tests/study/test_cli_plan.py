"""`ablate plan` through Typer's runner and as a real subprocess; help imports no torch.

How fast `ablate --help` starts is measured by bench/startup.py, not asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablate.cli import app

ROOT = Path(__file__).resolve().parents[2]
STUDIES = sorted((ROOT / "studies").glob("*.py"))
ABLATE = [sys.executable, "-m", "ablate"]


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_every_study_file_plans(path: Path) -> None:
    result = CliRunner().invoke(app, ["plan", str(path), "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["n_trials"] >= 1
    assert plan["study"] == path.stem


def test_plan_json_lists_trials_and_level_counts() -> None:
    result = CliRunner().invoke(app, ["plan", str(ROOT / "studies/digits_quick.py"), "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["study"] == "digits_quick" and plan["design"] == "grid"
    assert plan["n_trials"] == len(plan["trials"]) == 18
    assert plan["trials"][0] == {
        "number": 0, "params": {"image_size": 4, "augment": "none"}, "seed": 0,
        "config_hash": plan["trials"][0]["config_hash"],
    }
    assert {c["level"]: c["trials"] for c in plan["level_counts"]["image_size"]} == {4: 6, 8: 6, 16: 6}


def test_plan_table_shows_counts() -> None:
    result = CliRunner().invoke(app, ["plan", str(ROOT / "studies/effnet_imgsize.py")])
    assert result.exit_code == 0, result.output
    assert "3 trials: 3 configurations x 1 seed(s)" in result.output


def test_file_with_two_studies_and_selection(tmp_path: Path) -> None:
    f = tmp_path / "two.py"
    f.write_text(
        "from ablate import Study\n"
        "a = Study(name='a', factors=dict(image_size=[8, 16]))\n"
        "b = Study(name='b', factors=dict(lr=[0.1]))\n"
    )
    runner = CliRunner()
    both = runner.invoke(app, ["plan", str(f), "--json"])
    assert both.exit_code == 0 and [p["study"] for p in json.loads(both.output)] == ["a", "b"]
    one = runner.invoke(app, ["plan", str(f), "--study", "b", "--json"])
    assert json.loads(one.output)["study"] == "b"
    missing = runner.invoke(app, ["plan", str(f), "--study", "c"])
    assert missing.exit_code == 2 and "no study named 'c'; it defines: a, b" in missing.output


def test_missing_file_is_one_line() -> None:
    result = CliRunner().invoke(app, ["plan", "nope/x.py"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: nope/x.py: no such study file"


@pytest.mark.slow
def test_subprocess_plan_and_error_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run([*ABLATE, "plan", "studies/digits_quick.py", "--json"], cwd=ROOT,
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["n_trials"] == 18
    bad = tmp_path / "bad.py"
    bad.write_text("from ablate import Study\nstudy = Study(name='s', base=dict(lr='x'))\n")
    err = subprocess.run([*ABLATE, "plan", str(bad)], capture_output=True, text=True, check=False)
    assert err.returncode == 2
    assert "Traceback" not in err.stderr and "field 'lr' must be a number" in err.stderr


@pytest.mark.slow
def test_help_imports_no_torch() -> None:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    code = (
        "import sys;"
        "from typer.testing import CliRunner; from ablate.cli import app;"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
        "[CliRunner().invoke(app, [c.name, '--help']) for c in app.registered_commands];"
        "assert 'torch' not in sys.modules and 'pandas' not in sys.modules, 'heavy import on --help'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    subprocess.run([*ABLATE, "--help"], check=True, capture_output=True)


def test_every_command_has_help_text() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    for command in app.registered_commands:
        assert command.callback is not None and command.callback.__doc__, command.name
    assert "plan" in result.output
