"""Reading results as pandas DataFrames within a session: one row per trial, per epoch, per artifact.

Each function takes an open session and the study's row: ``ResultStore`` calls them inside its
transactions (``ablate.store._load`` opens a store for the module-level ``load_*`` functions).

Factor columns are named as the factors and typed as their values (``image_size`` is an
integer column, ``augment`` a string column). A trial column whose name a factor already uses
(``device``, say) is renamed ``trial_<name>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, case, func, null, select
from sqlalchemy.orm import Session

from ablate.store._factors import own_metric_columns, param_value
from ablate.store._models import (
    ENVIRONMENT_FIELDS,
    EPOCH_METRICS,
    INT_METRICS,
    STATUSES,
    TRIAL_METRICS,
    Artifact,
    Environment,
    Epoch,
    Study,
    Trial,
    TrialParam,
)
from ablate.store._readonly import summary_records

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


def artifacts_frame(session: Session, study: Study) -> pd.DataFrame:
    """The files ``study``'s trials produced: trial_id, number, kind, path."""
    import pandas as pd

    rows = session.execute(
        select(Artifact.trial_id, Trial.number, Artifact.kind, Artifact.path)
        .join(Trial, Trial.id == Artifact.trial_id)
        .where(Trial.study_id == study.id)
        .order_by(Trial.number, Artifact.kind)
    ).all()
    return pd.DataFrame(
        [tuple(r) for r in rows], columns=["trial_id", "number", "kind", "path"]
    ).astype({"trial_id": "int64", "number": "int64"})


def environments_frame(session: Session, study: Study) -> pd.DataFrame:
    """Where each of ``study``'s finished trials ran: trial_id, number, the environments
    columns, extra."""
    import pandas as pd

    columns = [getattr(Environment, c) for c in ENVIRONMENT_FIELDS]
    rows = session.execute(
        select(Environment.trial_id, Trial.number, *columns, Environment.extra)
        .join(Trial, Trial.id == Environment.trial_id)
        .where(Trial.study_id == study.id)
        .order_by(Trial.number)
    ).all()
    frame = pd.DataFrame(
        [tuple(r) for r in rows], columns=["trial_id", "number", *ENVIRONMENT_FIELDS, "extra"]
    )
    return frame.astype({"trial_id": "int64", "number": "int64"})


