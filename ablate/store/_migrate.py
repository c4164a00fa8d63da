"""Running the Alembic migrations in ``alembic/`` against a database, from any working directory.

Every :class:`~ablate.store.ResultStore` calls :func:`upgrade` when it opens a database, so a new
file gets the schema and an old one is brought up to date before use. Concurrent openers (eight
workers starting at once) are serialised: SQLite by the ``BEGIN IMMEDIATE`` write lock,
PostgreSQL by a transaction-level advisory lock; the second one finds the schema current.

Alembic itself (with Mako and Pygments, half a second to import) is only imported when a
database actually needs upgrading: checking that it is current reads the version table with
plain SQL and the revision ids from the migration files.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from ablate.errors import NotAblateDatabaseError, StoreError
from ablate.store._engine import (
    MAX_ATTEMPTS,
    _backoff,
    is_retryable,
    is_sqlite,
    make_engine,
    mask_url,
    store_error,
)
from ablate.store._factors import drop_view, own_metric_columns, replace_view
from ablate.store._schema import (
    VERSION_TABLE,
    head_revisions,
    refuse_unknown_revisions,
    require_head,
    script_location,
)

if TYPE_CHECKING:
    from alembic.config import Config

# pg_advisory_xact_lock key: any constant; "ablate" in ASCII.
_PG_LOCK_KEY = 0x61626C617465


def alembic_config(url: URL | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config for ablate's migrations; ``connection`` is used as is when given."""
    from alembic.config import Config

    location = script_location()
    if not (location / "env.py").is_file():
        raise StoreError(
            f"migrations not found at {location} (is ablate installed from its repository?)"
        )
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        # ConfigParser interpolation would read a '%' in the URL (e.g. %3D) as a reference.
        cfg.set_main_option(
            "sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%")
        )
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def current_revisions(engine: Engine) -> tuple[str, ...]:
    """The revisions the database is at; empty for a database without our schema."""
    try:
        with engine.connect() as conn:
            return _current(conn)
    except SQLAlchemyError as e:
        # SQLite says so of a file that is not a SQLite database at all (a CSV, a text file).
        if "file is not a database" in str(e):
            raise NotAblateDatabaseError(
                f"{mask_url(engine.url)}: not an ablate database: the file is not a SQLite "
                "database at all"
            ) from None
        raise store_error(e, engine.url, "reading the schema version") from e


def _current(conn: Connection) -> tuple[str, ...]:
    if not inspect(conn).has_table(VERSION_TABLE):
        return ()
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return tuple(sorted(r[0] for r in rows))


def _refuse_unknown(engine: Engine, revisions: tuple[str, ...]) -> None:
    refuse_unknown_revisions(revisions, mask_url(engine.url))


def require_current(engine: Engine, shown: str | None = None) -> None:
    """Raise NotAblateDatabaseError unless the database holds ablate's schema at head.

    For the read-only commands, which must neither create a schema in a database they were
    pointed at by mistake (another application's file, an empty database) nor migrate one.
    ``shown`` names the database in messages (default: the engine's URL).
    """
    require_head(current_revisions(engine), shown or mask_url(engine.url))


def upgrade(engine: Engine, revision: str = "head", *, force: bool = False) -> bool:
    """Bring the database to ``revision``; return whether anything was applied.

    Views of the studies are dropped before and recreated after, because SQLite's batch mode and
    PostgreSQL's ALTER refuse to touch tables that views depend on.
    """
    if revision == "head" and not force and set(current_revisions(engine)) == set(head_revisions()):
        return False
    # A separate engine with foreign keys off: batch migrations copy and drop tables on SQLite,
    # and with foreign keys on that drop would cascade into the child tables.
    migrate_engine = make_engine(engine.url, foreign_keys=False)
    try:
        for attempt in range(MAX_ATTEMPTS):
            try:
                applied = _upgrade_locked(migrate_engine, revision)
                break
            except SQLAlchemyError as e:
                if is_retryable(e) and attempt < MAX_ATTEMPTS - 1:
                    _backoff(attempt)
                    continue
                raise store_error(e, engine.url, f"upgrading the schema to {revision}") from e
    finally:
        migrate_engine.dispose()
    return applied


def _upgrade_locked(engine: Engine, revision: str) -> bool:
    with engine.execution_options(ablate_write=True).begin() as conn:
        if not is_sqlite(engine):
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        before = _current(conn)
        if revision == "head" and set(before) == set(head_revisions()):
            return False  # another process upgraded it while we waited for the lock
        _refuse_unknown(engine, before)
        from alembic import command
        from alembic.util import CommandError

        _drop_views(conn)
        try:
            command.upgrade(alembic_config(engine.url, conn), revision)
        except CommandError as e:
            raise StoreError(
                f"database {mask_url(engine.url)}: cannot upgrade to revision {revision!r}: {e} "
                f"(head is {', '.join(head_revisions())})"
            ) from None
        _check_foreign_keys(conn)
        _create_views(conn)
        return _current(conn) != before


def _study_rows(conn: Connection) -> list[dict[str, Any]]:
    # Plain SQL on columns every revision has: the ORM model describes head, not this database.
    if not inspect(conn).has_table("studies"):
        return []
    rows = conn.execute(text("SELECT id, name, version, view_name, factors, definition FROM studies"))
    return [dict(r._mapping) for r in rows]


def _drop_views(conn: Connection) -> None:
    for row in _study_rows(conn):
        drop_view(conn, row["view_name"])


def _create_views(conn: Connection) -> None:
    latest: dict[str, dict[str, Any]] = {}
    for row in _study_rows(conn):
        if row["name"] not in latest or row["version"] > latest[row["name"]]["version"]:
            latest[row["name"]] = row
    for row in latest.values():
        factors = row["factors"]
        if isinstance(factors, str):  # JSON read through plain SQL on SQLite
            factors = json.loads(factors)
        definition = row["definition"]
        if isinstance(definition, str):
            definition = json.loads(definition)
        replace_view(conn, row["view_name"], row["id"], factors, own_metric_columns(definition))


def _check_foreign_keys(conn: Connection) -> None:
    if is_sqlite(conn.engine):
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise StoreError(
                f"database {mask_url(conn.engine.url)}: migration left {len(broken)} rows with "
                f"dangling foreign keys (first: {tuple(broken[0])}); nothing was committed"
            )


def stamp_info(engine: Engine) -> dict[str, Any]:
    """Current and head revisions, for ``ablate db current``."""
    current = current_revisions(engine)
    heads = head_revisions()
    return {"current": list(current), "head": list(heads), "up_to_date": set(current) == set(heads)}
