"""`ablate status`: where a study stands, read from the database alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ablate.store import ResultStore


@dataclass
class RunningTrial:
    number: int
    seed: int
    worker: str | None
    epoch: int | None
    epochs: int | None
    lease_age_s: float | None


@dataclass
class StudyStatus:
    study: str
    counts: dict[str, int]
    running: list[RunningTrial] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    eta_s: float | None = None


def _age(ts: datetime | None, now: datetime) -> float | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (now - ts).total_seconds()


def study_status(store: ResultStore, name: str) -> StudyStatus:
    """Counts by status, running trials (worker, epoch, time since their last heartbeat),
    failures with their first error line, and an estimate of the time left.

    Read with plain queries, not DataFrames: `ablate status` starts without importing pandas.
    """
    from sqlalchemy import func, select

    from ablate.store import Epoch, Trial
    from ablate.study import study_from_definition

    info = store.load_study(name)
    counts = store.status_counts(name)

    def read(session: Session) -> StudyStatus:
        of_study = Trial.study_id == info.study_id
        status = StudyStatus(name, dict(counts))
        now = datetime.now(UTC)
        running = session.execute(
            select(Trial.id, Trial.number, Trial.seed, Trial.worker, Trial.config, Trial.heartbeat_at)
            .where(of_study, Trial.status == "running")
            .order_by(Trial.number)
        ).all()
        last_epoch = dict(
            session.execute(
                select(Epoch.trial_id, func.max(Epoch.epoch))
                .where(Epoch.trial_id.in_([r.id for r in running]))
                .group_by(Epoch.trial_id)
            ).all()
        ) if running else {}  # fmt: skip
        for r in running:
            config = r.config if isinstance(r.config, dict) else {}
            status.running.append(
                RunningTrial(
                    number=int(r.number), seed=int(r.seed), worker=r.worker,
                    epoch=last_epoch.get(r.id), epochs=config.get("epochs"),
                    lease_age_s=_age(r.heartbeat_at, now),
                )
            )  # fmt: skip
        for number, error in session.execute(
            select(Trial.number, Trial.error).where(of_study, Trial.status == "failed").order_by(Trial.number)
        ):
            first = str(error or "").strip().splitlines()
            status.failures.append((int(number), first[0] if first else "(no error text)"))
        mean_duration = session.scalar(
            select(func.avg(Trial.duration_s)).where(of_study, Trial.status == "completed")
        )
        left = counts.get("queued", 0) + counts.get("running", 0)
        stored = study_from_definition(info.definition)
        if stored.strategy.adaptive:
            n_total = stored.strategy.planned_trials(stored)
            left = max(left, n_total - sum(counts.get(s, 0) for s in ("completed", "failed", "pruned")))
        if mean_duration is not None and left:
            workers = max(1, len(status.running))
            status.eta_s = float(mean_duration) * left / workers
        return status

    return store._transact(read, write=False)
