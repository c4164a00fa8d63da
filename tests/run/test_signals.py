"""SIGTERM and SIGINT with real processes: trials handed back, exit codes, no orphans, no tracebacks."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from tests.run.invariants import check_completed_trials

from ablate.store import ResultStore, load_trials

from .processes import ABLATE, STUDIES, wait_for_epochs, write_boom_study
from .processes import clean_env as _env

pytestmark = pytest.mark.slow  # every test here starts ablate in a new process


def test_sigterm_hands_the_trial_back_and_the_next_run_resumes_it(db_url: str, tmp_path: Path) -> None:
    runs = str(tmp_path / "runs")
    cmd = [*ABLATE, "run", str(STUDIES / "tiny_train.py"), "--db", db_url, "--runs-dir", runs]
    first = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_epochs("tiny_train", db_url, 1)
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 143, out + err
    assert "stopped by SIGTERM" in err and "Traceback" not in out + err
    assert list(load_trials("tiny_train", db=db_url)["status"]) == ["queued"]  # no lease to wait for
    assert not list(Path(runs).rglob("*.tmp")), "a temporary file outlived the interrupted write"
    again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming trial 0" in again.stdout
    check_completed_trials("tiny_train", db_url)


def test_sigterm_to_the_parent_of_two_workers_stops_them_all(sqlite_url: str, tmp_path: Path) -> None:
    cmd = [*ABLATE, "run", str(STUDIES / "short_train.py"), "--db", sqlite_url, "--workers", "2",
           "--runs-dir", str(tmp_path / "runs")]
    # its own session: the signal reaches the parent only, as from SLURM's or systemd's kill
    parent = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            trials = load_trials("short_train", db=sqlite_url)
            if (trials["status"] == "running").sum() == 2:
                break
        except Exception:
            pass
        time.sleep(0.05)
    else:
        raise AssertionError("the two workers never ran at once")
    parent.send_signal(signal.SIGTERM)
    out, err = parent.communicate(timeout=120)
    assert parent.returncode == 143, out + err
    assert "Traceback" not in out + err
    # no orphan keeps training: nothing running, and nothing changes any more
    with ResultStore(sqlite_url) as store:
        before = store.load_trials("short_train")
        assert not (before["status"] == "running").any(), before[["number", "status"]]
        n_epochs = len(store.load_epochs("short_train"))
        time.sleep(3)
        assert len(store.load_epochs("short_train")) == n_epochs
    alive = subprocess.run(["pgrep", "-s", str(parent.pid)], capture_output=True, text=True, check=False).stdout
    assert not alive.strip(), f"processes left in the session: {alive}"


def test_a_worker_waits_for_a_trial_under_a_live_lease_and_takes_it_over(db_url: str, tmp_path: Path) -> None:
    from ablate.study import load_studies

    (study,) = load_studies(STUDIES / "short_train.py")
    store = ResultStore(db_url)
    store.register_study(study)
    store.add_trials(study, study.validate()[:1])
    ghost = store.claim_next_trial("short_train", worker="crashed-box", lease_s=3)
    assert ghost is not None
    alive = threading.Event()
    alive.set()

    def beat() -> None:  # the other worker is alive until the waiting worker has said so
        while alive.is_set():
            store.heartbeat(ghost.trial_id, "crashed-box", 3)
            time.sleep(0.5)

    threading.Thread(target=beat, daemon=True).start()
    proc = subprocess.Popen([*ABLATE, "worker", "--study", "short_train", "--db", db_url, "--runs-dir",
                             str(tmp_path / "runs"), "--lease-s", "5"],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    alive.clear()  # ... then it dies: its lease runs out within 3 s
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, first + out + err
    assert "waiting for 1 running trial(s) of other workers (trial 0 on crashed-box" in first
    assert "resuming trial 0" not in out and "1 completed" in out
    check_completed_trials("short_train", db_url)


def test_run_exits_non_zero_when_trials_failed(sqlite_url: str, tmp_path: Path) -> None:
    study_file = write_boom_study(tmp_path, [0, 1])
    proc = subprocess.run([*ABLATE, "run", str(study_file), "--db", sqlite_url, "--runs-dir", str(tmp_path / "runs")],
                          env=_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 trial(s) failed" in proc.stderr and "ablate retry boom" in proc.stderr
