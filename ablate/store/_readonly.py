"""A read-only DB-API connection to a result database, for the commands that only read.

`ablate sql` needs a connection that cannot write and the database's schema revision, not the
ORM models, Alembic or (for a SQLite file) even SQLAlchemy, whose import alone is a third of a
second: a SQLite file named by a path or a plain ``sqlite:///`` URL is opened with :mod:`sqlite3`
directly; anything else (PostgreSQL, URLs with a query or escapes) goes through a read-only
SQLAlchemy engine. Either way the connection is the one the query runs on, with the same
guarantees as :func:`ablate.store._engine.make_engine` gives a read-only engine, and the schema
is checked with one query on the version table.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ablate.errors import NotAblateDatabaseError, StoreError
from ablate.store._columns import STATUSES
from ablate.store._schema import VERSION_TABLE, require_head
from ablate.store._sqlite import DEFAULT_URL, connect_sqlite_read_only

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

_SQLITE_PREFIX = "sqlite:///"


@dataclass(frozen=True)
class ReadOnlyConnection:
    """A driver connection (sqlite3 or psycopg) that cannot write, and how to name it."""

    connection: Any
    dialect: str  # "sqlite" or "postgresql"
    display_url: str  # the URL with any password masked, as ResultStore.display_url


def plain_sqlite_file(db: str | os.PathLike[str] | None) -> Path | None:
    """The SQLite file ``db`` names (``None``: ``$ABLATE_DB`` or ./ablate.db) when it is a plain
    path or ``sqlite:///path``; None when the text needs SQLAlchemy's URL parser (another
    backend, a query string, %-escapes, a memory database)."""
    raw = os.fspath(db) if db is not None else os.environ.get("ABLATE_DB") or DEFAULT_URL
    if "://" in raw:
        if not raw.startswith(_SQLITE_PREFIX):
            return None
        raw = raw[len(_SQLITE_PREFIX) :]
    special = any(c in raw for c in "%?#") or "password=" in raw.lower()
    if not raw or raw == ":memory:" or raw.startswith("file:") or special:
        return None
    return Path(raw)


@contextmanager
def read_only_connection(
    db: str | os.PathLike[str] | None, *, statement_timeout_s: float | None = None
) -> Iterator[ReadOnlyConnection]:
    """A connection to ``db`` that cannot write, once the database is known to hold ablate's
    current schema (NotAblateDatabaseError otherwise: nothing is created or migrated).

    ``statement_timeout_s`` cancels long statements on PostgreSQL (set at connection start);
    on SQLite the caller installs a progress handler, as :mod:`ablate.store._sql` does.
    The connection is rolled back and closed on exit.
    """
    path = plain_sqlite_file(db)
    if path is None:
        with _through_sqlalchemy(db, statement_timeout_s) as opened:
            yield opened
        return
    path = path.resolve()
    shown = _SQLITE_PREFIX + quote(str(path), safe=" +/")  # as SQLAlchemy renders the URL
    if not path.exists():
        raise _no_database(path)
    try:
        connection = connect_sqlite_read_only(path)
    except sqlite3.Error as e:
        raise _opening_error(e, shown) from e
    try:
        try:
            revisions = schema_revisions(connection, "sqlite")
        except sqlite3.Error as e:
            raise _opening_error(e, shown) from e
        require_head(revisions, shown)
        yield ReadOnlyConnection(connection, "sqlite", shown)
    finally:
        connection.rollback()
        connection.close()


def schema_revisions(connection: Any, dialect: str) -> tuple[str, ...]:
    """The revisions in the database's version table; empty when it has none (not ablate's)."""
    cursor = connection.cursor()
    try:
        cursor.execute(f"SELECT version_num FROM {VERSION_TABLE}")
        return tuple(sorted(str(r[0]) for r in cursor.fetchall()))
    except Exception as e:
        if not _is_missing_table(e, dialect):
            raise
        if dialect == "postgresql":
            connection.rollback()  # the failed statement aborted the transaction
        return ()
    finally:
        cursor.close()


def _is_missing_table(error: Exception, dialect: str) -> bool:
    if dialect == "sqlite":
        return isinstance(error, sqlite3.OperationalError) and str(error).startswith(
            "no such table"
        )
    return getattr(error, "sqlstate", None) == "42P01"  # undefined_table


def _no_database(path: Path | str) -> NotAblateDatabaseError:
    return NotAblateDatabaseError(
        f"no database at {path}; run a study first, or pass --db / set ABLATE_DB "
        "to the database to use"
    )


def _opening_error(error: BaseException, shown: str, url: URL | None = None) -> StoreError:
    """One line for a failure to open or read the version table, password masked (with ``url``)."""
    # SQLite says so of a file that is not a SQLite database at all (a CSV, a text file).
    if "file is not a database" in str(error):
        return NotAblateDatabaseError(
            f"{shown}: not an ablate database: the file is not a SQLite database at all"
        )
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if url is not None:
        from ablate.store._engine import scrub

        first = scrub(first, url)
    return StoreError(f"database {shown} while reading the schema version: {first}")


@contextmanager
def _through_sqlalchemy(
    db: str | os.PathLike[str] | None, statement_timeout_s: float | None
) -> Iterator[ReadOnlyConnection]:
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from ablate.store._engine import is_sqlite, make_engine, mask_url, resolve_url, sqlite_path

    url = resolve_url(db)
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is None:
            raise StoreError(
                f"{mask_url(url)}: an in-memory SQLite database is not shared between "
                "connections or worker processes; use a file, e.g. sqlite:///ablate.db"
            )
        path = path.resolve()
        url = url.set(database=str(path))
        if not path.exists():
            raise _no_database(path)
    dialect = "sqlite" if is_sqlite(url) else "postgresql"
    shown = mask_url(url)
    engine = make_engine(url, read_only=True, statement_timeout_s=statement_timeout_s)
    try:
        try:
            pooled = engine.raw_connection()
        except (SQLAlchemyError, _driver_error(dialect)) as e:
            # raw_connection() passes the driver's own errors through, unwrapped
            orig = e.orig if isinstance(e, DBAPIError) else None
            raise _opening_error(orig or e, shown, url) from e
        try:
            connection = pooled.driver_connection
            try:
                revisions = schema_revisions(connection, dialect)
            except _driver_error(dialect) as e:
                raise _opening_error(e, shown, url) from e
            require_head(revisions, shown)
            yield ReadOnlyConnection(connection, dialect, shown)
        finally:
            pooled.rollback()
            pooled.close()
    finally:
        engine.dispose()


def _driver_error(dialect: str) -> type[Exception]:
    if dialect == "sqlite":
        return sqlite3.Error
    import psycopg

    return psycopg.Error


def read_study_summaries(opened: ReadOnlyConnection) -> list[dict[str, Any]]:
    """Every version of every study with its trials by status, as plain dicts (``ablate ls``),
    read with two plain queries on the driver connection: no SQLAlchemy, no pandas."""
    return study_summaries(driver_rows(opened.connection, opened.dialect))


# ---------------------------------------------------------------------- plain queries
# The readers of results (these and ablate.store._read's) run plain SQL through Rows, on this
# read-only connection or on a ResultStore session's own connection alike.

#: Runs one query (``?`` marks its parameters) and returns its rows as tuples.
Rows = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def driver_rows(connection: Any, dialect: str) -> Rows:
    """:data:`Rows` on a DB-API connection of ``dialect`` ("sqlite" or "postgresql")."""
    postgres = dialect == "postgresql"

    def rows(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = connection.cursor()
        try:
            # psycopg marks parameters %s; no query of the readers has a literal % sign.
            cursor.execute(sql.replace("?", "%s") if postgres else sql, tuple(params))
            return [tuple(r) for r in cursor.fetchall()]
        finally:
            cursor.close()

    return rows


def decoded(value: Any) -> Any:
    """A JSON column's value: SQLite keeps JSON as text, psycopg hands it back decoded."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def flag(value: Any) -> bool | None:
    """A boolean column's value: SQLite keeps booleans as 0/1."""
    return None if value is None else bool(value)


