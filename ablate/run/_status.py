"""`ablate status`: where a study stands, read from the database alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd


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


def _age(ts: Any, now: datetime) -> float | None:
    if ts is None or pd.isna(ts):
        return None
    ts = pd.Timestamp(ts)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return (now - ts.to_pydatetime()).total_seconds()


def study_status(store: Any, name: str) -> StudyStatus:
    """Counts by status, running trials (worker, epoch, time since their last heartbeat),
    failures with their first error line, and an estimate of the time left."""
    info = store.load_study(name)
    trials = store.load_trials(name)
    epochs = store.load_epochs(name)
    counts = {str(k): int(v) for k, v in trials["status"].value_counts().items()}
    last_epoch = epochs.groupby("trial_id")["epoch"].max().to_dict() if len(epochs) else {}
    now = datetime.now(UTC)
    status = StudyStatus(name, counts)
    for row in trials[trials["status"] == "running"].itertuples():
        config = row.config if isinstance(row.config, dict) else {}
        status.running.append(
            RunningTrial(
                number=int(row.number), seed=int(row.seed), worker=row.worker,
                epoch=last_epoch.get(row.trial_id), epochs=config.get("epochs"),
                lease_age_s=_age(row.heartbeat_at, now),
            )
        )
    for row in trials[trials["status"] == "failed"].itertuples():
        first = str(row.error or "").strip().splitlines()
        status.failures.append((int(row.number), first[0] if first else "(no error text)"))
    done = trials[trials["status"] == "completed"]["duration_s"].dropna()
    left = counts.get("queued", 0) + counts.get("running", 0)
    if info.design in ("random", "tpe"):
        n_total = (info.definition.get("n_trials") or 0) * len(info.seeds)
        left = max(left, n_total - sum(counts.get(s, 0) for s in ("completed", "failed", "pruned")))
    if len(done) and left:
        workers = max(1, len(status.running))
        status.eta_s = float(done.mean()) * left / workers
    return status
