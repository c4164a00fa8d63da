"""Database URLs, engines and transactions for SQLite and PostgreSQL.

SQLite is tuned for several worker processes on one file: WAL (readers never block the writer),
a busy timeout, foreign keys on, and ``BEGIN IMMEDIATE`` for every write transaction so that two
writers queue on the lock instead of failing halfway through. What SQLite still reports as busy is
retried with backoff by :func:`run_transaction`. A lost connection (the server restarted, a
primary failed over, an administrator ended the session) is a fault of the moment too: the
transaction is retried on a fresh connection with backoff for up to ``reconnect_s`` seconds,
then raised as :class:`~ablate.errors.DatabaseUnavailableError`. Every other database error
leaves this module as a :class:`~ablate.errors.StoreError` naming the URL with its password masked.
"""

from __future__ import annotations

import functools
import os
import random
import re
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from ablate.errors import DatabaseUnavailableError, StoreError, UserURLError
from ablate.store._sqlite import DEFAULT_URL, SQLITE_BUSY_TIMEOUT_MS, connect_sqlite_read_only

if TYPE_CHECKING:
    # The ORM is imported where sessions are made: `ablate sql` needs only SQLAlchemy's core.
    from sqlalchemy.orm import Session

T = TypeVar("T")

# Attempts of a whole transaction when the database says busy, locked, or (PostgreSQL) that
# the transaction lost a serialization race or a deadlock.
MAX_ATTEMPTS = 12
_RETRY_PG_CODES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
# How long a transaction is retried while the database cannot be reached; a worker sets it to
# its lease, so that it keeps trying for as long as the trial is still its own.
DEFAULT_RECONNECT_S = float(os.environ.get("ABLATE_RECONNECT_S", 60.0))
# SQLSTATE classes of a lost connection: 08 connection exception; 57P0x the server is shutting
# down, crashed, cannot accept connections yet, or ended this session (pg_terminate_backend).
_DISCONNECT_PG_CLASSES = ("08", "57P")
# Connection failures that waiting does not cure: the user's URL or the server's settings.
_PERMANENT_CONNECT_ERRORS = (
    "does not exist", "authentication failed", "no pg_hba.conf entry", "password",
    "permission denied", "invalid", "unsupported",
)