def utc(value: Any) -> datetime | None:
    """A timestamp column's value, aware in UTC, as the store's UTCDateTime reads it: SQLite
    keeps naive UTC text, PostgreSQL timestamptz."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def study_summaries(rows: Rows) -> list[dict[str, Any]]:
    """Every study version with its trial counts (name, version, design, metric, trials, one
    count per status, updated_at) as plain dicts."""
    studies = rows(
        "SELECT id, name, version, design, metric, updated_at FROM studies ORDER BY name, version",
        (),
    )
    counts: dict[int, dict[str, int]] = {}
    for study_id, status, n in rows(
        "SELECT study_id, status, count(*) FROM trials GROUP BY study_id, status", ()
    ):
        counts.setdefault(int(study_id), {})[status] = int(n)
    records = []
    for study_id, name, version, design, metric, updated in studies:
        c = counts.get(int(study_id), {})
        records.append(
            {
                "name": name,
                "version": version,
                "design": design,
                "metric": metric,
                "trials": sum(c.values()),
                **{s: c.get(s, 0) for s in STATUSES},
                "updated_at": utc(updated),
            }
        )
    return records


@dataclass(frozen=True)
class StudyProgress:
    """What `ablate status` shows of a study's current version, read with plain queries."""

    name: str
    definition: dict[str, Any]  # Study.definition() as stored
    counts: dict[str, int]  # trials by status
    # (number, seed, worker, config, heartbeat_at, last recorded epoch) of each running trial
    running: list[tuple[int, int, str | None, dict[str, Any], datetime | None, int | None]]
    failures: list[tuple[int, str | None]]  # (number, error text) of each failed trial
    mean_duration_s: float | None  # of the completed trials
    # (launcher, job id, task ids, submitted_at, cancelled_at) of each `ablate launch`, oldest first
    launches: list[tuple[str, str, list[str], datetime | None, datetime | None]] = field(default_factory=list)


