"""`ablate status`: where a study stands, read from the database alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class RunningTrial:
    number: int
    seed: int
    worker: str | None
    epoch: int | None
    epochs: int | None
    lease_age_s: float | None
    # The launcher's id of the job running this worker ("1234_0"), when `ablate launch` started it.
    job: str | None = None


@dataclass
class LaunchStatus:
    launcher: str
    job_id: str
    task_ids: list[str]
    submitted_at: str | None
    cancelled: bool


@dataclass
class StudyStatus:
    study: str
    counts: dict[str, int]
    running: list[RunningTrial] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    eta_s: float | None = None
    launches: list[LaunchStatus] = field(default_factory=list)


def _age(ts: datetime | None, now: datetime) -> float | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (now - ts).total_seconds()


def study_status(db: str | None, name: str) -> StudyStatus:
    """Counts by status, running trials (worker, epoch, time since their last heartbeat),
    failures with their first error line, and an estimate of the time left.

    Read with plain queries on a read-only driver connection (no ORM, no pandas): `ablate
    status` starts fast, and never writes.
    """
    from ablate.store import read_only_connection, read_study_progress
    from ablate.study import study_from_definition

    with read_only_connection(db) as opened:
        progress = read_study_progress(opened, name)
    now = datetime.now(UTC)
    status = StudyStatus(name, dict(progress.counts))
    for launcher, job_id, task_ids, at, cancelled in progress.launches:
        status.launches.append(
            LaunchStatus(launcher, job_id, task_ids, at.isoformat(timespec="seconds") if at else None, cancelled is not None)
        )
    for number, seed, worker, config, heartbeat_at, epoch in progress.running:
        status.running.append(
            RunningTrial(
                number=number, seed=seed, worker=worker, epoch=epoch, epochs=config.get("epochs"),
                lease_age_s=_age(heartbeat_at, now), job=_job_of(worker, progress.launches),
            )
        )  # fmt: skip
    for number, error in progress.failures:
        first = str(error or "").strip().splitlines()
        status.failures.append((number, first[0] if first else "(no error text)"))
    counts = progress.counts
    left = counts.get("queued", 0) + counts.get("running", 0)
    stored = study_from_definition(progress.definition)
    if stored.strategy.adaptive:
        n_total = stored.strategy.planned_trials(stored)
        left = max(left, n_total - sum(counts.get(s, 0) for s in ("completed", "failed", "pruned")))
    if progress.mean_duration_s is not None and left:
        status.eta_s = progress.mean_duration_s * left / max(1, len(status.running))
    return status


def _job_of(worker: str | None, launches: list[tuple[str, str, list[str], datetime | None, datetime | None]]) -> str | None:
    """The launched task running ``worker``: launchers name their workers "<launcher>-<task id>-..."."""
    for launcher, _job, task_ids, _at, _cancelled in reversed(launches):
        for task in task_ids:
            if worker and worker.startswith(f"{launcher}-{task}-"):
                return task
    return None
