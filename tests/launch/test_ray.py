"""The Ray launcher on a real local Ray cluster (`ray start --head` on 127.0.0.1, two CPUs), real
workers training a tiny digits CNN against PostgreSQL: exactly once, a killed Ray worker loses
no trial, cancel hands trials back, an address that does not answer is refused at once.

The cluster is started once for the module and its processes (one process group, started here)
are ended at the end; nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.run.invariants import check_completed_trials
from tests.run.processes import clean_env

from ablate.errors import LaunchError
from ablate.run import plan_trials, ray_alive, ray_worker_pids
from ablate.run._launch import LaunchRequest, get_launcher
from ablate.store import ResultStore, load_trials
from ablate.study import load_studies, with_overrides

pytestmark = [pytest.mark.ray, pytest.mark.slow]

STUDY_FILE = Path(__file__).parent / "studies" / "ray_digits.py"
STUDY = "ray_digits"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive_in_group(pgid: int) -> list[str]:
    """The processes of group ``pgid`` not yet ended (zombies left to an init that never reaps
    them do not count)."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat="], capture_output=True, text=True, check=False).stdout
    return [pid for pid, group, stat in (line.split() for line in out.splitlines())
            if int(group) == pgid and not stat.startswith("Z")]


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A one-node Ray cluster of 2 CPUs on 127.0.0.1, its processes in a group of their own."""
    port = _free_port()
    # Every port Ray would take by default chosen free, and a folder of its own: a second
    # cluster on the machine (a test run in parallel) does not collide with this one.
    ports = [f"--{name}-port={_free_port()}" for name in (
        "dashboard-agent-listen", "dashboard-agent-grpc", "metrics-export",
        "node-manager", "object-manager", "runtime-env-agent",
    )]
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit
    # The actors import ablate from this checkout, as the nodes of a real cluster import the
    # installed one: the raylet passes its environment on to them.
    start = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}", *ports,
         f"--temp-dir={temp_dir}", "--node-ip-address=127.0.0.1", "--num-cpus=2", "--num-gpus=0",
         "--include-dashboard=false", "--disable-usage-stats", "--object-store-memory=100000000"],
        env=clean_env(RAY_ADDRESS=""), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    out, _ = start.communicate(timeout=120)
    pgid = start.pid
    try:
        assert start.returncode == 0, out
        yield f"127.0.0.1:{port}"
    finally:
        # `ray stop` would end every Ray process of the machine: end only this group.
        for sig, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            deadline = time.monotonic() + wait_s
            while _alive_in_group(pgid) and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _register(db: str, **overrides: Any) -> None:
    """Register and plan the study the way `ablate run` does, without running a trial."""
    (study,) = load_studies(STUDY_FILE)
    study = with_overrides(study, overrides)
    with ResultStore(db) as store:
        store.register_study(study)
        store.add_trials(study, plan_trials(study).specs)


def _request(db: str, tmp_path: Path, lease_s: float | None) -> LaunchRequest:
    return LaunchRequest(STUDY_FILE, STUDY, db, tmp_path / "runs", lease_s=lease_s)


def _launch(text: str, request: LaunchRequest) -> list[str]:
    launcher = get_launcher("ray")
    options = launcher.parse_options(text)
    launcher.check(options)
    return launcher.submit(request, options)


def _wait(what: str, done: Any, timeout_s: float = 240) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = done()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def _all_completed(db: str) -> bool:
    return bool((load_trials(STUDY, db=db)["status"] == "completed").all())


def _wait_gone(ids: list[str]) -> None:
    """Each actor ends itself once its worker finds nothing left (its CPUs are free again)."""
    _wait("the actors ending", lambda: not ray_alive(ids), timeout_s=60)


def _epochs_recorded(db: str) -> dict[int, list[tuple[int, Any]]]:
    with sa.create_engine(db).connect() as c:
        rows = c.execute(sa.text("SELECT trial_id, epoch, recorded_at FROM epochs ORDER BY trial_id, epoch"))
        out: dict[int, list[tuple[int, Any]]] = {}
        for trial_id, epoch, at in rows:
            out.setdefault(int(trial_id), []).append((int(epoch), at))
        return out


def test_two_ray_workers_run_every_trial_exactly_once(ray_address: str, pg_url: str, tmp_path: Path) -> None:
    # Trials of a few seconds: the second actor, up a little later than the first, still finds one.
    _register(pg_url, epochs=30)
    started = time.monotonic()
    ids = _launch(f"address={ray_address},workers=2", _request(pg_url, tmp_path, lease_s=5))
    assert time.monotonic() - started < 30  # it returns, it does not wait for the study
    assert len(ids) == 2 and all(i.startswith(f"ablate/ablate-{STUDY}-") and i.endswith(ray_address) for i in ids)
    assert sorted(ray_alive(ids)) == sorted(ids)
    _wait("every trial completed", lambda: _all_completed(pg_url))
    trials = check_completed_trials(STUDY, pg_url)  # one epoch row per epoch, none twice
    assert len(trials) == 3 and list(trials["attempt"]) == [1, 1, 1], trials[["number", "attempt"]]
    assert list(trials["epochs_run"]) == [30, 30, 30]
    assert trials["worker"].nunique() == 2, trials[["number", "worker"]]  # both Ray workers ran
    _wait_gone(ids)


def test_a_killed_ray_worker_loses_no_trial(ray_address: str, pg_url: str, tmp_path: Path) -> None:
    _register(pg_url, epochs=30)  # a tenth of a second each: time to kill a worker mid-trial
    ids = _launch(f"address={ray_address},workers=2", _request(pg_url, tmp_path, lease_s=2))
    pids = ray_worker_pids(ids)  # once the actors are up, before any trial is far along

    def running_with_two_epochs() -> Any:
        trials = load_trials(STUDY, db=pg_url)
        epochs = _epochs_recorded(pg_url)
        for _, t in trials[trials["status"] == "running"].iterrows():
            if len(epochs.get(int(t["trial_id"]), [])) >= 2:
                return t.to_dict()
        return None

    victim = _wait("a trial two epochs in", running_with_two_epochs)
    (actor_pid, worker_pid), = [p for p in pids.values() if victim["worker"].endswith(f"-{p[1]}")]
    os.kill(actor_pid, signal.SIGKILL)  # the Ray worker dies as with its node: no clean-up at all
    # ... and its ablate worker with it: nothing keeps training the trial
    _wait("the actor's worker ending", lambda: not _running(worker_pid), timeout_s=10)
    before = _epochs_recorded(pg_url)[int(victim["trial_id"])]
    assert len(before) < 30, "the trial finished before its worker was killed"

    _wait("every trial completed", lambda: _all_completed(pg_url))
    trials = check_completed_trials(STUDY, pg_url).set_index("trial_id")
    assert list(trials["epochs_run"]) == [30, 30, 30]
    assert int(trials.loc[victim["trial_id"], "attempt"]) == 2
    others = trials.drop(index=victim["trial_id"])
    assert list(others["attempt"]) == [1, 1]
    after = _epochs_recorded(pg_url)[int(victim["trial_id"])]
    assert [e for e, _ in after] == list(range(1, 31))
    # resumed from its checkpoint: the epochs before the last one checkpointed were not trained
    # again (their rows are the first attempt's); a fresh start would have dropped them
    assert after[: len(before) - 1] == before[: len(before) - 1]
    with sa.create_engine(pg_url).connect() as c:
        reason = c.execute(sa.text("SELECT restart_reason FROM trials WHERE id = :i"),
                           {"i": int(victim["trial_id"])}).scalar()
    assert reason is None
    _wait_gone(ids)


def test_cancel_stops_the_actors_and_their_trials_go_back(
    ray_address: str, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(pg_url, epochs=300)  # trials of half a minute: still running when cancelled
    monkeypatch.setenv("RAY_ADDRESS", ray_address)  # what address=auto finds
    launcher = get_launcher("ray")
    # Three workers on two CPUs: the third actor waits for room, and is cancelled as it waits.
    options = launcher.parse_options("address=auto,workers=3")
    launcher.check(options)
    # The default lease (60 s): a trial that is queued right after cancel was handed back.
    ids = launcher.submit(_request(pg_url, tmp_path, lease_s=None), options)

    def two_training() -> bool:
        trials = load_trials(STUDY, db=pg_url)
        epochs = _epochs_recorded(pg_url)
        running = trials[trials["status"] == "running"]
        return len(running) == 2 and all(epochs.get(int(i)) for i in running["trial_id"])

    _wait("two trials training", two_training)
    assert len(ray_alive(ids)) == 3  # the waiting one too
    started = time.monotonic()
    launcher.cancel(ids, options)
    assert time.monotonic() - started < 30  # not waiting for the waiting actor to start
    assert ray_alive(ids) == []
    trials = load_trials(STUDY, db=pg_url)
    assert list(trials["status"]) == ["queued", "queued", "queued"], trials[["number", "status"]]
    n_epochs = sum(len(v) for v in _epochs_recorded(pg_url).values())
    assert 2 <= n_epochs < 600
    time.sleep(2)
    assert sum(len(v) for v in _epochs_recorded(pg_url).values()) == n_epochs  # nothing trains on
    launcher.cancel(ids, options)  # ids already gone are not an error


def test_an_address_that_does_not_answer_is_refused_at_once(pg_url: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _register(pg_url)
    launcher = get_launcher("ray")
    dead = f"127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(LaunchError, match=f"the Ray cluster at {dead} does not answer") as e:
        launcher.check(launcher.parse_options(f"address={dead},workers=2"))
    assert time.monotonic() - started < 10
    assert e.value.exit_code == 2 and "\n" not in str(e.value)
    monkeypatch.setenv("RAY_ADDRESS", dead)
    with pytest.raises(LaunchError, match=rf"at {dead} \(from \$RAY_ADDRESS\) does not answer"):
        launcher.check(launcher.parse_options("address=auto"))
    trials = load_trials(STUDY, db=pg_url)
    assert list(trials["status"]) == ["queued"] * 3 and list(trials["attempt"]) == [0] * 3  # none claimed


def test_a_database_the_nodes_cannot_reach_is_refused_before_any_worker_starts(
    ray_address: str, tmp_path: Path
) -> None:
    dead = f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{_free_port()}/test"
    launcher = get_launcher("ray")
    options = launcher.parse_options(f"address={ray_address},workers=2")
    launcher.check(options)
    with pytest.raises(LaunchError, match=r"the database postgresql\+psycopg://postgres:\*\*\*@127.0.0.1:\d+/test "
                       r"does not answer from the Ray node \S+ \(Connection refused\)") as e:
        launcher.submit(_request(dead, tmp_path, lease_s=None), options)
    assert "s3cret" not in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("adress=auto", "unknown key 'adress'; did you mean 'address'?"),
        ("workers=0", "--ray workers=0: must be at least 1"),
        ("workers=two", "--ray workers=two: expected a whole number"),
        ("gpus_per_worker=-1", "--ray gpus_per_worker=-1: must be at least 0"),
        ("namespace=a b", "namespace=a b: letters, digits"),
        ("address=nowhere", "Ray address 'nowhere' is not HOST:PORT"),
    ],
)
def test_bad_options_are_refused_in_one_line(text: str, message: str) -> None:
    launcher = get_launcher("ray")
    with pytest.raises(LaunchError, match=message.replace("?", r"\?").replace("(", r"\(")):
        launcher.check(launcher.parse_options(text))


def test_a_bad_option_value_is_refused_before_the_database_is_asked(tmp_path: Path) -> None:
    # The default database is a SQLite file, which a launch refuses too: the typo is said first.
    proc = subprocess.run(
        [sys.executable, "-m", "ablate", "launch", str(STUDY_FILE), "--ray", "workers=two"],
        env=clean_env(), capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --ray workers=two: expected a whole number", proc.stderr


def test_more_gpus_than_a_node_has_is_refused(ray_address: str) -> None:
    launcher = get_launcher("ray")
    with pytest.raises(LaunchError, match=r"gpus_per_worker=1: no node of the Ray cluster has 1 GPU\(s\) \(the largest has 0\)"):
        launcher.check(launcher.parse_options(f"address={ray_address},gpus_per_worker=1"))
    with pytest.raises(LaunchError, match=r"cpus_per_worker=3: no node .* has 3 CPU\(s\)"):
        launcher.check(launcher.parse_options(f"address={ray_address},cpus_per_worker=3"))


def test_importing_ablate_and_listing_launchers_does_not_import_ray() -> None:
    code = ("import sys, ablate, ablate.cli; from ablate.run._launch import launcher_names; "
            "assert 'ray' in launcher_names(); assert 'ray' not in sys.modules, 'ray imported'")
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_ablate_launch_ray_from_the_command_line(ray_address: str, pg_url: str, tmp_path: Path) -> None:
    """The whole command as a user types it: plan, submit, status shows the launch and which
    actor runs which trial, the study completes, --cancel finds nothing left running."""
    from tests.run.processes import ABLATE

    def ablate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ABLATE, *args], env=clean_env(OMP_NUM_THREADS="1", RAY_ADDRESS=""),
                              capture_output=True, text=True, timeout=180, check=False)

    launched = ablate("launch", str(STUDY_FILE), "--ray", f"address={ray_address},workers=2", "--db", pg_url,
                      "--runs-dir", str(tmp_path / "runs"), "--lease-s", "5", "--set", "epochs=30")
    assert launched.returncode == 0, launched.stderr
    token = launched.stdout.split(f"submitted ray job ablate/ablate-{STUDY}-")[1].split("@")[0]
    assert f"ablate/ablate-{STUDY}-0-{token}@" in launched.stdout and "2 task(s)" in launched.stdout
    assert f"ablate launch --cancel {STUDY}" in launched.stdout

    def a_trial_with_its_actor() -> Any:
        status = json.loads(ablate("status", STUDY, "--db", pg_url, "--json").stdout)
        jobs = [r["job"] for r in status["running"] if r["job"]]
        return (status, jobs) if jobs or status["counts"]["completed"] == 3 else None

    status, jobs = _wait("status naming the actor of a running trial", a_trial_with_its_actor, timeout_s=120)
    (launch,) = status["launches"]
    assert launch["launcher"] == "ray" and len(launch["task_ids"]) == 2 and not launch["cancelled"]
    assert set(jobs) <= set(launch["task_ids"])
    _wait("every trial completed", lambda: _all_completed(pg_url))
    trials = check_completed_trials(STUDY, pg_url)
    assert list(trials["attempt"]) == [1, 1, 1]
    assert all(str(w).startswith("ray-ablate/ablate-ray_digits-") for w in trials["worker"])
    _wait_gone(launch["task_ids"])
    cancelled = ablate("launch", "--cancel", STUDY, "--db", pg_url)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"{STUDY}: cancelled ray job" in cancelled.stdout