_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def resolve_url(url: str | os.PathLike[str] | None = None) -> URL:
    """The SQLAlchemy URL to use: ``url``, else ``$ABLATE_DB``, else ``sqlite:///ablate.db``.

    A plain file path means a SQLite file; ``postgresql://`` and ``postgres://`` use psycopg 3.
    """
    raw = os.fspath(url) if url is not None else os.environ.get("ABLATE_DB") or DEFAULT_URL
    if "://" not in raw:
        raw = "sqlite:///" + raw
    try:
        parsed = make_url(raw)
    except ArgumentError:
        raise UserURLError(
            f"database URL {mask_url(raw)!r} is not a URL; expected e.g. sqlite:///ablate.db, "
            "a file path, or postgresql://user@host/db"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise UserURLError(
            f"database URL {mask_url(raw)!r}: backend {parsed.get_backend_name()!r} is not "
            "supported; allowed: sqlite, postgresql"
        )
    _check_driver(parsed, raw)
    return parsed


# The one driver per backend that ablate is built and tested with (SQLAlchemy names them so).
_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg"}


def _check_driver(url: URL, raw: str) -> None:
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if driver != _DRIVERS[backend]:
        plain = "sqlite:///FILE" if backend == "sqlite" else "postgresql://USER@HOST/DB"
        raise UserURLError(
            f"database URL {mask_url(raw)!r}: driver {driver!r} is not supported; write "
            f"{plain} (ablate uses {_DRIVERS[backend]})"
        )


_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")
_PASSWORD_PARAM = re.compile(r"((?:^|[?&\s])password=)([^&\s]*)", re.IGNORECASE)


def mask_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***`` (safe to print and log)."""
    if isinstance(url, URL):
        text = url.render_as_string(hide_password=True)
    else:
        text = _PASSWORD_IN_URL.sub(r"\1***\3", str(url))
    return _PASSWORD_PARAM.sub(r"\1***", text)


def scrub(text: str, url: URL) -> str:
    """Remove the URL's password from a message (drivers may quote the connection string)."""
    if url.password:
        text = text.replace(str(url.password), "***")
    return mask_url(text)


def is_sqlite(engine_or_url: Engine | URL) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else engine_or_url
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for an in-memory database."""
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def make_engine(
    url: URL,
    *,
    read_only: bool = False,
    foreign_keys: bool = True,
    statement_timeout_s: float | None = None,
) -> Engine:
    """An engine set up for ablate's access pattern (see the module docstring).

    ``read_only`` opens SQLite files with ``mode=ro`` (the OS refuses writes) and sets
    ``query_only``; on PostgreSQL every transaction of the session is read-only (see
    :func:`pg_session_options`, which also applies ``statement_timeout_s``).
    ``foreign_keys=False`` is for migrations only: SQLite's batch mode copies and drops
    tables, which with foreign keys on would cascade deletes into child tables.
    """
    if is_sqlite(url):
        return _sqlite_engine(url, read_only=read_only, foreign_keys=foreign_keys)
    engine = create_engine(
        url,
        pool_pre_ping=True,  # workers live for hours; the server may drop idle connections
        connect_args={
            "connect_timeout": 10,
            **pg_session_options(url, read_only=read_only, statement_timeout_s=statement_timeout_s),
        },
    )
    _engines.add(engine)
    return engine


def pg_session_options(
    url: URL, *, read_only: bool, statement_timeout_s: float | None = None
) -> dict[str, str]:
    """libpq ``options`` that make a PostgreSQL session read-only (and time-limited).

    Set at connection start, so they hold for every transaction of the session, also one a
    COMMIT started. Strings are standard-conforming whatever the server's configuration, so that
    backslashes in '...' mean what :mod:`ablate.store._sql`'s tokenizer takes them to mean. The
    URL's own ``options`` (a search_path, say) are kept: ours come after them and win.
    """
    settings = []
    if read_only:
        settings += ["default_transaction_read_only=on", "standard_conforming_strings=on"]
    if statement_timeout_s is not None:
        settings.append(f"statement_timeout={max(0, round(statement_timeout_s * 1000))}")
    if not settings:
        return {}
    own = url.query.get("options", "")
    own = " ".join(own) if isinstance(own, tuple) else own
    return {"options": " ".join([own, *(f"-c {s}" for s in settings)]).strip()}


def _sqlite_engine(url: URL, *, read_only: bool, foreign_keys: bool) -> Engine:
    connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    creator = None
    path = sqlite_path(url)
    if read_only:
        if path is None:
            raise StoreError(
                f"{mask_url(url)}: read-only access needs a SQLite file, not a memory database"
            )
        # mode=ro, query_only, no ATTACH: set up by the one function that opens SQLite files
        # read-only. Connected through a creator, so that engine.url (and every message) stays
        # the URL the user gave rather than the file: URI.
        creator = functools.partial(connect_sqlite_read_only, path)
    engine = (
        create_engine(url, creator=creator)
        if creator is not None
        else create_engine(url, connect_args=connect_args)
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # We emit BEGIN ourselves (below); sqlite3's own implicit BEGIN would be DEFERRED.
        dbapi_connection.isolation_level = None
        # A read-only connection has its busy timeout, query_only and no ATTACH already.
        pragmas = []
        if not read_only:
            pragmas += [
                f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=NORMAL",
            ]
        pragmas.append(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        for pragma in pragmas:
            _retry_busy(functools.partial(_execute_pragma, dbapi_connection, pragma))

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a writer either waits for it (busy timeout)
        # or gets it, and never fails later when upgrading a read lock to a write lock.
        write = conn.get_execution_options().get("ablate_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write and not read_only else "BEGIN")

    _engines.add(engine)
    return engine


def _execute_pragma(connection: sqlite3.Connection, pragma: str) -> list[Any]:
    return connection.execute(pragma).fetchall()


def _retry_busy(fn: Callable[[], T]) -> T:
    for attempt in range(MAX_ATTEMPTS):
        try:
            return fn()
        except sqlite3.OperationalError as e:
            if not _busy_message(str(e)) or attempt == MAX_ATTEMPTS - 1:
                raise
            _backoff(attempt)
    raise AssertionError("unreachable")


def _busy_message(text: str) -> bool:
    text = text.lower()
    return (
        "database is locked" in text
        or "database is busy" in text
        or "database table is locked" in text
    )


def _backoff(attempt: int) -> None:
    # Exponential with jitter, so that processes that collided do not collide again.
    time.sleep(min(2.0, 0.01 * 2**attempt) * (0.5 + random.random()))


def _wait_to_reconnect(attempt: int, left_s: float) -> None:
    # Slower than _backoff: a server that restarts or fails over needs seconds, not milliseconds.
    time.sleep(min(5.0, 0.1 * 2**attempt, left_s) * (0.5 + random.random()))


def is_retryable(error: BaseException) -> bool:
    """Whether a failed transaction may simply be run again."""
    if isinstance(error, DBAPIError):
        orig = error.orig
        if isinstance(orig, sqlite3.OperationalError):
            return _busy_message(str(orig))
        return getattr(orig, "sqlstate", None) in _RETRY_PG_CODES
    return False


def is_disconnect(error: BaseException, *, established_only: bool = False) -> bool:
    """Whether a failure means the connection was lost (worth reconnecting and trying again).

    ``established_only``: only a connection that was there and went away, not one that could
    not be opened (which, on opening a store, is more often a wrong host than a restart).
    """
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:  # SQLAlchemy's own verdict: this connection is gone
        return True
    orig = error.orig
    if isinstance(orig, sqlite3.Error):
        return False
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return str(sqlstate).startswith(_DISCONNECT_PG_CLASSES)
    if established_only:
        return False
    # psycopg reports a failed connection attempt as OperationalError without a SQLSTATE, a
    # refused or broken one as much as a wrong database name or password: only the text tells.
    try:
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only installation
        return False
    message = str(orig).lower()
    return isinstance(orig, psycopg.OperationalError) and not any(
        marker in message for marker in _PERMANENT_CONNECT_ERRORS
    )


def store_error(error: SQLAlchemyError, url: URL, doing: str = "") -> StoreError:
    """A StoreError for a database failure, one line, password masked."""
    orig = getattr(error, "orig", None) or error
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    what = f" while {doing}" if doing else ""
    return StoreError(f"database {mask_url(url)}{what}: {scrub(first, url)}")


def run_transaction(
    engine: Engine,
    fn: Callable[[Session], T],
    *,
    write: bool,
    doing: str = "",
    reconnect_s: float = DEFAULT_RECONNECT_S,
) -> T:
    """Run ``fn(session)`` in one transaction, committed on return; retried while busy, and
    on a fresh connection while the connection is lost, for up to ``reconnect_s`` seconds.

    ``fn`` may run more than once, so it must not have effects outside the database.
    """
    from sqlalchemy.orm import Session

    bind = engine.execution_options(ablate_write=True) if write else engine
    attempt = 0
    disconnected_since: float | None = None
    while True:
        try:
            with Session(bind, expire_on_commit=False) as session, session.begin():
                return fn(session)
        except SQLAlchemyError as e:
            if is_retryable(e) and attempt < MAX_ATTEMPTS - 1:
                _backoff(attempt)
                attempt += 1
                continue
            if is_disconnect(e):
                now = time.monotonic()
                disconnected_since = disconnected_since or now
                waited = now - disconnected_since
                if waited < reconnect_s:
                    # pool_pre_ping and the invalidated pool hand out a fresh connection next.
                    _wait_to_reconnect(attempt, reconnect_s - waited)
                    attempt += 1
                    continue
                first = store_error(e, engine.url, doing)
                raise DatabaseUnavailableError(
                    f"{first} (unreachable for {waited:.0f} s; retried every few seconds)"
                ) from e
            raise store_error(e, engine.url, doing) from e


def retry_on_disconnect(fn: Callable[[], T], *, reconnect_s: float = DEFAULT_RECONNECT_S) -> T:
    """``fn()``, called again with backoff while it fails on a connection that was lost (for up
    to ``reconnect_s`` seconds); for work that is not one :func:`run_transaction`, such as the
    schema check on opening a store. A server that does not answer at all fails at once here.
    ``fn`` must be safe to run again."""
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return fn()
        except (SQLAlchemyError, StoreError) as e:
            cause = e if isinstance(e, SQLAlchemyError) else e.__cause__
            waited = time.monotonic() - started
            if cause is None or not is_disconnect(cause, established_only=True) or waited >= reconnect_s:
                raise
            _wait_to_reconnect(attempt, reconnect_s - waited)
            attempt += 1


@contextmanager
def session_scope(engine: Engine, *, write: bool = True, doing: str = "") -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error.

    Database errors are re-raised as :class:`StoreError` (not retried: use
    :func:`run_transaction` for work that may need to run again while SQLite is busy).
    """
    bind = engine.execution_options(ablate_write=True) if write else engine
    from sqlalchemy.orm import Session

    session = Session(bind, expire_on_commit=False)
    try:
        with session.begin():
            yield session
    except SQLAlchemyError as e:
        raise store_error(e, engine.url, doing) from e
    finally:
        session.close()


def _dispose_in_child() -> None:
    # A forked worker must not reuse the parent's sockets or SQLite handles: drop them from the
    # pools without closing them (closing would disturb the parent's connections).
    for engine in list(_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_dispose_in_child)


def unreachable_reason(url: URL) -> str | None:
    """None when the database answers a connection, else the driver's first line (password
    scrubbed): for refusing early (``ablate launch``) rather than on the first query."""
    from sqlalchemy.exc import SQLAlchemyError

    engine = make_engine(url)
    try:
        with engine.connect():
            return None
    except SQLAlchemyError as e:
        lines = str(getattr(e, "orig", None) or e).strip().splitlines()
        return scrub(lines[0] if lines else type(e).__name__, url)
    finally:
        engine.dispose()
