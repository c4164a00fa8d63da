"""`AblateStorage`: ablate's result database as a read-only Optuna storage.

Optuna's tools (``optuna.visualization``, ``optuna.importance``, ``Study.trials_dataframe``) and
optuna-dashboard read studies through :class:`optuna.storages.BaseStorage`. This adapter answers
those reads from ablate's own tables, through a read-only :class:`~ablate.store.ResultStore`: no
copy, nothing written, and every call reads the database again, so a dashboard follows workers
live. How an ablate trial looks as an Optuna trial:

* ``number`` and ``_trial_id`` are the trial's number and id; the study id is the id of the
  study's current version (older versions are not listed).
* ``state``: queued -> WAITING, running -> RUNNING, completed -> COMPLETE, failed -> FAIL,
  pruned -> PRUNED. A completed trial without a finite value of the study metric is shown as
  FAIL, as Optuna records a NaN objective (``user_attrs["status"]`` still says "completed").
* ``value``: the study metric's final value; ``intermediate_values``: its value per epoch
  (step = epoch, 1-based), epochs without a number left out.
* ``params``: the factor values in their real types. Levels are a ``CategoricalDistribution``;
  ``uniform``/``loguniform`` a ``FloatDistribution`` and ``intrange`` an ``IntDistribution``,
  from the study's stored definition (widened to the values trials hold, should the declaration
  have changed under a version). Levels that are lists or dicts appear as their JSON text.
* ``user_attrs``: seed, replicate, config_hash, status, worker, host, device, attempt, error
  (the failure text), and every final metric that has a value (extra metrics included).
* ``datetime_start`` / ``datetime_complete``: started_at / finished_at in local time without a
  time zone, as Optuna's own storages keep them.

Writes raise :class:`ReadOnlyStorageError`, with one exception: the notes optuna-dashboard
saves (study system attributes named ``dashboard:...note...``) are kept in this object's memory,
so the note editor works, and are gone when the process ends. They never reach the database.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState

from ablate.errors import StoreError, StudyError
from ablate.metrics import metric_names
from ablate.store import ResultStore, StudyInfo
from ablate.study import Choice, IntRange, Uniform, level_value, study_from_definition

if TYPE_CHECKING:
    import optuna
    import pandas as pd

Database = str | os.PathLike[str] | ResultStore | None

STATES = {
    "queued": TrialState.WAITING,
    "running": TrialState.RUNNING,
    "completed": TrialState.COMPLETE,
    "failed": TrialState.FAIL,
    "pruned": TrialState.PRUNED,
}
#: Where Optuna (>= 3.4) and optuna-dashboard look for the objective's name.
METRIC_NAMES_ATTR = "study:metric_names"
#: Final metrics with a column of their own; stop_reason is text, the rest numbers.
FINAL_METRICS = metric_names(per_trial=True, column=True)
#: Trial columns of load_trials shown as user attributes (besides the metrics).
RUN_ATTRS = ("seed", "replicate", "config_hash", "status", "worker", "host", "device", "attempt", "error")
#: The load_trials columns read; a factor's namesake is read as trial_<name> (see load_trials).
TRIAL_COLUMNS = (
    "trial_id", "number", *RUN_ATTRS, *FINAL_METRICS, "started_at", "finished_at", "heartbeat_at",
    "extra_metrics",
)  # fmt: skip
_CATEGORICAL_TYPES = (bool, int, float, str)


class ReadOnlyStorageError(StoreError):
    """Something tried to write through :class:`AblateStorage`: ablate's results are written by
    ``ablate run`` / ``ablate worker`` only."""

    exit_code = 2


def _refuse(what: str) -> ReadOnlyStorageError:
    return ReadOnlyStorageError(
        f"{what}: ablate's result database is read-only through Optuna; trials are added and "
        "run by `ablate run` / `ablate worker`"
    )


def _is_note_key(key: str) -> bool:
    # optuna_dashboard._note: "dashboard:note_ver", "dashboard:note_str:0", "dashboard:<trial_id>:note_str:0"
    return key.startswith("dashboard:") and ":note_" in key


@dataclass(frozen=True)
class _StudyEntry:
    """A study's current version as the adapter serves it."""

    info: StudyInfo
    direction: StudyDirection
    # Declared distributions by factor (None: not representable, built from the values seen).
    declared: dict[str, BaseDistribution | None]

    @property
    def study_id(self) -> int:
        return self.info.study_id

    @property
    def name(self) -> str:
        return self.info.name


