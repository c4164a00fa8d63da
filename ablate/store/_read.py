"""Reading results as pandas DataFrames with plain SQL: one row per trial, per epoch, per artifact.

Every reader takes :data:`Rows`, a function that runs one query and returns its rows, made by
:func:`driver_rows` from a driver connection (sqlite3 or psycopg). ``ResultStore`` hands its
session's own connection, so a read sits inside its transaction; ``ablate report`` and the
module-level ``load_*`` functions hand the read-only connection of
:func:`ablate.store.read_only_connection`, which for a SQLite file is :mod:`sqlite3` alone: a
report then starts without importing SQLAlchemy (a third of a second). One reader, whatever
the connection: the values are decoded here (JSON text, SQLite's 0/1 flags and naive UTC
timestamps) into what the ORM's column types gave before.

Factor columns are named as the factors and typed as their values (``image_size`` is an
integer column, ``augment`` a string column). A trial column whose name a factor already uses
(``device``, say) is renamed ``trial_<name>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ablate.errors import StudyError
from ablate.store._columns import (
    ENVIRONMENT_FIELDS,
    EPOCH_METRICS,
    INT_METRICS,
    STATUSES,
    TRIAL_METRICS,
)
from ablate.store._factors import own_metric_columns, param_value
from ablate.store._readonly import Rows, decoded, flag, utc
from ablate.store._records import StudyInfo

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TRIAL_COLUMNS_BEFORE = ("trial_id", "number", "seed", "replicate", "status", "config_hash")
TRIAL_COLUMNS_AFTER = (
    *TRIAL_METRICS[:-1],  # stop_reason comes with the run details
    "stop_reason", "error", "worker", "host", "device", "attempt", "started_at", "finished_at",
    "heartbeat_at", "config", "extra_metrics",
)  # fmt: skip
EPOCH_COLUMNS_BEFORE = ("trial_id", "number", "seed", "replicate", "config_hash")
EPOCH_COLUMNS_AFTER = ("epoch", *EPOCH_METRICS, "extra")
_STUDY_COLUMNS = (
    "id", "name", "version", "design", "metric", "direction", "factors", "seeds", "baseline",
    "definition", "description", "view_name", "created_at", "updated_at",
)  # fmt: skip
_TIMESTAMPS = ("started_at", "finished_at", "heartbeat_at")
_NEVER = datetime.min.replace(tzinfo=UTC)
T = TypeVar("T")


class StudyReading:
    """The reading methods :class:`~ablate.store.ResultStore` and
    :class:`~ablate.store.ReadOnlyResults` share: each runs one reader of this module on the
    study's current version, in the one read transaction the class's :meth:`_read` opens."""

    def _read(self, name: str, reader: Callable[[Rows, StudyInfo], T]) -> T:
        raise NotImplementedError

    def study_summaries(self) -> list[dict[str, Any]]:
        """Every study version with its trial counts, as plain dicts, without pandas (a fast
        `ablate ls`)."""
        raise NotImplementedError

    def load_trials(self, name: str) -> pd.DataFrame:
        """One row per trial of the study's current version (see :func:`ablate.store.load_trials`)."""
        return self._read(name, trials_frame)

    def load_epochs(self, name: str, *, trial_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """One row per recorded epoch (see :func:`ablate.store.load_epochs`)."""
        return self._read(name, lambda rows, info: epochs_frame(rows, info, trial_ids))

    def load_epoch_series(self, name: str, column: str) -> pd.DataFrame:
        """One per-epoch column of every trial, and nothing else: trial_id, epoch, ``column``
        (rows with a value only, ordered by trial and epoch). A few columns of 100,000 epochs
        read in a tenth of the time of :meth:`load_epochs`' full rows (the report's curves)."""
        return self._read(name, lambda rows, info: epoch_series_frame(rows, info, column))

    def load_artifacts(self, name: str) -> pd.DataFrame:
        """The files the study's trials produced: trial_id, number, kind, path."""
        return self._read(name, artifacts_frame)

    def load_environments(self, name: str) -> pd.DataFrame:
        """Where each trial of the study ran: trial_id, number and the environments columns."""
        return self._read(name, environments_frame)

    def list_studies(self) -> pd.DataFrame:
        """Every study version: name, version, design, trials by status, last update."""
        return studies_frame(self.study_summaries())


def _marks(n: int) -> str:
    return ", ".join("?" * n)


# ---------------------------------------------------------------------- studies
def read_study(rows: Rows, name: str, where: str) -> StudyInfo:
    """The newest version of study ``name``; StudyError listing the known studies of ``where``
    (the database's masked URL) when there is none."""
    found = rows(
        f"SELECT {', '.join(_STUDY_COLUMNS)} FROM studies WHERE name = ? "
        "ORDER BY version DESC LIMIT 1",
        (name,),
    )
    if not found:
        known = [r[0] for r in rows("SELECT DISTINCT name FROM studies ORDER BY name", ())]
        listing = ", ".join(known) if known else "none yet"
        raise StudyError(f"no study named {name!r} in {where} (studies: {listing})")
    row = dict(zip(_STUDY_COLUMNS, found[0], strict=True))
    factors, baseline = decoded(row["factors"]), decoded(row["baseline"])
    return StudyInfo(
        study_id=int(row["id"]),
        name=row["name"],
        version=int(row["version"]),
        design=row["design"],
        metric=row["metric"],
        direction=row["direction"],
        factors=list(factors),
        seeds=[int(s) for s in decoded(row["seeds"])],
        baseline=dict(baseline) if baseline is not None else None,
        definition=dict(decoded(row["definition"])),
        description=row["description"],
        view_name=row["view_name"],
        created_at=utc(row["created_at"]) or _NEVER,  # NOT NULL columns
        updated_at=utc(row["updated_at"]) or _NEVER,
        factor_kinds=dict(factors),
    )


def studies_frame(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows of :func:`study_summaries` as a typed DataFrame."""
    import pandas as pd

    columns = ["name", "version", "design", "metric", "trials", *STATUSES, "updated_at"]
    frame = pd.DataFrame(summaries, columns=columns)
    frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True)
    return frame.astype({c: "int64" for c in ["version", "trials", *STATUSES]})


# ---------------------------------------------------------------------- frames
# Each table is read with one query straight into a DataFrame, and factor values are pivoted
# from trial_params with pandas: building a dict per row in Python took 3 s for 100,000 epochs.
# Columns are built from Python values with pandas' own inference, as a frame of records would
# be, then cast: the frames keep the dtypes they have always had.

#: Trial ids per ``IN (...)`` list when load_epochs is given some: bound parameters per
#: statement stay far below SQLite's and PostgreSQL's limits.
IDS_PER_QUERY = 500
#: The trial_params column holding each kind of factor value.
_KIND_COLUMN = {
    "int": "value_num",
    "float": "value_num",
    "bool": "value_bool",
    "text": "value_text",
    "json": "value_json",
}


def artifacts_frame(rows: Rows, study: StudyInfo) -> pd.DataFrame:
    """The files ``study``'s trials produced: trial_id, number, kind, path."""
    import pandas as pd

    found = rows(
        "SELECT a.trial_id, t.number, a.kind, a.path FROM artifacts a "
        "JOIN trials t ON t.id = a.trial_id WHERE t.study_id = ? ORDER BY t.number, a.kind",
        (study.study_id,),
    )
    return pd.DataFrame(found, columns=["trial_id", "number", "kind", "path"]).astype(
        {"trial_id": "int64", "number": "int64"}
    )


def environments_frame(rows: Rows, study: StudyInfo) -> pd.DataFrame:
    """Where each of ``study``'s finished trials ran: trial_id, number, the environments
    columns, extra."""
    import pandas as pd

    found = rows(
        f"SELECT e.trial_id, t.number, {', '.join('e.' + c for c in ENVIRONMENT_FIELDS)}, e.extra "
        "FROM environments e JOIN trials t ON t.id = e.trial_id WHERE t.study_id = ? "
        "ORDER BY t.number",
        (study.study_id,),
    )
    dirty = 2 + ENVIRONMENT_FIELDS.index("git_dirty")
    found = [(*r[:dirty], flag(r[dirty]), *r[dirty + 1 : -1], decoded(r[-1])) for r in found]
    frame = pd.DataFrame(found, columns=["trial_id", "number", *ENVIRONMENT_FIELDS, "extra"])
    return frame.astype({"trial_id": "int64", "number": "int64"})


def _chunked_rows(
    rows: Rows, sql: str, params: Sequence[Any], column: str, ids: list[int] | None, order: str
) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` (a query ending in its WHERE clause), restricted to ``column IN ids``
    when ids are given (a query per IDS_PER_QUERY of them), each query ordered by ``order``."""
    if ids is None:
        return rows(f"{sql} {order}", params)
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start : start + IDS_PER_QUERY]
        found += rows(f"{sql} AND {column} IN ({_marks(len(chunk))}) {order}", (*params, *chunk))
    return found


def _factor_columns(
    rows: Rows, study: StudyInfo, trial_ids: list[int] | None = None
) -> tuple[pd.Index, dict[str, np.ndarray]]:
    """Every factor's value per trial of ``study`` (or of those of ``trial_ids``): the trial
    ids, and per factor an object array of values in that order (None where a trial has no
    value)."""
    import pandas as pd

    kinds = dict(study.factor_kinds)
    columns = ["trial_id", "name", "value_num", "value_text", "value_bool", "value_json"]
    found: list[tuple[Any, ...]] = []
    if kinds:
        # SQLite holds a JSON 'null' in value_json of every other value: decoding 10,000 of
        # those took longer than the rest of the read. Only json and mixed factors' values are
        # fetched.
        json_names = [f for f, kind in kinds.items() if kind not in _KIND_COLUMN or kind == "json"]
        value_json = (
            f"CASE WHEN p.name IN ({_marks(len(json_names))}) THEN p.value_json ELSE NULL END"
            if json_names
            else "NULL"
        )
        sql = (
            f"SELECT p.trial_id, p.name, p.value_num, p.value_text, p.value_bool, {value_json} "
            "FROM trial_params p JOIN trials t ON t.id = p.trial_id "
            f"WHERE t.study_id = ? AND p.name IN ({_marks(len(kinds))})"
        )
        params = (*json_names, study.study_id, *kinds)
        found = _chunked_rows(rows, sql, params, "p.trial_id", trial_ids, "")
        found = [(*r[:4], flag(r[4]), decoded(r[5])) for r in found]
    params_frame = pd.DataFrame(found, columns=columns)
    ids = pd.Index(sorted(set(params_frame["trial_id"].tolist())), dtype="int64")
    values: dict[str, np.ndarray] = {}
    for name, kind in kinds.items():
        got = params_frame[params_frame["name"] == name]
        if kind in _KIND_COLUMN:
            value = got[_KIND_COLUMN[kind]]  # int factors come back as floats, cast later
        else:
            # mixed: each value in its own type (param_value, as the SQL view reads it); a few
            # values per trial, and only for factors declared with levels of several types.
            clean = got[columns[2:]].astype(object).where(got[columns[2:]].notna(), None)
            value = pd.Series(
                [param_value(r, kind) for r in clean.to_dict("records")], index=got.index
            )
        by_trial = pd.Series(value.to_numpy(), index=pd.Index(got["trial_id"].to_numpy()))
        aligned = by_trial.reindex(ids).astype(object)
        values[name] = aligned.where(aligned.notna(), None).to_numpy()
    return ids, values


def _with_factors(
    frame: pd.DataFrame,
    at: int,
    trial_ids: pd.Series,
    factors: tuple[pd.Index, dict[str, np.ndarray]],
    kinds: Mapping[str, str],
) -> pd.DataFrame:
    """``frame`` with one column per factor inserted at position ``at``, typed by kind."""
    import numpy as np
    import pandas as pd

    ids, values = factors
    positions = ids.get_indexer(trial_ids.to_numpy())
    missing = positions < 0
    for i, (name, kind) in enumerate(kinds.items()):
        taken = values[name][positions] if len(ids) else np.full(len(positions), None, dtype=object)
        taken[missing] = None
        # From Python values, so pandas infers the column as it would for records.
        frame.insert(
            at + i,
            name,
            _factor_series(pd.Series(taken.tolist(), dtype=None, index=frame.index), kind),
        )
    return frame


def _factor_series(column: pd.Series, kind: str) -> Any:
    """A factor column in the dtype of its kind (nullable when some trials lack a value)."""
    import pandas as pd

    has_null = column.isna().any()
    if kind == "int":
        return column.astype("Int64" if has_null else "int64")
    if kind == "float":
        return pd.to_numeric(column, errors="coerce").astype("float64")
    if kind == "bool":
        return column.astype("boolean" if has_null else "bool")
    if kind == "text":
        return column.astype("str")
    return column  # json / mixed: Python objects


def _renamed(columns: tuple[str, ...], factors: Mapping[str, str]) -> dict[str, str]:
    return {c: (f"trial_{c}" if c in factors else c) for c in columns}


def _own_metrics(frame: pd.DataFrame, source: str, names: Iterable[str]) -> None:
    """The study's own metrics (its evaluations'), from a JSON column: float columns."""
    import pandas as pd

    extra = frame[source]
    for name in names:
        values = extra.map(lambda d, key=name: d.get(key) if isinstance(d, dict) else None)
        frame[name] = pd.to_numeric(values, errors="coerce").astype("float64")


def trials_frame(rows: Rows, study: StudyInfo) -> pd.DataFrame:
    """One row per trial of ``study`` (see :func:`ablate.store.load_trials`)."""
    import pandas as pd

    kinds = dict(study.factor_kinds)
    fields = [c for c in (*TRIAL_COLUMNS_BEFORE, *TRIAL_COLUMNS_AFTER) if c != "trial_id"]
    found = rows(
        f"SELECT id, {', '.join(fields)} FROM trials WHERE study_id = ? ORDER BY number",
        (study.study_id,),
    )
    before = _renamed(TRIAL_COLUMNS_BEFORE, kinds)
    after = _renamed(TRIAL_COLUMNS_AFTER, kinds)
    frame = pd.DataFrame(found, columns=[*before.values(), *after.values()])
    for c in ("config", "extra_metrics"):
        frame[after[c]] = frame[after[c]].map(decoded).astype(object)
    frame = _with_factors(
        frame, len(before), frame[before["trial_id"]], _factor_columns(rows, study), kinds
    )
    ints = {before[c]: "int64" for c in ("trial_id", "number", "seed", "replicate")}
    ints[after["attempt"]] = "int64"
    ints.update({after[m]: "Int64" for m in INT_METRICS})
    frame = frame.astype(ints)
    for m in TRIAL_METRICS:
        if m not in INT_METRICS and m != "stop_reason":
            frame[after[m]] = pd.to_numeric(frame[after[m]], errors="coerce").astype("float64")
    for c in _TIMESTAMPS:
        frame[after[c]] = pd.to_datetime(frame[after[c]].map(utc, na_action="ignore"), utc=True)
    _own_metrics(frame, after["extra_metrics"], own_metric_columns(study.definition))
    return frame


def epoch_series_frame(rows: Rows, study: StudyInfo, column: str) -> pd.DataFrame:
    """trial_id, epoch and one of the typed per-epoch columns of every trial of ``study``
    (see :meth:`StudyReading.load_epoch_series`)."""
    import pandas as pd

    if column not in EPOCH_METRICS:  # a name inside the SQL: only the known columns
        raise StudyError(f"no per-epoch column {column!r}; known: {', '.join(EPOCH_METRICS)}")
    found = rows(
        f"SELECT e.trial_id, e.epoch, e.{column} FROM epochs e JOIN trials t ON t.id = e.trial_id "
        f"WHERE t.study_id = ? AND e.{column} IS NOT NULL ORDER BY e.trial_id, e.epoch",
        (study.study_id,),
    )
    frame = pd.DataFrame(found, columns=["trial_id", "epoch", column])
    return frame.astype({"trial_id": "int64", "epoch": "int64", column: "float64"})


def epochs_frame(rows: Rows, study: StudyInfo, trial_ids: Iterable[int] | None) -> pd.DataFrame:
    """One row per recorded epoch of ``study`` (see :func:`ablate.store.load_epochs`)."""
    import pandas as pd

    kinds = dict(study.factor_kinds)
    trial_cols = [c for c in EPOCH_COLUMNS_BEFORE if c != "trial_id"]
    epoch_cols = list(EPOCH_COLUMNS_AFTER)
    sql = (
        f"SELECT e.trial_id, {', '.join('t.' + c for c in trial_cols)}, "
        f"{', '.join('e.' + c for c in epoch_cols)} "
        "FROM epochs e JOIN trials t ON t.id = e.trial_id WHERE t.study_id = ?"
    )
    ids = None if trial_ids is None else sorted({int(i) for i in trial_ids})
    found = _chunked_rows(
        rows, sql, (study.study_id,), "e.trial_id", ids, "ORDER BY t.number, e.epoch"
    )
    if ids is not None and len(ids) > IDS_PER_QUERY:
        # Each chunk is ordered, their concatenation is not.
        epoch_at = 1 + len(trial_cols) + epoch_cols.index("epoch")
        found.sort(key=lambda r: (r[1], r[epoch_at]))
    before = _renamed(EPOCH_COLUMNS_BEFORE, kinds)
    after = _renamed(EPOCH_COLUMNS_AFTER, kinds)
    frame = pd.DataFrame(found, columns=[*before.values(), *after.values()])
    frame[after["extra"]] = frame[after["extra"]].map(decoded).astype(object)
    frame = _with_factors(
        frame, len(before), frame[before["trial_id"]], _factor_columns(rows, study, ids), kinds
    )
    ints = {before[c]: "int64" for c in ("trial_id", "number", "seed", "replicate")}
    ints[after["epoch"]] = "int64"
    frame = frame.astype(ints)
    for m in EPOCH_METRICS:
        frame[after[m]] = pd.to_numeric(frame[after[m]], errors="coerce").astype("float64")
    own = [n for n in own_metric_columns(study.definition) if n.startswith("val_")]  # test_: final only
    _own_metrics(frame, after["extra"], own)
    return frame