def read_study_progress(opened: ReadOnlyConnection, name: str) -> StudyProgress:
    """The newest version of study ``name`` as ``ablate status`` shows it; StudyError listing
    the known studies when there is none (the store's own wording)."""
    from ablate.errors import StudyError

    mark = "?" if opened.dialect == "sqlite" else "%s"
    cursor = opened.connection.cursor()
    try:
        cursor.execute(
            f"SELECT id, definition FROM studies WHERE name = {mark} ORDER BY version DESC LIMIT 1",
            (name,),
        )
        row = cursor.fetchone()
        if row is None:
            cursor.execute("SELECT DISTINCT name FROM studies ORDER BY name")
            listing = ", ".join(r[0] for r in cursor.fetchall()) or "none yet"
            raise StudyError(f"no study named {name!r} in {opened.display_url} (studies: {listing})")
        study_id, definition = row
        cursor.execute(f"SELECT status, count(*) FROM trials WHERE study_id = {mark} GROUP BY status", (study_id,))
        counts = {str(s): int(n) for s, n in cursor.fetchall()}
        cursor.execute(
            "SELECT t.number, t.seed, t.worker, t.config, t.heartbeat_at, "
            "(SELECT max(e.epoch) FROM epochs e WHERE e.trial_id = t.id) FROM trials t "
            f"WHERE t.study_id = {mark} AND t.status = 'running' ORDER BY t.number",
            (study_id,),
        )
        running = [
            (int(n), int(seed), worker, _json(config), utc(beat), None if last is None else int(last))
            for n, seed, worker, config, beat, last in cursor.fetchall()
        ]
        cursor.execute(
            f"SELECT number, error FROM trials WHERE study_id = {mark} AND status = 'failed' ORDER BY number",
            (study_id,),
        )
        failures = [(int(n), error) for n, error in cursor.fetchall()]
        cursor.execute(
            f"SELECT avg(duration_s) FROM trials WHERE study_id = {mark} AND status = 'completed'",
            (study_id,),
        )
        (mean,) = cursor.fetchone()
        # Every version's launches: a job started for version 1 may still run its workers.
        cursor.execute(
            "SELECT l.launcher, l.job_id, l.task_ids, l.submitted_at, l.cancelled_at FROM launches l "
            f"JOIN studies s ON s.id = l.study_id WHERE s.name = {mark} ORDER BY l.id",
            (name,),
        )
        launches = [
            (str(launcher), str(job), [str(t) for t in decoded(tasks) or []], utc(at), utc(cancelled))
            for launcher, job, tasks, at, cancelled in cursor.fetchall()
        ]
    finally:
        cursor.close()
    return StudyProgress(
        name, _json(definition), counts, running, failures, None if mean is None else float(mean), launches
    )


def _json(value: Any) -> dict[str, Any]:
    value = decoded(value)
    return dict(value) if isinstance(value, dict) else {}