def studies_frame(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows of :func:`study_summaries` as a typed DataFrame."""
    import pandas as pd

    columns = ["name", "version", "design", "metric", "trials", *STATUSES, "updated_at"]
    frame = pd.DataFrame(summaries, columns=columns)
    frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True)
    return frame.astype({c: "int64" for c in ["version", "trials", *STATUSES]})


def study_summaries(session: Session) -> list[dict[str, Any]]:
    """Every study version with its trial counts (name, version, design, metric, trials, one
    count per status, updated_at) as plain dicts, without pandas (for a fast `ablate ls`)."""
    studies = session.execute(
        select(
            Study.id, Study.name, Study.version, Study.design, Study.metric, Study.updated_at
        ).order_by(Study.name, Study.version)
    ).all()
    count_rows = session.execute(
        select(Trial.study_id, Trial.status, func.count()).group_by(Trial.study_id, Trial.status)
    ).all()
    return summary_records(studies, count_rows, lambda updated: updated)


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


def _rows(session: Session, query: Select[Any]) -> list[tuple[Any, ...]]:
    # Core, not the ORM's execute: its per-row loading machinery doubled the read time.
    return [tuple(r) for r in session.connection().execute(query).fetchall()]


def _chunked_rows(
    session: Session, query: Select[Any], column: Any, ids: list[int] | None
) -> list[tuple[Any, ...]]:
    """The rows of ``query``, restricted to ``column IN ids`` when ids are given (a query per
    IDS_PER_QUERY of them)."""
    if ids is None:
        return _rows(session, query)
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), IDS_PER_QUERY):
        rows += _rows(session, query.where(column.in_(ids[start : start + IDS_PER_QUERY])))
    return rows


def _factor_columns(
    session: Session, study: Study, trial_ids: list[int] | None = None
) -> tuple[pd.Index, dict[str, np.ndarray]]:
    """Every factor's value per trial of ``study`` (or of those of ``trial_ids``): the trial
    ids, and per factor an object array of values in that order (None where a trial has no
    value)."""
    import pandas as pd

    kinds = dict(study.factors)
    columns = ["trial_id", "name", "value_num", "value_text", "value_bool", "value_json"]
    # SQLite holds a JSON 'null' in value_json of every other value: decoding 10,000 of those
    # took longer than the rest of the read. Only json and mixed factors' values are fetched.
    json_names = [f for f, kind in kinds.items() if kind not in _KIND_COLUMN or kind == "json"]
    value_json = case((TrialParam.name.in_(json_names), TrialParam.value_json), else_=null())
    query = (
        select(*(getattr(TrialParam, c) for c in columns[:-1]), value_json)
        .join(Trial, Trial.id == TrialParam.trial_id)
        .where(Trial.study_id == study.id, TrialParam.name.in_(list(kinds)))
    )
    params = pd.DataFrame(
        _chunked_rows(session, query, TrialParam.trial_id, trial_ids), columns=columns
    )
    ids = pd.Index(sorted(set(params["trial_id"].tolist())), dtype="int64")
    values: dict[str, np.ndarray] = {}
    for name, kind in kinds.items():
        rows = params[params["name"] == name]
        if kind in _KIND_COLUMN:
            found = rows[_KIND_COLUMN[kind]]  # int factors come back as floats, cast later
        else:
            # mixed: each value in its own type (param_value, as the SQL view reads it); a few
            # values per trial, and only for factors declared with levels of several types.
            clean = rows[columns[2:]].astype(object).where(rows[columns[2:]].notna(), None)
            found = pd.Series(
                [param_value(r, kind) for r in clean.to_dict("records")], index=rows.index
            )
        by_trial = pd.Series(found.to_numpy(), index=pd.Index(rows["trial_id"].to_numpy()))
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


def trials_frame(session: Session, study: Study) -> pd.DataFrame:
    """One row per trial of ``study`` (see :func:`ablate.store.load_trials`)."""
    import pandas as pd

    kinds = dict(study.factors)
    fields = [c for c in (*TRIAL_COLUMNS_BEFORE, *TRIAL_COLUMNS_AFTER) if c != "trial_id"]
    rows = _rows(
        session,
        select(Trial.id, *(getattr(Trial, c) for c in fields))
        .where(Trial.study_id == study.id)
        .order_by(Trial.number),
    )
    before = _renamed(TRIAL_COLUMNS_BEFORE, kinds)
    after = _renamed(TRIAL_COLUMNS_AFTER, kinds)
    frame = pd.DataFrame(rows, columns=[*before.values(), *after.values()])
    frame = _with_factors(
        frame, len(before), frame[before["trial_id"]], _factor_columns(session, study), kinds
    )
    ints = {before[c]: "int64" for c in ("trial_id", "number", "seed", "replicate")}
    ints[after["attempt"]] = "int64"
    ints.update({after[m]: "Int64" for m in INT_METRICS})
    frame = frame.astype(ints)
    for m in TRIAL_METRICS:
        if m not in INT_METRICS and m != "stop_reason":
            frame[after[m]] = pd.to_numeric(frame[after[m]], errors="coerce").astype("float64")
    for c in ("started_at", "finished_at", "heartbeat_at"):
        frame[after[c]] = pd.to_datetime(frame[after[c]], utc=True)
    # The study's own metrics (its evaluations'), from extra_metrics: float columns like val_acc.
    extra = frame[after["extra_metrics"]]
    for name in own_metric_columns(study.definition):
        values = extra.map(lambda d, key=name: d.get(key) if isinstance(d, dict) else None)
        frame[name] = pd.to_numeric(values, errors="coerce").astype("float64")
    return frame


def epochs_frame(session: Session, study: Study, trial_ids: Iterable[int] | None) -> pd.DataFrame:
    """One row per recorded epoch of ``study`` (see :func:`ablate.store.load_epochs`)."""
    import pandas as pd

    kinds = dict(study.factors)
    trial_cols = [c for c in EPOCH_COLUMNS_BEFORE if c != "trial_id"]
    epoch_cols = list(EPOCH_COLUMNS_AFTER)
    query = (
        select(
            Epoch.trial_id,
            *(getattr(Trial, c) for c in trial_cols),
            *(getattr(Epoch, c) for c in epoch_cols),
        )
        .join(Trial, Trial.id == Epoch.trial_id)
        .where(Trial.study_id == study.id)
        .order_by(Trial.number, Epoch.epoch)
    )
    ids = None if trial_ids is None else sorted({int(i) for i in trial_ids})
    rows = _chunked_rows(session, query, Epoch.trial_id, ids)
    if ids is not None and len(ids) > IDS_PER_QUERY:
        # Each chunk is ordered, their concatenation is not.
        epoch_at = 1 + len(trial_cols) + epoch_cols.index("epoch")
        rows.sort(key=lambda r: (r[1], r[epoch_at]))
    before = _renamed(EPOCH_COLUMNS_BEFORE, kinds)
    after = _renamed(EPOCH_COLUMNS_AFTER, kinds)
    frame = pd.DataFrame(rows, columns=[*before.values(), *after.values()])
    frame = _with_factors(
        frame, len(before), frame[before["trial_id"]], _factor_columns(session, study, ids), kinds
    )
    ints = {before[c]: "int64" for c in ("trial_id", "number", "seed", "replicate")}
    ints[after["epoch"]] = "int64"
    frame = frame.astype(ints)
    for m in EPOCH_METRICS:
        frame[after[m]] = pd.to_numeric(frame[after[m]], errors="coerce").astype("float64")
    extra = frame[after["extra"]]
    for name in own_metric_columns(study.definition):
        if name.startswith("val_"):  # per epoch; test_ ones are final only
            values = extra.map(lambda d, key=name: d.get(key) if isinstance(d, dict) else None)
            frame[name] = pd.to_numeric(values, errors="coerce").astype("float64")
    return frame
