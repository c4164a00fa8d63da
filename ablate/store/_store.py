"""`ResultStore`: registering studies, planning trials, and the claim / heartbeat / finish protocol.

Exactly-once execution rests on three things here: trials are unique on (study, config hash,
seed), so re-planning only adds what is missing; a claim is one short write transaction that
takes a row no one else can take (PostgreSQL ``FOR UPDATE SKIP LOCKED``, SQLite ``BEGIN
IMMEDIATE``); and a worker writes results only while it still owns the trial, so a worker that lost
its lease cannot overwrite the one that took the trial over.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ablate.errors import NotAblateDatabaseError, StoreError, StudyError
from ablate.store import _migrate
from ablate.store._columns import (
    EPOCH_JSON,
    EPOCH_METRICS,
    FINISHED_STATUSES,
    INT_METRICS,
    STATUSES,
    TRIAL_JSON,
    TRIAL_METRICS,
)
from ablate.store._engine import (
    DEFAULT_RECONNECT_S,
    is_sqlite,
    make_engine,
    mask_url,
    resolve_url,
    retry_on_disconnect,
    run_transaction,
    session_scope,
    sqlite_path,
)
from ablate.store._factors import (
    factor_kinds,
    own_metric_columns,
    param_columns,
    param_value,
    replace_view,
    view_name_for,
)
from ablate.store._lookup import latest_study, study_info, study_row
from ablate.store._models import (
    Artifact,
    Environment,
    Epoch,
    Launch,
    Study,
    Trial,
    TrialParam,
)
from ablate.store._read import StudyReading
from ablate.store._readonly import Rows, driver_rows, study_summaries
from ablate.store._records import (
    ClaimedTrial,
    EnvironmentRecord,
    LaunchRecord,
    StoredTrial,
    StudyInfo,
    TrialRecord,
    config_from_json,
)
from ablate.study import jsonable, level_value

if TYPE_CHECKING:

    from ablate.study import Study as StudyDecl
    from ablate.study import TrialSpec

T = TypeVar("T")
Proposer = Callable[[list[TrialRecord]], "TrialSpec | None"]


class ResultStore(StudyReading):
    """The result database: one SQLite file or PostgreSQL database holding many studies.

    ``url`` is a SQLAlchemy URL or a file path; None means ``$ABLATE_DB``, else
    ``sqlite:///ablate.db`` in the working directory. Opening a store upgrades the schema to the
    latest migration (``upgrade=False`` skips that). With ``create=False`` a SQLite file that does
    not exist is an error instead of a new empty database.

    ``read_only=True`` is for the commands that only read (``ls``, ``sql``, ``report``,
    ``status``, ``export``, ``load_trials``): nothing is created or migrated, the connections
    cannot write (SQLite ``mode=ro``, PostgreSQL read-only sessions), and a database without
    ablate's current schema is refused with NotAblateDatabaseError (``require_schema=False``
    skips that check, for ``ablate db current``).
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        create: bool = True,
        upgrade: bool = True,
        read_only: bool = False,
        require_schema: bool = True,
    ) -> None:
        self.url = resolve_url(url)
        if read_only:
            create = upgrade = False
        if is_sqlite(self.url):
            path = sqlite_path(self.url)
            if path is None:
                raise StoreError(
                    f"{mask_url(self.url)}: an in-memory SQLite database is not shared between "
                    "connections or worker processes; use a file, e.g. sqlite:///ablate.db"
                )
            # Absolute, so that worker processes started elsewhere and later chdir()s agree.
            path = path.resolve()
            self.url = self.url.set(database=str(path))
            if not path.exists() and not create:
                raise NotAblateDatabaseError(
                    f"no database at {path}; run a study first, or pass --db / set ABLATE_DB "
                    "to the database to use"
                )
            if not read_only:
                path.parent.mkdir(parents=True, exist_ok=True)
        self.display_url = mask_url(self.url)
        # How long each transaction keeps retrying while the connection is lost (a worker sets
        # it to its lease: past that, the trial is no longer its own anyway).
        self.reconnect_s = DEFAULT_RECONNECT_S
        self.read_only = read_only
        self.engine: Engine = make_engine(self.url, read_only=read_only)
        if upgrade:
            # A worker (re)starting while the server restarts or drops sessions waits for it.
            retry_on_disconnect(lambda: _migrate.upgrade(self.engine), reconnect_s=self.reconnect_s)
        elif read_only and require_schema:
            try:
                _migrate.require_current(self.engine, self.display_url)
            except BaseException:
                self.engine.dispose()
                raise

    def __repr__(self) -> str:
        return f"ResultStore({self.display_url!r})"

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the store's connections (it can be used again; it reconnects)."""
        self.engine.dispose()

    # ------------------------------------------------------------------ plumbing
    def session(self, *, write: bool = True) -> AbstractContextManager[Session]:
        """A context-managed ORM session: commits on success, rolls back and raises StoreError."""
        return session_scope(self.engine, write=write)

    def _transact(self, fn: Callable[[Session], T], *, write: bool = True, doing: str = "") -> T:
        return run_transaction(
            self.engine, fn, write=write, doing=doing, reconnect_s=self.reconnect_s
        )

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    def _now(self, session: Session) -> datetime:
        # Leases are compared across machines: on PostgreSQL use the server's clock, not ours.
        if self.is_sqlite:
            return datetime.now(UTC)
        value = session.scalar(select(func.now()))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)

    def _study_row(self, session: Session, name: str, *, lock: bool = False) -> Study:
        return study_row(session, name, self.display_url, lock=lock)

    # ------------------------------------------------------------------ studies and trials
    def register_study(self, study: StudyDecl, new_version: bool = False) -> StudyInfo:
        """Insert or update a study (and its SQL view); ``new_version`` starts version N+1.

        Raises StudyError when the study exists with a different base configuration: its
        results would mix two configurations.
        """
        definition = jsonable(study.definition())
        base_hash = study.base_hash()
        definition_hash = _hash(definition)
        kinds = factor_kinds(study)
        baseline = None
        if study.design == "ofat":
            baseline = jsonable({f: level_value(f, v) for f, v in study.baseline_levels().items()})
        values = dict(
            description=study.description or "",
            design=study.design,
            metric=study.metric,
            direction=str(study.direction),
            definition=definition,
            definition_hash=definition_hash,
            base_hash=base_hash,
            factors=kinds,
            seeds=list(study.seeds),
            baseline=baseline,
        )

        def op(session: Session) -> StudyInfo:
            row = latest_study(session, study.name, lock=True)
            now = self._now(session)
            if row is None or new_version:
                version = 1 if row is None else row.version + 1
                row = Study(
                    name=study.name,
                    version=version,
                    view_name=view_name_for(study.name),
                    created_at=now,
                    updated_at=now,
                    **values,
                )
                session.add(row)
                session.flush()
            elif row.base_hash != base_hash:
                raise StudyError(
                    f"study {study.name!r} (version {row.version}) in {self.display_url} was "
                    f"registered with a different base configuration or train function; running "
                    "it now would mix results of two configurations in one study. Start a new "
                    "version with --new-version (new_version=True), or give the study a new name"
                )
            else:
                factors_changed = dict(row.factors) != kinds
                changed = any(getattr(row, k) != v for k, v in values.items())
                for key, value in values.items():
                    setattr(row, key, value)
                if changed:
                    row.updated_at = now
                session.flush()
                if factors_changed:
                    _backfill_params(session, row.id, kinds)
            replace_view(session.connection(), row.view_name, row.id, kinds, own_metric_columns(definition))
            return study_info(row)

        # Two processes registering the same new study at once: one insert wins, the other
        # hits the unique (name, version) constraint and, run again, finds the row.
        for attempt in range(3):
            try:
                return self._transact(op, doing=f"registering study {study.name!r}")
            except StoreError as e:
                if not isinstance(e.__cause__, IntegrityError) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def add_trials(self, study: StudyDecl, specs: Iterable[TrialSpec]) -> int:
        """Insert the planned trials missing from the database; return how many were new.

        A trial is identified by (config hash, seed); existing ones are left as they are, in
        any status. New trials are numbered after the highest existing number.
        """
        specs = list(specs)

        def op(session: Session) -> int:
            row = self._study_row(session, study.name, lock=True)
            existing = {
                (h, s)
                for h, s in session.execute(
                    select(Trial.config_hash, Trial.seed).where(Trial.study_id == row.id)
                )
            }
            number = _next_number(session, row.id)
            new = []
            for spec in specs:
                key = (spec.config_hash, spec.seed)
                if key in existing:
                    continue
                existing.add(key)
                new.append(_new_trial(row, spec, number=number, status="queued"))
                number += 1
            session.add_all(new)
            return len(new)

        return self._transact(op, doing=f"adding trials to study {study.name!r}")

    def claim_next_trial(
        self,
        study_name: str,
        *,
        worker: str,
        host: str | None = None,
        device: str | None = None,
        lease_s: float,
        propose: Proposer | None = None,
    ) -> ClaimedTrial | None:
        """Atomically take the next trial of the study's current version, or None.

        Queued trials come first, in (replicate, number) order, so every configuration's first
        seed runs before any second seed; then running trials whose lease expired (their worker
        died), which are taken over with ``attempt`` + 1. If nothing is claimable and
        ``propose`` is given (adaptive designs), it is called under the study's lock with every
        existing trial as a :class:`TrialRecord`; the TrialSpec it returns is inserted as running
        for this worker. ``propose`` may run more than once when SQLite is busy, so it must only
        compute. It must not return a (config, seed) that already exists.
        """

        def op(session: Session) -> ClaimedTrial | None:
            row = self._study_row(session, study_name)
            now = self._now(session)
            trial = _claimable(session, row.id, now)
            if trial is None and propose is not None:
                # Serialise proposers: each sees every proposal committed before it.
                self._study_row(session, study_name, lock=True)
                records = _trial_records(session, row)
                spec = propose(records)
                if spec is None:
                    return None
                if any(r.config_hash == spec.config_hash and r.seed == spec.seed for r in records):
                    raise StoreError(
                        f"study {study_name!r}: the proposed trial (config {spec.config_hash}, seed "
                        f"{spec.seed}) already exists; propose() must return a new configuration or seed"
                    )
                trial = _new_trial(
                    row, spec, number=_next_number(session, row.id), status="running"
                )
                session.add(trial)
            if trial is None:
                return None
            trial.status = "running"
            trial.worker = worker
            trial.host = host
            trial.device = device
            trial.attempt = (trial.attempt or 0) + 1
            trial.started_at = trial.started_at or now
            trial.heartbeat_at = now
            trial.lease_expires_at = now + timedelta(seconds=lease_s)
            # Kept across attempts and retries of this trial, unique across databases.
            trial.run_token = trial.run_token or uuid.uuid4().hex[:12]
            session.flush()
            kinds = dict(row.factors)
            params = {
                p.name: param_value(_param_row(p), kinds.get(p.name, "mixed")) for p in trial.params
            }
            return ClaimedTrial(
                trial_id=trial.id,
                study_name=row.name,
                number=trial.number,
                seed=trial.seed,
                params={k: params.get(k) for k in kinds} | params,
                config=config_from_json(dict(trial.config), trial_id=trial.id),
                config_hash=trial.config_hash,
                attempt=trial.attempt,
                lease_s=lease_s,
                replicate=trial.replicate,
                study_id=row.id,
                current_epoch=trial.current_epoch,
                run_token=trial.run_token,
            )

        return self._transact(op, doing=f"claiming a trial of study {study_name!r}")

    def live_leases(self, study_name: str) -> list[tuple[int, str | None, float]]:
        """Running trials of the study's current version whose lease has not expired yet, as
        (number, worker, seconds until the lease expires), soonest first."""

        def op(session: Session) -> list[tuple[int, str | None, float]]:
            row = self._study_row(session, study_name)
            now = self._now(session)
            rows = session.execute(
                select(Trial.number, Trial.worker, Trial.lease_expires_at)
                .where(Trial.study_id == row.id, Trial.status == "running")
                .order_by(Trial.lease_expires_at)
            )
            out = []
            for number, worker, expires in rows:
                if expires is None:
                    continue
                if expires.tzinfo is None:  # SQLite hands back naive UTC
                    expires = expires.replace(tzinfo=UTC)
                left = (expires - now).total_seconds()
                if left > 0:
                    out.append((int(number), worker, left))
            return out

        return self._transact(op, write=False, doing=f"reading the leases of study {study_name!r}")

    def start_fresh(self, trial_id: int, worker: str, reason: str | None) -> int:
        """This attempt trains the trial from epoch 1: drop the epochs earlier attempts recorded
        (so that the trial ends with exactly the epochs it ran) and, when there were any, record
        ``reason`` as its ``restart_reason``. Returns how many epoch rows were dropped."""

        def op(session: Session) -> int:
            owned = session.scalar(select(Trial.id).where(*_owned(trial_id, worker)))
            if owned is None:
                return 0
            dropped = _rowcount(session.execute(delete(Epoch).where(Epoch.trial_id == trial_id)))
            if dropped and reason:
                session.execute(
                    update(Trial).where(Trial.id == trial_id).values(restart_reason=reason)
                )
            return dropped

        return self._transact(op, doing=f"starting trial {trial_id} from epoch 1")

    def heartbeat(
        self, trial_id: int, worker: str, lease_s: float, epoch: int | None = None
    ) -> bool:
        """Renew this worker's lease (and note the current epoch); False if it lost the trial."""

        def op(session: Session) -> bool:
            now = self._now(session)
            values: dict[str, Any] = {
                "heartbeat_at": now,
                "lease_expires_at": now + timedelta(seconds=lease_s),
            }
            if epoch is not None:
                values["current_epoch"] = int(epoch)
            result = session.execute(
                update(Trial).where(*_owned(trial_id, worker)).values(**values)
            )
            return _rowcount(result) == 1

        return self._transact(op, doing=f"renewing the lease of trial {trial_id}")

    def record_epoch(self, trial_id: int, metrics: Mapping[str, Any]) -> None:
        """Store one epoch's metrics (``epoch`` is 1-based); a repeated epoch replaces the old row.

        Known keys go to typed columns; others to the ``extra`` JSON column. Non-finite numbers
        (a diverged loss) are stored as NULL.
        """
        epoch = metrics.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise StoreError(
                f"trial {trial_id}: record_epoch needs an integer 'epoch' >= 1, got {epoch!r}"
            )
        values: dict[str, Any] = {"trial_id": trial_id, "epoch": epoch}
        extra = {}
        for key, value in metrics.items():
            if key == "epoch":
                continue
            if key in EPOCH_METRICS:
                values[key] = _number(key, value)
            elif key in EPOCH_JSON:
                values[key] = _json_value(value) if value else None
            else:
                extra[key] = _json_value(value)
        values["extra"] = extra or None

        def op(session: Session) -> None:
            values["recorded_at"] = self._now(session)
            session.execute(_upsert(session, Epoch, values, ["trial_id", "epoch"]))

        self._transact(op, doing=f"recording epoch {epoch} of trial {trial_id}")

    def finish_trial(
        self,
        trial_id: int,
        worker: str,
        *,
        status: str,
        metrics: Mapping[str, Any],
        error: str | None = None,
        artifacts: Mapping[str, str | os.PathLike[str]] | None = None,
        environment: EnvironmentRecord | None = None,
    ) -> bool:
        """Store a trial's outcome; False (nothing written) if this worker no longer owns it.

        ``status`` is completed, failed or pruned. Metric keys with a column of their own
        (val_acc, best_epoch, n_params, stop_reason, ...) go there, others to ``extra_metrics``.
        ``artifacts`` maps a kind ("best_checkpoint", "predictions") to a path; ``environment``
        (versions, git revision, device name, host) is written as given.
        """
        if status not in FINISHED_STATUSES:
            raise StoreError(
                f"trial {trial_id}: finish status {status!r}; allowed: {', '.join(FINISHED_STATUSES)}"
            )
        if environment is not None and not isinstance(environment, EnvironmentRecord):
            raise StoreError(
                f"trial {trial_id}: environment must be an ablate.store.EnvironmentRecord "
                f"(ablate.train.environment() makes one), got {type(environment).__name__}"
            )
        values: dict[str, Any] = {"status": status, "error": error, "lease_expires_at": None}
        extra = {}
        for key, value in metrics.items():
            if key == "stop_reason":
                values[key] = None if value is None else str(value)
            elif key in TRIAL_METRICS:
                values[key] = _number(key, value)
            elif key in TRIAL_JSON:
                values[key] = _json_value(value) if value else None
            else:
                extra[key] = _json_value(value)
        values["extra_metrics"] = extra or None

        def op(session: Session) -> bool:
            now = self._now(session)
            values["finished_at"] = now
            if values.get("duration_s") is None:
                started = session.scalar(select(Trial.started_at).where(Trial.id == trial_id))
                values["duration_s"] = (now - started).total_seconds() if started else None
            result = session.execute(
                update(Trial).where(*_owned(trial_id, worker)).values(**values)
            )
            if _rowcount(result) != 1:
                # Run again after a connection dropped while this commit was acknowledged: the
                # first attempt did finish it.
                done = session.execute(
                    select(Trial.status, Trial.worker, Trial.error).where(Trial.id == trial_id)
                ).first()
                return done is not None and tuple(done) == (status, worker, error)
            for kind, path in (artifacts or {}).items():
                row = {
                    "trial_id": trial_id,
                    "kind": str(kind),
                    "path": os.fspath(path),
                    "created_at": now,
                }
                session.execute(_upsert(session, Artifact, row, ["trial_id", "kind"]))
            if environment is not None:
                env = {"trial_id": trial_id, "recorded_at": now, **environment.columns()}
                env["extra"] = _json_value(environment.extra) or None
                session.execute(_upsert(session, Environment, env, ["trial_id"]))
            return True

        return self._transact(op, doing=f"finishing trial {trial_id}")

    def release_trial(self, trial_id: int, worker: str) -> bool:
        """Hand a running trial back to the queue (the worker was interrupted on purpose).

        Its epochs and checkpoint stay, so whoever claims it next resumes where it stopped,
        without waiting for the lease to expire. False if this worker no longer owns it.
        """

        def op(session: Session) -> bool:
            result = session.execute(
                update(Trial)
                .where(*_owned(trial_id, worker))
                .values(status="queued", worker=None, lease_expires_at=None)
            )
            return _rowcount(result) == 1

        return self._transact(op, doing=f"releasing trial {trial_id}")

    def requeue_trials(self, study_name: str, statuses: Sequence[str] = ("failed",)) -> int:
        """Put the study's trials in ``statuses`` back in the queue (``ablate retry``).

        Their final metrics and error are cleared; epochs already recorded stay (a resumed
        trial overwrites them). Returns how many trials were requeued.
        """
        allowed = tuple(s for s in STATUSES if s != "queued")
        bad = [s for s in statuses if s not in allowed]
        if bad:
            raise StoreError(f"requeue status {bad[0]!r}; allowed: {', '.join(allowed)}")
        cleared: dict[str, Any] = {m: None for m in TRIAL_METRICS}
        cleared.update(
            status="queued", worker=None, host=None, device=None, lease_expires_at=None,
            heartbeat_at=None, finished_at=None, error=None, extra_metrics=None, data=None,
        )  # fmt: skip

        def op(session: Session) -> int:
            row = self._study_row(session, study_name, lock=True)
            result = session.execute(
                update(Trial)
                .where(Trial.study_id == row.id, Trial.status.in_(list(statuses)))
                .values(**cleared)
            )
            return _rowcount(result)

        return self._transact(op, doing=f"requeueing trials of study {study_name!r}")

    # ------------------------------------------------------------------ launches
    def record_launch(
        self, study_name: str, launcher: str, job_id: str, task_ids: Sequence[str],
        options: Mapping[str, str], log_dir: str | None = None,
    ) -> int:
        """Remember what ``ablate launch`` submitted for the study's current version; its id."""

        def op(session: Session) -> int:
            row = self._study_row(session, study_name)
            launch = Launch(
                study_id=row.id, launcher=launcher, job_id=job_id, task_ids=list(task_ids),
                options=dict(options), log_dir=log_dir, submitted_at=self._now(session),
            )  # fmt: skip
            session.add(launch)
            session.flush()
            return int(launch.id)

        return self._transact(op, doing=f"recording a launch of study {study_name!r}")

    def launches(self, study_name: str, *, active_only: bool = False) -> list[LaunchRecord]:
        """The launches of every version of the study, oldest first (``active_only``: those
        not cancelled)."""

        def op(session: Session) -> list[LaunchRecord]:
            self._study_row(session, study_name)  # the usual error when there is no such study
            query = (
                select(Launch).join(Study, Study.id == Launch.study_id)
                .where(Study.name == study_name).order_by(Launch.id)
            )  # fmt: skip
            if active_only:
                query = query.where(Launch.cancelled_at.is_(None))
            return [
                LaunchRecord(
                    launch_id=r.id, launcher=r.launcher, job_id=r.job_id, task_ids=[str(t) for t in r.task_ids],
                    options={str(k): str(v) for k, v in r.options.items()}, log_dir=r.log_dir,
                    submitted_at=r.submitted_at, cancelled_at=r.cancelled_at,
                )
                for r in session.scalars(query)
            ]

        return self._transact(op, write=False, doing=f"reading the launches of study {study_name!r}")

    def mark_launch_cancelled(self, launch_id: int) -> None:
        """Record that the launch's jobs were cancelled (``ablate launch --cancel``)."""

        def op(session: Session) -> None:
            session.execute(
                update(Launch).where(Launch.id == launch_id, Launch.cancelled_at.is_(None))
                .values(cancelled_at=self._now(session))
            )  # fmt: skip

        self._transact(op, doing=f"marking launch {launch_id} cancelled")

    # ------------------------------------------------------------------ reading
    def load_study(self, name: str) -> StudyInfo:
        """The current version of study ``name``."""
        return self._transact(lambda s: study_info(self._study_row(s, name)), write=False)

    def trial_records(self, name: str) -> list[TrialRecord]:
        """Every trial of the study's current version, as an adaptive sampler sees them."""
        return self._transact(lambda s: _trial_records(s, self._study_row(s, name)), write=False)

    def study_summaries(self) -> list[dict[str, Any]]:
        return self._transact(lambda s: study_summaries(_session_rows(s)), write=False)

    def _read(self, name: str, reader: Callable[[Rows, StudyInfo], T]) -> T:
        """``reader`` on the study's current version, in one read transaction."""
        return self._transact(
            lambda s: reader(_session_rows(s), study_info(self._study_row(s, name))), write=False
        )

    # ------------------------------------------------------------------ what workers read often
    # Asked on every claim and every epoch by ablate.run: counts and aggregates in SQL, and only
    # the epochs that are new, never the whole study in a DataFrame.
    def status_counts(self, name: str) -> dict[str, int]:
        """How many trials of the study's current version are in each status, in the order of
        the statuses (queued, running, completed, failed, pruned); a status no trial has is left
        out."""

        def op(session: Session) -> dict[str, int]:
            row = self._study_row(session, name)
            counts = dict(
                session.execute(
                    select(Trial.status, func.count())
                    .where(Trial.study_id == row.id)
                    .group_by(Trial.status)
                ).all()
            )
            ordered = [s for s in STATUSES if s in counts] + sorted(set(counts) - set(STATUSES))
            return {str(s): int(counts[s]) for s in ordered}

        return self._transact(op, write=False, doing=f"counting the trials of study {name!r}")

    def median_duration_s(self, name: str) -> float | None:
        """The median ``duration_s`` of the study's completed trials (None when none has one):
        what the next trial is expected to take. Two small queries, however many trials."""

        def op(session: Session) -> float | None:
            row = self._study_row(session, name)
            timed = (Trial.study_id == row.id, Trial.status == "completed", Trial.duration_s.is_not(None))
            n = int(session.scalar(select(func.count()).where(*timed)) or 0)
            if n == 0:
                return None
            middle = [
                float(d)
                for d in session.scalars(
                    select(Trial.duration_s)
                    .where(*timed)
                    .order_by(Trial.duration_s)
                    .offset((n - 1) // 2)
                    .limit(2 - n % 2)
                )
                if d is not None
            ]
            return middle[0] if len(middle) == 1 else (middle[0] + middle[1]) / 2

        return self._transact(op, write=False, doing=f"reading the durations of study {name!r}")

    def trial_states(self, name: str) -> dict[int, tuple[str, int]]:
        """Every trial of the study's current version as trial_id -> (status, attempt)."""

        def op(session: Session) -> dict[int, tuple[str, int]]:
            row = self._study_row(session, name)
            rows = session.execute(
                select(Trial.id, Trial.status, Trial.attempt)
                .where(Trial.study_id == row.id)
                .order_by(Trial.id)
            )
            return {int(t): (str(status), int(attempt or 0)) for t, status, attempt in rows}

        return self._transact(op, write=False, doing=f"reading the trials of study {name!r}")

    def find_trial(self, name: str, number: int) -> StoredTrial | None:
        """Trial ``number`` of study ``name``'s current version with its config, status, run
        token and artifact paths (what a warm start reads); None when the study has no such
        trial; StudyError listing the studies when there is no study ``name``."""

        def op(session: Session) -> StoredTrial | None:
            row = self._study_row(session, name)
            trial = session.scalars(
                select(Trial).where(Trial.study_id == row.id, Trial.number == number).limit(1)
            ).first()
            if trial is None:
                return None
            artifacts = session.execute(
                select(Artifact.kind, Artifact.path).where(Artifact.trial_id == trial.id)
            )
            return StoredTrial(
                trial_id=trial.id, study_name=row.name, study_version=row.version,
                number=trial.number, seed=trial.seed, status=trial.status,
                config=dict(trial.config), run_token=trial.run_token,
                artifacts={str(kind): str(path) for kind, path in artifacts},
            )  # fmt: skip

        return self._transact(op, write=False, doing=f"reading trial {number} of study {name!r}")

    def epoch_values(
        self,
        name: str,
        metric: str,
        *,
        recorded_since: datetime | None = None,
        trial_ids: Iterable[int] | None = None,
    ) -> list[tuple[int, int, float | None, datetime]]:
        """One epoch metric of the study's current version, as (trial_id, epoch, value,
        recorded_at) ordered by trial and epoch; value None where it is missing or not a number.

        ``recorded_since`` keeps only the epochs recorded (or replaced) at or after that time, so
        that a reader that keeps what it read fetches only what is new; ``trial_ids`` only those
        trials' epochs. ``metric`` is an epoch column (val_acc, ...) or a key of ``extra``.
        """
        column = getattr(Epoch, metric) if metric in EPOCH_METRICS else Epoch.extra

        def op(session: Session) -> list[tuple[int, int, float | None, datetime]]:
            row = self._study_row(session, name)
            query = (
                select(Epoch.trial_id, Epoch.epoch, column, Epoch.recorded_at)
                .join(Trial, Trial.id == Epoch.trial_id)
                .where(Trial.study_id == row.id)
                .order_by(Epoch.trial_id, Epoch.epoch)
            )
            if recorded_since is not None:
                query = query.where(Epoch.recorded_at >= recorded_since)
            if trial_ids is not None:
                query = query.where(Epoch.trial_id.in_(sorted({int(t) for t in trial_ids})))
            out = []
            for trial_id, epoch, value, at in session.execute(query):
                if metric not in EPOCH_METRICS:
                    value = (value or {}).get(metric)
                number = (
                    float(value)
                    if isinstance(value, int | float) and not isinstance(value, bool)
                    else None
                )
                out.append((int(trial_id), int(epoch), None if number != number else number, at))
            return out

        return self._transact(op, write=False, doing=f"reading the epochs of study {name!r}")


# ---------------------------------------------------------------------- helpers
def _claimable(session: Session, study_id: int, now: datetime) -> Trial | None:
    base = select(Trial).where(Trial.study_id == study_id)
    order = (Trial.replicate, Trial.number)
    queued = base.where(Trial.status == "queued").order_by(*order).limit(1)
    trial = session.scalars(queued.with_for_update(skip_locked=True)).first()
    if trial is not None:
        return trial
    expired = base.where(Trial.status == "running", Trial.lease_expires_at < now)
    return session.scalars(
        expired.order_by(*order).limit(1).with_for_update(skip_locked=True)
    ).first()


def _next_number(session: Session, study_id: int) -> int:
    highest = session.scalar(select(func.max(Trial.number)).where(Trial.study_id == study_id))
    return 0 if highest is None else int(highest) + 1


def _new_trial(study: Study, spec: TrialSpec, *, number: int, status: str) -> Trial:
    seeds = [int(s) for s in study.seeds]
    return Trial(
        study_id=study.id,
        number=number,
        seed=int(spec.seed),
        replicate=seeds.index(spec.seed) if spec.seed in seeds else 0,
        config_hash=spec.config_hash,
        status=status,
        config=jsonable(spec.config.to_dict()),
        attempt=0,
        params=[
            TrialParam(name=name, **param_columns(value)) for name, value in spec.params.items()
        ],
    )


def _backfill_params(session: Session, study_id: int, kinds: Mapping[str, str]) -> None:
    """Give trials planned before a factor was added its value, taken from their config."""
    have = {
        (t, n)
        for t, n in session.execute(
            select(TrialParam.trial_id, TrialParam.name)
            .join(Trial, Trial.id == TrialParam.trial_id)
            .where(Trial.study_id == study_id)
        )
    }
    for trial_id, config in session.execute(
        select(Trial.id, Trial.config).where(Trial.study_id == study_id)
    ):
        for name in kinds:
            if (trial_id, name) in have:
                continue
            if name in config:
                value = config[name]
            elif name in (config.get("extra") or {}):
                value = config["extra"][name]
            else:
                continue
            session.add(TrialParam(trial_id=trial_id, name=name, **param_columns(value)))
    session.flush()


def _param_row(p: TrialParam) -> dict[str, Any]:
    return {
        "value_num": p.value_num,
        "value_text": p.value_text,
        "value_bool": p.value_bool,
        "value_json": p.value_json,
    }


def _trial_records(session: Session, study: Study) -> list[TrialRecord]:
    kinds = dict(study.factors)
    params: dict[int, dict[str, Any]] = {}
    rows = session.execute(
        select(TrialParam)
        .join(Trial, Trial.id == TrialParam.trial_id)
        .where(Trial.study_id == study.id)
    ).scalars()
    for p in rows:
        params.setdefault(p.trial_id, {})[p.name] = param_value(
            _param_row(p), kinds.get(p.name, "mixed")
        )
    records = []
    for t in session.scalars(
        select(Trial).where(Trial.study_id == study.id).order_by(Trial.number)
    ):
        metrics = {m: getattr(t, m) for m in TRIAL_METRICS if getattr(t, m) is not None}
        metrics.update(t.extra_metrics or {})
        records.append(
            TrialRecord(
                trial_id=t.id,
                number=t.number,
                seed=t.seed,
                status=t.status,
                params=params.get(t.id, {}),
                config_hash=t.config_hash,
                metrics=metrics,
                replicate=t.replicate,
            )
        )
    return records


def _owned(trial_id: int, worker: str) -> tuple[Any, ...]:
    return (Trial.id == trial_id, Trial.worker == worker, Trial.status == "running")


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


def _upsert(session: Session, model: type[Any], values: Mapping[str, Any], keys: list[str]) -> Any:
    dialect = session.get_bind().dialect.name
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    stmt = insert(model).values(**values)
    changes = {k: getattr(stmt.excluded, k) for k in values if k not in keys}
    return stmt.on_conflict_do_update(index_elements=keys, set_=changes)


def _number(key: str, value: Any) -> float | int | None:
    if value is None:
        return None
    try:
        number = float(value)  # numpy and torch scalars too
    except (TypeError, ValueError):
        raise StoreError(f"metric {key!r} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        return None
    return int(number) if key in INT_METRICS else number


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalar
        try:
            return _json_value(value.item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, Path):
        return str(value)
    return jsonable(value)


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _session_rows(session: Session) -> Rows:
    """The readers' queries on the session's own driver connection, inside its transaction."""
    connection = session.connection()
    return driver_rows(connection.connection.driver_connection, connection.dialect.name)
