"""`ablate launch --slurm` on a real one-node SLURM cluster: job arrays through submitit against
PostgreSQL, a task cancelled mid-trial, `--cancel`, and the refusals that claim nothing."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from tests.launch.conftest import ROOT
from tests.run.invariants import check_completed_trials
from tests.run.processes import ABLATE, clean_env

from ablate.store import load_trials

STUDIES = Path(__file__).parent / "studies"
pytestmark = [pytest.mark.slow]


def _env(slurm_conf: str) -> dict[str, str]:
    return clean_env(SLURM_CONF=slurm_conf, OMP_NUM_THREADS="1")


def _ablate(args: list[str], slurm_conf: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ABLATE, *args], env=_env(slurm_conf), capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def _launch(study: str, options: str, db: str, runs: Path, slurm_conf: str) -> subprocess.CompletedProcess[str]:
    return _ablate(
        ["launch", str(STUDIES / f"{study}.py"), "--slurm", options, "--db", db, "--runs-dir", str(runs),
         "--lease-s", "10"],
        slurm_conf,
    )  # fmt: skip


def _slurm(args: list[str], slurm_conf: str) -> str:
    return subprocess.run(args, env=_env(slurm_conf), capture_output=True, text=True, timeout=30, check=True).stdout


def _queue(slurm_conf: str) -> list[str]:
    """Job ids (1234_0) SLURM still has pending or running."""
    return _slurm(["squeue", "--noheader", "--array", "--format=%i"], slurm_conf).split()


def _wait(what: str, done: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _statuses(study: str, db: str) -> dict[int, str]:
    trials = load_trials(study, db=db)
    return dict(zip(trials["number"].astype(int), trials["status"], strict=True))


def _running_at_epoch(db: str, epoch: int) -> list[int]:
    """Numbers of the running trials that have recorded ``epoch`` epochs (polled with one
    query: an `ablate status` process per poll would slow the training it waits for)."""
    with psycopg.connect(_libpq(db)) as conn:
        rows = conn.execute(
            "SELECT t.number FROM trials t WHERE t.status = 'running' AND "
            "(SELECT max(e.epoch) FROM epochs e WHERE e.trial_id = t.id) >= %s ORDER BY t.number",
            (epoch,),
        ).fetchall()
    return [int(n) for (n,) in rows]


def _job_of(stdout: str) -> str:
    # "digits_launch: submitted slurm job 12 (3 task(s): 12_0, 12_1, 12_2)"
    line = next(line for line in stdout.splitlines() if "submitted slurm job" in line)
    return line.split("submitted slurm job ")[1].split()[0]


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def no_jobs_left(slurm_conf: str) -> Iterator[None]:
    """Each test leaves the cluster empty for the next (its jobs cancelled if it failed early)."""
    yield
    queued = _queue(slurm_conf)
    if queued:
        subprocess.run(["scancel", *queued], env=_env(slurm_conf), timeout=30, check=False)
        _wait("SLURM to drop the cancelled jobs", lambda: not _queue(slurm_conf), 60)


@pytest.mark.usefixtures("no_jobs_left")
def test_job_array_of_three_tasks_runs_every_trial_exactly_once(slurm_conf: str, pg_url: str, runs: Path) -> None:
    launched = _launch("digits_launch", "tasks=3,time=5", pg_url, runs, slurm_conf)
    assert launched.returncode == 0, launched.stderr
    job = _job_of(launched.stdout)
    assert f"3 task(s): {job}_0, {job}_1, {job}_2" in launched.stdout
    logs = runs.absolute() / "digits_launch" / "slurm"
    assert f"logs:   {logs}" in launched.stdout  # where a user looks when a task fails
    _wait("the job array to finish", lambda: not _queue(slurm_conf), 120)

    assert _statuses("digits_launch", pg_url) == {0: "completed", 1: "completed", 2: "completed"}, (
        "\n".join(p.read_text() for p in sorted(logs.glob("*_log.*")))
    )
    trials = check_completed_trials("digits_launch", pg_url)
    assert list(trials["attempt"]) == [1, 1, 1]  # each claimed once: nothing ran twice
    # Every worker was started by a task of this array, and named after it.
    tasks = {f"{job}_{i}" for i in range(3)}
    assert {w.split("-")[1] for w in trials["worker"]} <= tasks
    for task in tasks:  # each task ran its worker to "nothing left" and exited cleanly
        assert "workers exited with [0]" in (logs / f"{task}_0_log.out").read_text()

    status = _ablate(["status", "digits_launch", "--db", pg_url], slurm_conf)
    assert status.returncode == 0, status.stderr
    assert f"slurm job {job} (3 task(s): {job}_0, {job}_1, {job}_2), submitted" in status.stdout


@pytest.mark.usefixtures("no_jobs_left")
def test_task_cancelled_mid_trial_hands_it_back_and_it_resumes_from_its_checkpoint(
    slurm_conf: str, pg_url: str, runs: Path
) -> None:
    launched = _launch("digits_resume", "tasks=2,time=5", pg_url, runs, slurm_conf)
    assert launched.returncode == 0, launched.stderr
    job = _job_of(launched.stdout)

    _wait("a trial to reach epoch 2", lambda: _running_at_epoch(pg_url, 2), 90)
    number = _running_at_epoch(pg_url, 2)[0]
    # `ablate status` shows the task that runs it, next to its worker.
    out = _ablate(["status", "digits_resume", "--db", pg_url, "--json"], slurm_conf).stdout
    seen = next(r for r in json.loads(out)["running"] if r["number"] == number)
    task = str(seen["job"])
    assert task.startswith(f"{job}_") and str(seen["worker"]).startswith(f"slurm-{task}-")
    table = _ablate(["status", "digits_resume", "--db", pg_url], slurm_conf).stdout
    assert any("job" in line and "worker" in line for line in table.splitlines()), table
    assert task in table, table
    cancelled_at = datetime.now(UTC)
    _slurm(["scancel", task], slurm_conf)

    _wait("the other task to finish the study", lambda: not _queue(slurm_conf), 120)
    assert _statuses("digits_resume", pg_url) == {0: "completed", 1: "completed"}
    trials = check_completed_trials("digits_resume", pg_url).set_index("number")
    # The cancelled task's worker handed the trial back (claimed twice, not failed), and a worker
    # of the other task finished it.
    assert trials.loc[number, "attempt"] == 2
    assert not str(trials.loc[number, "worker"]).startswith(f"slurm-{task}-")
    # Resumed, not retrained: the epochs after the cancel start past epoch 1, each epoch once.
    with psycopg.connect(_libpq(pg_url)) as conn:
        rows = conn.execute(
            "SELECT epoch, recorded_at FROM epochs WHERE trial_id = %s ORDER BY epoch",
            (int(trials.loc[number, "trial_id"]),),
        ).fetchall()
    assert [e for e, _ in rows] == list(range(1, int(trials.loc[number, "epochs_run"]) + 1))
    after = [e for e, at in rows if at > cancelled_at]
    assert after and min(after) > 2, after
    log = (runs.absolute() / "digits_resume" / "slurm" / f"{task}_0_log.out").read_text()
    assert "workers exited with [143]" in log  # SIGTERM: handed back, not killed


@pytest.mark.usefixtures("no_jobs_left")
def test_preempted_task_hands_its_trial_back_and_is_requeued_by_submitit(
    slurm_conf: str, pg_url: str, runs: Path
) -> None:
    launched = _launch("digits_resume", "tasks=1,time=5", pg_url, runs, slurm_conf)
    assert launched.returncode == 0, launched.stderr
    job = _job_of(launched.stdout)

    _wait("a trial to reach epoch 2", lambda: _running_at_epoch(pg_url, 2), 90)
    # What SLURM sends 90 s before the time limit or on preemption (#SBATCH --signal=USR2@90).
    preempted_at = datetime.now(UTC)
    _slurm(["scancel", "--signal=USR2", job], slurm_conf)

    def requeued() -> bool:
        state = _slurm(["squeue", "--noheader", "--jobs", job, "--format=%T"], slurm_conf).strip()
        return state == "PENDING"

    _wait("submitit to requeue the task", requeued, 60)
    # SLURM holds a requeued job for two minutes; the test does not wait for that, but it must
    # not start the job before the node is done with its first run: slurmd revokes that run's
    # credential at a one-second granularity, and a restart in the same second is killed
    # ("Killing non-startable batch JobId=N: Job credential revoked", the job then FAILED).
    _wait("the first run's job steps to end", lambda: not _steps_of(job), 60)
    time.sleep(2.0)
    _slurm(["scontrol", "update", f"jobid={job}", "StartTime=now"], slurm_conf)
    _wait("the requeued task to finish the study", lambda: not _queue(slurm_conf), 120)

    logs = runs.absolute() / "digits_resume" / "slurm"
    assert _statuses("digits_resume", pg_url) == {0: "completed", 1: "completed"}, (
        "\n".join(p.read_text() for p in sorted(logs.glob("*_log.*")))
    )
    trials = check_completed_trials("digits_resume", pg_url).set_index("number")
    assert sorted(trials["attempt"]) == [1, 2]  # the preempted trial claimed again, once
    number = int(trials["attempt"].idxmax())
    with psycopg.connect(_libpq(pg_url)) as conn:
        rows = conn.execute(
            "SELECT epoch, recorded_at FROM epochs WHERE trial_id = %s ORDER BY epoch",
            (int(trials.loc[number, "trial_id"]),),
        ).fetchall()
    after = [e for e, at in rows if at > preempted_at]
    assert after and min(after) > 2, after  # resumed from its checkpoint, not from epoch 1
    log = (runs.absolute() / "digits_resume" / "slurm" / f"{job}_0_log.out").read_text()
    assert f"Requeued job {job}" in log


@pytest.mark.usefixtures("no_jobs_left")
def test_cancel_stops_every_launch_of_the_study(slurm_conf: str, pg_url: str, runs: Path) -> None:
    launched = _launch("digits_resume", "tasks=2,time=5", pg_url, runs, slurm_conf)
    assert launched.returncode == 0, launched.stderr
    job = _job_of(launched.stdout)
    _wait("both trials to be running", lambda: list(_statuses("digits_resume", pg_url).values()) == ["running"] * 2, 90)

    cancelled = _ablate(["launch", "--cancel", "digits_resume", "--db", pg_url], slurm_conf)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"digits_resume: cancelled slurm job {job}."
    _wait("SLURM to end the cancelled tasks", lambda: not _queue(slurm_conf), 60)
    with psycopg.connect(_libpq(pg_url)) as conn:
        (n,) = conn.execute("SELECT count(*) FROM launches WHERE cancelled_at IS NOT NULL").fetchone() or (0,)
    assert n == 1
    # No trial is left claimed by a cancelled worker: each handed its trial back, to resume later.
    assert _statuses("digits_resume", pg_url) == {0: "queued", 1: "queued"}
    again = _ablate(["launch", "--cancel", "digits_resume", "--db", pg_url], slurm_conf)
    assert again.returncode == 0 and "no launch left to cancel" in again.stdout


@pytest.mark.parametrize(
    ("options", "db", "expected"),
    [
        ("tasks=2,partitoin=gpu", "pg", "unknown key 'partitoin'; did you mean 'partition'?"),
        ("partition=nosuch", "pg", "partition='nosuch' does not exist (partitions: debug)"),
        ("tasks=0", "pg", "tasks=0: must be at least 1"),
        ("tasks=2", "sqlite", "cannot share a SQLite file safely"),
        ("tasks=2", "postgresql://postgres:s3cret@127.0.0.1:1/test", "postgres:***@127.0.0.1:1/test does not answer from here"),
    ],
)
def test_bad_launch_is_one_line_exit_2_and_claims_nothing(
    slurm_conf: str, pg_url: str, sqlite_url: str, runs: Path, options: str, db: str, expected: str
) -> None:
    url = {"pg": pg_url, "sqlite": sqlite_url}.get(db, db)
    before = _queue(slurm_conf)
    refused = _launch("digits_launch", options, url, runs, slurm_conf)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], refused.stderr
    assert "s3cret" not in refused.stdout + refused.stderr
    assert _queue(slurm_conf) == before  # nothing submitted
    if db == "pg":  # nothing planned, so nothing can have been claimed
        with psycopg.connect(_libpq(pg_url)) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'trials'"
            ).fetchone()
            if tables and tables[0]:
                (n,) = conn.execute("SELECT count(*) FROM trials").fetchone() or (0,)
                assert n == 0
    assert not (runs / "digits_launch").exists()


def test_a_slurm_that_does_not_answer_is_one_line_naming_what_to_check(pg_url: str, runs: Path, tmp_path: Path) -> None:
    # A slurm.conf sinfo cannot read: it fails at once, as on a machine outside the cluster (a
    # missing file makes it retry for a minute: then the 20 s timeout answers with the same hint).
    conf = tmp_path / "slurm.conf"
    conf.write_text("NotAKey=1\n")
    refused = _launch("digits_launch", "tasks=2", pg_url, runs, str(conf))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("error: SLURM does not answer (sinfo: ") and "sinfo: sinfo:" not in line, line
    assert "is slurmctld running, and does $SLURM_CONF" in line
    assert not (runs / "digits_launch").exists()


def _steps_of(job: str) -> list[str]:
    """The slurmstepd processes still running a step of ``job`` on this node."""
    ps = subprocess.run(["pgrep", "-af", f"slurmstepd: \\[{job}[._]"], capture_output=True, text=True, check=False)
    return ps.stdout.splitlines()


def _libpq(url: str) -> str:
    """The SQLAlchemy test URL as psycopg takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)
