"""`--workers` starts no more processes than there are trials (and devices) to give them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ablate.run import run_study
from ablate.run._preflight import capped_workers
from ablate.store import load_trials


def test_capped_by_trials_max_trials_gpus_and_cores() -> None:
    assert capped_workers(4, runnable=10, max_trials=None, gpus=8, uses_gpu=True) == (4, None)
    n, line = capped_workers(8, runnable=3, max_trials=None, gpus=8, uses_gpu=True)
    assert n == 3 and line == "--workers 8: starting 3, as there are only 3 trials left to run"
    n, line = capped_workers(8, runnable=30, max_trials=2, gpus=8, uses_gpu=True)
    assert n == 2 and "--max-trials 2" in str(line)
    n, line = capped_workers(8, runnable=30, max_trials=None, gpus=2, uses_gpu=True)
    assert n == 2 and "only 2 GPUs" in str(line)
    cores = os.cpu_count() or 1
    n, line = capped_workers(cores + 5, runnable=1000, max_trials=None, gpus=0, uses_gpu=True)
    assert n == cores and "CPU core" in str(line)
    n, line = capped_workers(8, runnable=0, max_trials=None, gpus=0, uses_gpu=False)
    assert n == 1 and "only 0 trials left" in str(line)


@pytest.mark.slow
def test_run_starts_one_worker_per_trial_left(
    sqlite_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    study_file = tmp_path / "two.py"
    study_file.write_text(
        "from ablate import Study\n"
        "def train(config, reporter):\n"
        "    return {'val_acc': config.extra['x'] / 10}\n"
        "study = Study(name='two', factors=dict(x=[1, 2]), train=train)\n"
    )
    (outcome,) = run_study(study_file, db=sqlite_url, workers=8, runs_dir=tmp_path / "runs")
    assert outcome.counts == {"completed": 2}
    out = capfd.readouterr().out
    assert "--workers 8: starting 2, as there are only 2 trials left to run" in out
    assert out.count("[worker ") >= 1 and "[worker 2]" not in out
    assert sorted(load_trials("two", db=sqlite_url)["val_acc"]) == [0.1, 0.2]


@pytest.mark.parametrize("runs", ["/dev/null/runs", "a_file/runs", "a_file"])
def test_a_runs_folder_that_cannot_be_made_is_refused_before_anything_is_written(
    runs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ablate.cli import app

    monkeypatch.chdir(tmp_path)
    Path("a_file").write_text("not a folder")
    Path("s.py").write_text(
        "from ablate import Study\n"
        "study = Study(name='s', factors=dict(x=[1]), train=lambda c, r: {'val_acc': 1.0})\n"
    )
    result = CliRunner().invoke(app, ["run", "s.py", "--db", "r.db", "--runs-dir", runs])
    assert result.exit_code == 2, result.output
    (line,) = result.output.splitlines()
    assert line.startswith(f"error: runs folder {runs}: ")
    assert not Path("r.db").exists()


def test_retry_on_a_database_without_ablate_schema_creates_none(tmp_path: Path) -> None:
    from ablate.errors import NotAblateDatabaseError
    from ablate.run import retry_trials

    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(NotAblateDatabaseError):
        retry_trials("s", db=str(empty))
    assert empty.read_bytes() == b""