class AblateStorage(BaseStorage):
    """ablate's result database (``db``: a URL, a path, an open ResultStore, or None for
    ``$ABLATE_DB`` / ``sqlite:///ablate.db``) as a read-only Optuna storage.

    ``studies`` limits what is listed to those study names. Every read runs short read-only
    transactions on the database (nothing is cached but the study declarations), so workers
    writing at the same time are neither blocked nor seen half-way: each trial comes from one
    consistent read of its row. The mapping from ablate to Optuna is in the module docstring.
    """

    def __init__(self, db: Database = None, *, studies: Iterable[str] | None = None) -> None:
        self._owns_store = not isinstance(db, ResultStore)
        self.store = db if isinstance(db, ResultStore) else ResultStore(db, read_only=True)
        self._only = None if studies is None else set(studies)
        self._lock = threading.Lock()
        # Study declarations by name, reread when the study row's updated_at moves.
        self._entries: dict[str, tuple[datetime, _StudyEntry]] = {}
        self._names_by_id: dict[int, str] = {}
        self._study_of_trial: dict[int, int] = {}
        # Notes optuna-dashboard saved, by study id (see the module docstring).
        self._notes: dict[int, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"AblateStorage({self.store.display_url!r})"

    def close(self) -> None:
        """Close the database connections (of a store this object opened itself)."""
        if self._owns_store:
            self.store.close()

    def remove_session(self) -> None:
        self.close()

    # ------------------------------------------------------------------ studies
    def _entry(self, name: str) -> _StudyEntry:
        """The current version of study ``name``; StudyError when there is none."""
        if self._only is not None and name not in self._only:
            raise StudyError(
                f"no study named {name!r} served here (studies: {', '.join(sorted(self._only))})"
            )
        info = self.store.load_study(name)
        with self._lock:
            cached = self._entries.get(name)
            if cached is not None and cached[1].study_id == info.study_id and cached[0] == info.updated_at:
                return cached[1]
        entry = _StudyEntry(
            info=info,
            direction=StudyDirection.MAXIMIZE if info.direction == "maximize" else StudyDirection.MINIMIZE,
            declared=_declared_distributions(info),
        )
        with self._lock:
            self._entries[name] = (info.updated_at, entry)
            self._names_by_id[info.study_id] = name
        return entry

    def _entry_by_id(self, study_id: int) -> _StudyEntry:
        """The study whose current version has id ``study_id``; KeyError otherwise."""
        with self._lock:
            name = self._names_by_id.get(study_id)
        if name is None:
            self.get_all_studies()  # learns the ids of every study
            with self._lock:
                name = self._names_by_id.get(study_id)
        if name is None:
            raise KeyError(f"no study with id {study_id} in {self.store.display_url}")
        try:
            entry = self._entry(name)
        except StudyError as e:
            raise KeyError(str(e)) from e
        if entry.study_id != study_id:
            raise KeyError(
                f"study id {study_id} is an older version of study {name!r}; its current "
                f"version has id {entry.study_id}"
            )
        return entry

    def _names(self) -> list[str]:
        names = sorted({str(s["name"]) for s in self.store.study_summaries()})
        return [n for n in names if self._only is None or n in self._only]

    def get_all_studies(self) -> list[FrozenStudy]:
        studies = []
        for name in self._names():
            try:
                entry = self._entry(name)
            except StudyError:  # removed between the listing and now
                continue
            studies.append(
                FrozenStudy(
                    study_name=entry.name,
                    direction=None,
                    directions=[entry.direction],
                    user_attrs=_study_user_attrs(entry.info),
                    system_attrs=self._system_attrs(entry),
                    study_id=entry.study_id,
                )
            )
        return sorted(studies, key=lambda s: s._study_id)

    def get_study_id_from_name(self, study_name: str) -> int:
        try:
            return self._entry(study_name).study_id
        except StudyError as e:
            raise KeyError(str(e)) from e

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._entry_by_id(study_id).name

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return [self._entry_by_id(study_id).direction]

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return _study_user_attrs(self._entry_by_id(study_id).info)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._system_attrs(self._entry_by_id(study_id))

    def _system_attrs(self, entry: _StudyEntry) -> dict[str, Any]:
        with self._lock:
            notes = dict(self._notes.get(entry.study_id, {}))
        return {METRIC_NAMES_ATTR: [entry.info.metric], **notes}

    # ------------------------------------------------------------------ trials
    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        # Every call builds new objects from a fresh read: a copy is what deepcopy asks for.
        entry = self._entry_by_id(study_id)
        trials = self._read_trials(entry)
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return trials

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            study_id = self._study_of_trial.get(trial_id)
        candidates = [study_id] if study_id is not None else [s._study_id for s in self.get_all_studies()]
        for candidate in candidates:
            for trial in self.get_all_trials(candidate, deepcopy=False):
                if trial._trial_id == trial_id:
                    return trial
        raise KeyError(f"no trial with id {trial_id} in {self.store.display_url}")

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        for trial in self.get_all_trials(study_id, deepcopy=False):
            if trial.number == trial_number:
                return trial._trial_id
        raise KeyError(f"no trial number {trial_number} in study id {study_id}")

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        # optuna-dashboard asks on every study request: the trials without their curves, then
        # the best one's curve, rather than every epoch of the study a second time.
        entry = self._entry_by_id(study_id)
        done = [t for t in self._read_trials(entry, curves=False) if t.state == TrialState.COMPLETE]
        if not done:
            raise ValueError("No trials are completed yet.")
        pick = max if entry.direction == StudyDirection.MAXIMIZE else min
        best = pick(done, key=lambda t: float(t.value))  # type: ignore[arg-type]
        best.intermediate_values = self._curves(entry, [best._trial_id]).get(best._trial_id, {})
        return best

    def _curves(self, entry: _StudyEntry, trial_ids: list[int] | None = None) -> dict[int, dict[int, float]]:
        """The study metric per epoch, by trial (of ``trial_ids`` only, when given)."""
        curves: dict[int, dict[int, float]] = {}
        rows = self.store.epoch_values(entry.info.name, entry.info.metric, trial_ids=trial_ids)
        for trial_id, epoch, value, _ in rows:
            if value is not None:
                curves.setdefault(trial_id, {})[epoch] = value
        return curves

    def _read_trials(self, entry: _StudyEntry, *, curves: bool = True) -> list[FrozenTrial]:
        """The study's trials as FrozenTrials, from one read of the trials and one of the epochs
        (none with ``curves=False``: no intermediate values)."""
        info = entry.info
        frame = self.store.load_trials(info.name)
        # Epochs after trials: a trial may show an epoch more than its row says it reached,
        # never a finished trial without its last epochs.
        by_trial = self._curves(entry) if curves else {}
        rows = _records(frame)
        factors = list(info.factor_kinds)
        params = [{f: _param(row.get(f)) for f in factors} for row in rows]
        distributions = _distributions(entry.declared, params)
        column = {c: (f"trial_{c}" if c in info.factor_kinds else c) for c in TRIAL_COLUMNS}
        trials = []
        for row, values in zip(rows, params, strict=True):
            trial_id = int(row[column["trial_id"]])
            trials.append(
                _frozen_trial(
                    row, column, values, distributions, info.metric, by_trial.get(trial_id, {})
                )
            )
        with self._lock:
            for t in trials:
                self._study_of_trial[t._trial_id] = info.study_id
        return trials

    # ------------------------------------------------------------------ writes: refused
    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        raise _refuse(f"creating study {study_name!r}")

    def delete_study(self, study_id: int) -> None:
        raise _refuse(f"deleting study id {study_id}")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        raise _refuse(f"setting user attribute {key!r} of study id {study_id}")

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        if not _is_note_key(key):
            raise _refuse(f"setting system attribute {key!r} of study id {study_id}")
        self._entry_by_id(study_id)  # KeyError for an unknown study, as the contract says
        with self._lock:
            self._notes.setdefault(study_id, {})[key] = value

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        raise _refuse(f"adding a trial to study id {study_id}")

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        raise _refuse(f"setting parameter {param_name!r} of trial id {trial_id}")

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        raise _refuse(f"setting the state of trial id {trial_id} to {state.name}")

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        raise _refuse(f"reporting step {step} of trial id {trial_id}")

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        raise _refuse(f"setting user attribute {key!r} of trial id {trial_id}")

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        raise _refuse(f"setting system attribute {key!r} of trial id {trial_id}")


def optuna_study(name: str, db: Database = None) -> optuna.Study:
    """Study ``name`` of ``db`` (a URL, a path, a ResultStore, or None for ``$ABLATE_DB`` /
    ``sqlite:///ablate.db``) as a read-only :class:`optuna.Study`.

    Backed by :class:`AblateStorage`: ``trials_dataframe()``, ``optuna.visualization`` and
    ``optuna.importance`` read ablate's tables directly, and see new results on every call.
    Raises StudyError (listing the studies there) when there is no such study.
    """
    import optuna

    storage = AblateStorage(db)
    try:
        storage.store.load_study(name)  # ablate's own error, with the studies there
    except BaseException:
        storage.close()
        raise
    return optuna.load_study(study_name=name, storage=storage)


# ---------------------------------------------------------------------- conversions
def _study_user_attrs(info: StudyInfo) -> dict[str, Any]:
    return {
        "description": info.description,
        "design": info.design,
        "metric": info.metric,
        "version": info.version,
        "seeds": list(info.seeds),
        "factors": list(info.factor_kinds),
    }


def _declared_distributions(info: StudyInfo) -> dict[str, BaseDistribution | None]:
    """Each factor's distribution as declared in the study's stored definition."""
    try:
        spaces = study_from_definition(info.definition).spaces
    except (StudyError, KeyError, TypeError, ValueError):
        spaces = {}  # a definition this version cannot read: distributions from the values
    declared: dict[str, BaseDistribution | None] = {}
    for name in info.factor_kinds:
        space = spaces.get(name)
        if isinstance(space, Choice):
            kind = info.factor_kinds[name]
            declared[name] = CategoricalDistribution(
                _unique(_as_kind(_param(level_value(name, v)), kind) for v in space.values)
            )
        elif isinstance(space, Uniform):
            declared[name] = FloatDistribution(space.low, space.high, log=space.log)
        elif isinstance(space, IntRange):
            declared[name] = IntDistribution(space.low, space.high, log=space.log, step=space.step)
        else:
            declared[name] = None
    return declared


def _distributions(
    declared: Mapping[str, BaseDistribution | None], params: Sequence[Mapping[str, Any]]
) -> dict[str, BaseDistribution]:
    """The declared distributions, widened to hold every value the trials have (a study whose
    levels or bounds were changed under the same version still reads)."""
    out: dict[str, BaseDistribution] = {}
    for name, dist in declared.items():
        seen = [p[name] for p in params if p.get(name) is not None]
        if isinstance(dist, FloatDistribution) and all(_is_number(v) for v in seen):
            low = min([dist.low, *seen])
            high = max([dist.high, *seen])
            if dist.log and low <= 0:
                dist = CategoricalDistribution(_unique(seen))
            else:
                dist = FloatDistribution(float(low), float(high), log=dist.log)
        elif isinstance(dist, IntDistribution) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in seen
        ):
            low = min([dist.low, *seen])
            high = max([dist.high, *seen])
            on_grid = all((v - dist.low) % dist.step == 0 for v in seen)
            if (dist.log and low < 1) or not on_grid:
                dist = CategoricalDistribution(_unique(seen))
            else:
                step = dist.step
                high = low + (high - low) // step * step
                dist = IntDistribution(int(low), int(high), log=dist.log, step=step)
        else:
            choices = list(dist.choices) if isinstance(dist, CategoricalDistribution) else []
            for v in seen:
                if not any(_same(v, c) for c in choices):
                    choices.append(v)
            if not choices:
                continue  # no value anywhere: the factor is left out
            dist = CategoricalDistribution(choices)
        out[name] = dist
    return out


