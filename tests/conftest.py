"""Fixtures shared by every test package: fresh result databases on SQLite and PostgreSQL.

``db_url`` runs a test once per engine. The PostgreSQL variant gets its own schema on the real
server (127.0.0.1:5432, database ``test``, user ``postgres``, or ``$ABLATE_TEST_PG``), selected
through ``search_path`` in the URL and dropped afterwards. PostgreSQL tests never skip: a
server that does not answer fails them with a message saying how to start it. Every test that
needs the server carries the ``postgres`` marker (``-m "not postgres"`` leaves them out): the
PostgreSQL ``db_url`` by its param, every user of ``pg_url`` from the hook below.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ablate.store import ResultStore

PG_SERVER = os.environ.get("ABLATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_admin_dsn() -> str:
    # psycopg wants a libpq URL, without SQLAlchemy's "+psycopg" driver suffix.
    return PG_SERVER.replace("postgresql+psycopg://", "postgresql://", 1)


def pg_schema_url(schema: str) -> str:
    """The SQLAlchemy URL of ``schema`` on the test server."""
    return f"{PG_SERVER}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session", autouse=True)
def _cache_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """What the tests decode and cache (image folders of their temporary trees, synthetic
    arrays) goes to a folder of the test session, not the user's ~/.cache/ablate, where
    `ablate cache ls` would list it afterwards. Processes the tests start inherit it."""
    before = os.environ.get("ABLATE_CACHE")
    os.environ["ABLATE_CACHE"] = str(tmp_path_factory.mktemp("ablate-cache"))
    yield
    if before is None:
        os.environ.pop("ABLATE_CACHE", None)
    else:
        os.environ["ABLATE_CACHE"] = before


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test that asks for ``pg_url`` (itself or through another fixture) ``postgres``."""
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet (the store creates it)."""
    return f"sqlite:///{tmp_path / 'ablate.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for this test, dropped afterwards."""
    import psycopg

    schema = f"test_{uuid.uuid4().hex[:16]}"
    try:
        admin = psycopg.connect(_pg_admin_dsn(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(
            f"PostgreSQL at {PG_SERVER} does not answer ({str(e).strip().splitlines()[0]}). "
            "Start it (.ci/run does: pg_ctlcluster <version> main start) or point "
            "ABLATE_TEST_PG at a server; PostgreSQL tests are never skipped.",
            pytrace=False,
        )
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield pg_schema_url(schema)
        finally:
            # A connection the test leaked could hold a lock: give up after a while rather
            # than hang the suite.
            admin.execute("SET lock_timeout = '10s'")
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database URL, once for SQLite and once for PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def store(db_url: str) -> Iterator[ResultStore]:
    """A ResultStore on a fresh database (both engines), closed afterwards."""
    from ablate.store import ResultStore

    with ResultStore(db_url) as result_store:
        yield result_store
