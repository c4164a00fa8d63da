"""Run identity: a trial resumes only its own checkpoints, whatever else lies in the runs folder."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from tests.run.invariants import check_completed_trials

from ablate.run._folders import IDENTITY, checkpoint_folder
from ablate.store import ResultStore, load_epochs, load_trials

from .processes import ABLATE, STUDIES, wait_for_epochs
from .processes import clean_env as _env


def _ablate(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ABLATE, *args], cwd=cwd, env=_env(**env), capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.slow
def test_a_second_database_and_a_new_version_in_the_default_runs_folder_train_their_own_trials(tmp_path: Path) -> None:
    study = str(STUDIES / "short_train.py")
    first = _ablate("run", study, "--db", "a.db", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    check_completed_trials("short_train", str(tmp_path / "a.db"))

    # The same study into another database, same working directory, same default ./runs.
    second = _ablate("run", study, "--db", "b.db", cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resuming" not in second.stdout
    b = check_completed_trials("short_train", str(tmp_path / "b.db"))
    assert len(load_epochs("short_train", db=str(tmp_path / "b.db"))) == 6  # 2 trials x 3 epochs

    # And a new version of it in b.db: trained again, not "resumed" or refused.
    third = _ablate("run", study, "--db", "b.db", "--new-version", cwd=tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "study version 2" in third.stdout and "resuming" not in third.stdout
    v2 = check_completed_trials("short_train", str(tmp_path / "b.db"))
    assert set(v2["trial_id"]).isdisjoint(b["trial_id"])
    folders = sorted(p.name for p in (tmp_path / "runs" / "short_train").iterdir())
    assert len(folders) == 6, folders  # 3 runs x 2 trials, each its own folder
    for folder in (tmp_path / "runs" / "short_train").iterdir():
        assert json.loads((folder / IDENTITY).read_text())["run_token"] in folder.name


def test_a_foreign_checkpoint_is_never_resumed_and_never_blocks(tmp_path: Path) -> None:
    mine = SimpleNamespace(run_token="aaaa", trial_id=7, number=3, seed=0, study_name="s", config_hash="h")
    folder, note = checkpoint_folder(tmp_path, "s", mine)
    assert note is None and folder.name == "trial-0003-seed0-aaaa"
    assert json.loads((folder / IDENTITY).read_text())["run_token"] == "aaaa"
    # someone copies another run's checkpoint folder over ours
    (folder / IDENTITY).write_text(json.dumps({"run_token": "bbbb"}))
    (folder / "last.pt").write_bytes(b"not ours")
    other, note = checkpoint_folder(tmp_path, "s", mine)
    assert other == folder.with_name("trial-0003-seed0-aaaa-2")
    assert note is not None and "another run" in note and "starts fresh" in note
    again, _ = checkpoint_folder(tmp_path, "s", mine)
    assert again == other  # the next attempt resumes from its own folder
    # a checkpoint without any identity (written by hand or by an older ablate) is foreign too
    plain = SimpleNamespace(run_token="cccc", trial_id=8, number=4, seed=0, study_name="s", config_hash="h")
    legacy = tmp_path / "s" / "trial-0004-seed0-cccc"
    legacy.mkdir()
    (legacy / "last.pt").write_bytes(b"?")
    assert checkpoint_folder(tmp_path, "s", plain)[0].name == "trial-0004-seed0-cccc-2"




@pytest.mark.slow
def test_a_worker_that_cannot_see_the_checkpoint_records_why_it_restarts(db_url: str, tmp_path: Path) -> None:
    study = STUDIES / "tiny_train.py"
    first = subprocess.Popen([*ABLATE, "run", str(study), "--db", db_url, "--runs-dir", str(tmp_path / "box1"),
                              "--lease-s", "2"], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_epochs("tiny_train", db_url, 2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    time.sleep(2.5)  # the lease expires
    # another machine: its own runs folder, without box1's checkpoint
    other = _ablate("worker", "--study", "tiny_train", "--db", db_url, "--runs-dir", str(tmp_path / "box2"),
                    "--lease-s", "2", cwd=tmp_path)
    assert other.returncode == 0, other.stdout + other.stderr
    assert "found no checkpoint" in other.stdout
    check_completed_trials("tiny_train", db_url)  # the first attempt's epochs did not outlive it
    with ResultStore(db_url) as store, store.session(write=False) as session:
        from ablate.store._models import Trial

        reason = session.scalar(select(Trial.restart_reason))
    assert reason is not None and "attempt 2" in reason and "box2" in reason and "epoch 1" in reason
    assert load_trials("tiny_train", db=db_url)["attempt"].iloc[0] == 2
