"""Factor values in SQL: their kinds, their typed columns in ``trial_params``, and the per-study view.

Each factor of a study has a kind, decided at registration from its declared levels (or its
range, for adaptive designs): ``int``, ``float``, ``bool``, ``text``, ``json`` (lists, dicts) or
``mixed``. A value is stored in the column of its own Python type, and the view and
:func:`~ablate.store.load_trials` read the column of the factor's kind, so ``image_size`` comes
back as an integer and ``augment`` as text on both engines.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ablate.metrics import declared_metrics
from ablate.study import (
    VIEW_METRIC_COLUMNS,
    VIEW_TRIAL_COLUMNS,
    Choice,
    IntRange,
    Study,
    Uniform,
    jsonable,
    level_value,
)

if TYPE_CHECKING:  # SQLAlchemy only where a view is written: the readers work without it
    from sqlalchemy import Connection
    from sqlalchemy.engine import Dialect

# Columns of the per-study view besides the factors. A factor with one of these names keeps its
# name and the trial column is renamed "trial_<name>".
# Identifiers stay within PostgreSQL's limit (longer ones would be silently truncated there).
MAX_IDENTIFIER = 63


def value_kind(value: Any) -> str | None:
    """The kind of one value; None for None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "text"
    return "json"


def merge_kinds(kinds: Iterable[str | None]) -> str:
    found = {k for k in kinds if k is not None}
    if not found:
        return "text"
    if len(found) == 1:
        return found.pop()
    if found == {"int", "float"}:
        return "float"
    return "mixed"


def factor_kinds(study: Study) -> dict[str, str]:
    """Each factor of ``study`` (in declaration order) with the kind of its values."""
    kinds = {}
    for name, space in study.spaces.items():
        if isinstance(space, Choice):
            kinds[name] = merge_kinds(value_kind(level_value(name, v)) for v in space.values)
        elif isinstance(space, IntRange):
            kinds[name] = "int"
        elif isinstance(space, Uniform):
            kinds[name] = "float"
        else:  # a Space subclass we do not know: decide from its example values
            kinds[name] = merge_kinds(value_kind(v) for v in space.examples())
    return kinds


def param_columns(value: Any) -> dict[str, Any]:
    """The typed ``trial_params`` columns holding ``value``."""
    cols: dict[str, Any] = {
        "value_num": None,
        "value_text": None,
        "value_bool": None,
        "value_json": None,
    }
    kind = value_kind(value)
    if kind == "bool":
        cols["value_bool"] = value
    elif kind in ("int", "float"):
        cols["value_num"] = float(value) if math.isfinite(value) else None
    elif kind == "text":
        cols["value_text"] = value
    elif kind == "json":
        cols["value_json"] = jsonable(value)
    return cols


def param_value(row: Mapping[str, Any], kind: str) -> Any:
    """A factor's value from its ``trial_params`` row, as the factor's kind."""
    num, txt, flag, js = row["value_num"], row["value_text"], row["value_bool"], row["value_json"]
    if kind == "int":
        return int(num) if num is not None else None
    if kind == "float":
        return num
    if kind == "bool":
        return bool(flag) if flag is not None else None
    if kind == "text":
        return txt
    if kind == "json":
        return js
    if txt is not None:
        return txt
    if flag is not None:
        return bool(flag)
    if js is not None:
        return js
    if num is not None:
        return int(num) if float(num).is_integer() else num
    return None


def view_name_for(study_name: str) -> str:
    """The per-study view: ``study_<name>``.

    Names longer than PostgreSQL's 63-character identifier limit become
    ``study_<first 48 characters>_<8 hex digits of the name's hash>``, so that two long names
    sharing a prefix still get views of their own.
    """
    name = f"study_{study_name}"
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(study_name.encode()).hexdigest()[:8]
    return f"study_{study_name[:48]}_{digest}"


def _column_sql(alias: str, kind: str) -> str:
    if kind == "int":
        return f"CAST({alias}.value_num AS BIGINT)"
    if kind == "float":
        return f"{alias}.value_num"
    if kind == "bool":
        return f"{alias}.value_bool"
    if kind == "text":
        return f"{alias}.value_text"
    if kind == "json":
        return f"CAST({alias}.value_json AS TEXT)"
    return (
        f"COALESCE({alias}.value_text, CAST({alias}.value_num AS TEXT), "
        f"CAST({alias}.value_bool AS TEXT), CAST({alias}.value_json AS TEXT))"
    )


def own_metric_columns(definition: Mapping[str, Any] | None) -> list[str]:
    """The study's own metrics (declared by its evaluations), each a float column of its view."""
    return [m.name for m in declared_metrics(definition)]


def _own_metric_sql(dialect: Dialect, name: str) -> str:
    # Stored in the JSON column extra_metrics; the view gives each one a typed column.
    if dialect.name == "postgresql":
        return f"CAST(t.extra_metrics ->> {_literal(name)} AS DOUBLE PRECISION)"
    return f"CAST(json_extract(t.extra_metrics, {_literal('$.' + name)}) AS REAL)"


def view_sql(
    dialect: Dialect, view_name: str, study_id: int, factors: Mapping[str, str], metrics: Sequence[str] = ()
) -> str:
    """``CREATE VIEW`` for one study version: one row per trial, one column per factor, and one
    float column per metric of the study's own evaluations (``metrics``)."""
    quote = dialect.identifier_preparer.quote
    taken = set(factors)
    select = []
    for col in VIEW_TRIAL_COLUMNS + VIEW_METRIC_COLUMNS:
        source = "t.id" if col == "trial_id" else f"t.{col}"
        shown = f"trial_{col}" if col in taken else col
        select.append(f"{source} AS {quote(shown)}")
        if col == "status":
            for i, (name, kind) in enumerate(factors.items()):
                select.append(f"{_column_sql(f'p{i}', kind)} AS {quote(name)}")
    select += [f"{_own_metric_sql(dialect, name)} AS {quote(name)}" for name in metrics]
    joins = [
        f"LEFT JOIN trial_params p{i} ON p{i}.trial_id = t.id AND p{i}.name = {_literal(name)}"
        for i, name in enumerate(factors)
    ]
    return (
        f"CREATE VIEW {quote(view_name)} AS SELECT "
        + ", ".join(select)
        + " FROM trials t "
        + " ".join(joins)
        + f" WHERE t.study_id = {int(study_id)}"
    )


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def replace_view(
    conn: Connection, view_name: str, study_id: int, factors: Mapping[str, str], metrics: Sequence[str] = ()
) -> None:
    """Drop and create the study's view (its columns change when the factors or metrics do)."""
    from sqlalchemy import text

    drop_view(conn, view_name)
    conn.execute(text(view_sql(conn.dialect, view_name, study_id, factors, metrics)))


def drop_view(conn: Connection, view_name: str) -> None:
    from sqlalchemy import text

    quote = conn.dialect.identifier_preparer.quote
    conn.execute(text(f"DROP VIEW IF EXISTS {quote(view_name)}"))