def _frozen_trial(
    row: Mapping[str, Any],
    column: Mapping[str, str],
    values: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
    metric: str,
    curve: dict[int, float],
) -> FrozenTrial:
    status = str(row[column["status"]])
    extra = row.get(column["extra_metrics"]) or {}
    final = {m: row.get(column[m]) for m in FINAL_METRICS}
    final.update({k: v for k, v in extra.items() if k not in final})
    value = _finite(final.get(metric))
    state = STATES.get(status, TrialState.FAIL)
    if state == TrialState.COMPLETE and value is None:
        state = TrialState.FAIL
    if state not in (TrialState.COMPLETE, TrialState.PRUNED):
        value = None
    user_attrs: dict[str, Any] = {}
    for name in RUN_ATTRS:
        v = row.get(column[name])
        if v is not None:
            user_attrs[name] = v
    for name, v in final.items():
        if v is not None and (not isinstance(v, float) or not math.isnan(v)):
            user_attrs[name] = v
    started = _local(row.get(column["started_at"]))
    finished = _local(row.get(column["finished_at"]))
    if state == TrialState.WAITING:
        started = finished = None
    else:
        started = started or finished or _local(row.get(column["heartbeat_at"])) or datetime.now()
        finished = (finished or started) if state.is_finished() else None
    params = {}
    dists = {}
    for name, v in values.items():
        dist = distributions.get(name)
        if v is None or dist is None:
            continue
        if isinstance(dist, CategoricalDistribution):
            v = next(c for c in dist.choices if _same(v, c))
        params[name] = v
        dists[name] = dist
    return FrozenTrial(
        number=int(row[column["number"]]),
        state=state,
        value=value,
        datetime_start=started,
        datetime_complete=finished,
        params=params,
        distributions=dists,
        user_attrs=user_attrs,
        system_attrs={},
        intermediate_values=dict(sorted(curve.items())),
        trial_id=int(row[column["trial_id"]]),
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a load_trials frame as dicts of plain Python values (None where missing)."""
    import pandas as pd

    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for record in records:
        for key, v in record.items():
            if isinstance(v, pd.Timestamp):
                record[key] = v.to_pydatetime()
            elif hasattr(v, "item") and not isinstance(v, (list, dict, str)):
                record[key] = v.item()  # numpy scalars
    return records


def _param(value: Any) -> Any:
    """A factor value as Optuna can hold it: lists and dicts as their JSON text."""
    if value is None or isinstance(value, _CATEGORICAL_TYPES):
        return value
    return json.dumps(value, sort_keys=True)


def _as_kind(value: Any, kind: str) -> Any:
    # A float factor declared as [1, 0.5] is read back as 1.0 and 0.5.
    return float(value) if kind == "float" and _is_number(value) else value


def _same(a: Any, b: Any) -> bool:
    # 1 == 1.0 == True in Python; a categorical choice keeps its type.
    return type(a) is type(b) and a == b


def _unique(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if not any(_same(v, c) for c in out):
            out.append(v)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: Any) -> float | None:
    if not _is_number(value) or math.isnan(value):
        return None
    return float(value)


def _local(value: Any) -> datetime | None:
    """A UTC timestamp as naive local time, as Optuna's storages hold times."""
    if not isinstance(value, datetime):
        return None
    return value.astimezone().replace(tzinfo=None) if value.tzinfo else value
