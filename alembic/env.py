"""Alembic environment for ablate's result schema.

Run programmatically by ``ablate db upgrade`` and by every store that opens a database (the
connection arrives in ``config.attributes["connection"]``), or by hand from the repository root:
``alembic check`` / ``alembic revision --autogenerate --rev-id 0003 -m topic`` with ``ABLATE_DB``
pointing at a database (default ``sqlite:///ablate.db``).
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

from ablate.store._engine import make_engine, resolve_url
from ablate.store._migrate import VERSION_TABLE
from ablate.store._models import Base

config = context.config
target_metadata = Base.metadata


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    # Other tools (Optuna, MLflow) may keep their tables in the same database: compare ours only.
    if type_ == "table":
        return name in target_metadata.tables
    return True


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Our UTC type is a TypeDecorator over DateTime(timezone=True): migrations use the plain type.
    if type_ == "type" and type(obj).__name__ == "UTCDateTime":
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        render_item=render_item,
        compare_type=True,
        **kwargs,
    )


def _url() -> Any:
    return resolve_url(config.get_main_option("sqlalchemy.url") or None)


def run_migrations_offline() -> None:
    url = _url()
    _configure(url=url, literal_binds=True, render_as_batch=url.get_backend_name() == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # Batch mode rebuilds a table as a copy and renames it back; the per-study views name
        # that table, and SQLite's modern rename checks them mid-way ("no such table").
        connection.exec_driver_sql("PRAGMA legacy_alter_table = ON")
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url(), foreign_keys=False)
    try:
        with engine.execution_options(ablate_write=True).connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
