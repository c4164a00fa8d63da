"""`ablate sql` is read-only by construction on both engines, and URLs never show a password.

The PostgreSQL attacks run twice: as the superuser of the test server and as an ordinary role
that has every privilege on ablate's tables (so that only the read-only session stops writes).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from ablate import Study
from ablate.errors import NotAblateDatabaseError, ReadOnlyQueryError, StoreError
from ablate.store import (
    ResultStore,
    check_read_only,
    mask_url,
    read_only_query,
    run_read_only_query,
)
from ablate.store import _sql as sql_module
from ablate.store._sql import tokenize

# The test server as libpq wants it (no "+psycopg"), for setting up roles and functions.
ADMIN_DSN = os.environ.get(
    "ABLATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
).replace("postgresql+psycopg://", "postgresql://", 1)

TABLES = ["studies", "trials", "trial_params", "epochs", "artifacts", "environments"]


def filled(url: str) -> None:
    study = Study(
        name="ro",
        base=dict(dataset="digits"),
        factors=dict(image_size=[8, 16], augment=["none", "basic"]),
    )
    with ResultStore(url) as store:
        store.register_study(study)
        store.add_trials(study, study.validate())
        c = store.claim_next_trial("ro", worker="w", lease_s=60)
        assert c is not None
        store.record_epoch(c.trial_id, {"epoch": 1, "val_acc": 0.5})
        store.finish_trial(c.trial_id, "w", status="completed", metrics={"val_acc": 0.5})


def snapshot(url: str) -> dict[str, Any]:
    with ResultStore(url) as store, store.engine.connect() as conn:
        out: dict[str, Any] = {
            t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1"))]
            for t in TABLES
        }
        out["view"] = [
            tuple(r) for r in conn.execute(text("SELECT * FROM study_ro ORDER BY number"))
        ]
        out["tables"] = sorted(
            r[0]
            for r in conn.execute(
                text(
                    "SELECT name FROM sqlite_master"
                    if store.is_sqlite
                    else "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            )
        )
        return out


WRITES = {
    "DROP": "DROP TABLE trials",
    "DELETE": "DELETE FROM trials",
    "UPDATE": "UPDATE trials SET status = 'failed'",
    "INSERT": "INSERT INTO epochs (trial_id, epoch, recorded_at) VALUES (1, 9, '2020-01-01')",
    "ATTACH": "ATTACH DATABASE 'elsewhere.db' AS other",
    "PRAGMA": "PRAGMA user_version = 5",
    "CREATE": "CREATE TABLE notes (x INTEGER)",
    "ALTER": "ALTER TABLE trials ADD COLUMN note TEXT",
}


def test_write_statements_are_refused_and_data_untouched(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    filled(db_url)
    before = snapshot(db_url)
    for kind, statement in WRITES.items():
        with pytest.raises(ReadOnlyQueryError, match=kind):
            run_read_only_query(db_url, statement)
    assert snapshot(db_url) == before
    assert not (tmp_path / "elsewhere.db").exists()


def test_the_connection_itself_refuses_writes(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second guard: with the statement check switched off, the database still refuses."""
    monkeypatch.chdir(tmp_path)
    filled(db_url)
    before = snapshot(db_url)
    monkeypatch.setattr(sql_module, "check_read_only", lambda sql, dialect: set())
    kinds = ["DELETE", "UPDATE", "INSERT", "DROP", "CREATE", "ALTER"]
    if db_url.startswith("sqlite"):
        kinds += ["ATTACH", "PRAGMA"]  # SQLite syntax; PostgreSQL has no such statements
    for kind in kinds:
        with pytest.raises(StoreError, match=r"read-?only|readonly|too many attached"):
            run_read_only_query(db_url, WRITES[kind])
    if not db_url.startswith("sqlite"):
        # Writes inside reads; and several statements, which the protocol itself refuses.
        for statement in [
            "WITH gone AS (DELETE FROM trials RETURNING id) SELECT count(*) FROM gone",
            "SELECT * INTO copy_of_trials FROM trials",
            "SELECT * FROM trials FOR UPDATE",
        ]:
            with pytest.raises(StoreError, match="read-only"):
                run_read_only_query(db_url, statement)
        with pytest.raises(StoreError, match="multiple commands"):
            run_read_only_query(db_url, "COMMIT; DELETE FROM trials")
    assert snapshot(db_url) == before
    assert not (tmp_path / "elsewhere.db").exists()


@pytest.fixture(params=["superuser", "ordinary role"])
def pg_attack_url(request: pytest.FixtureRequest, pg_url: str) -> Iterator[str]:
    """The filled test schema, reached as the superuser or as a role that may write its tables."""
    filled(pg_url)
    if request.param == "superuser":
        yield pg_url
        return
    role = "ablate_test_writer"
    schema = pg_url.rsplit("%3D", 1)[1]
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f'GRANT ALL ON SCHEMA "{schema}" TO {role}')
        admin.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA "{schema}" TO {role}')
        admin.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA "{schema}" TO {role}')
    yield pg_url.replace("//postgres@", f"//{role}@", 1)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM {role}')
        admin.execute(f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA "{schema}" FROM {role}')
        admin.execute(f'REVOKE ALL ON SCHEMA "{schema}" FROM {role}')


@contextmanager
def _naming(statement: str) -> Iterator[None]:
    """Say which statement of a list failed."""
    try:
        yield
    except BaseException as e:
        raise AssertionError(f"{statement!r}: {e}") from e


# Each hides a second statement where a keyword scan that gets PostgreSQL's quoting wrong
# (the one ablate had) saw only quoted text or a comment.
QUOTING_ATTACKS = [
    "SELECT 1 /* nested /* */ ' */ ; DELETE FROM trials; --'",  # nested comment
    "SELECT 1 AS x$a$; DELETE FROM trials; SELECT 1 AS y$a$",  # '$' inside a name
    "SELECT $a1$ x $a1$; DELETE FROM trials; SELECT $a1$ y $a1$",  # tag with a digit
    "SELECT $tag$ $$ $tag$; DROP TABLE trials; SELECT $$ $tag$ $$",  # tagged dollar quote
    "SELECT $$ ' $$; DROP TABLE epochs; SELECT ' $$ '",  # untagged dollar quote
    "SELECT E'\\''; DELETE FROM trials; SELECT ''",  # E'' escape of a quote
    "SELECT e'\\\\'; UPDATE trials SET status = 'failed'; SELECT '\\'",  # escaped backslash
    "SELECT U&'\\0061'; DROP TABLE trials; SELECT U&'\\'",  # Unicode escapes
    "SELECT U&\"a\" UESCAPE '!'; DELETE FROM trials; SELECT 1",
    "SELECT B'1'''; DELETE FROM trials; SELECT ''",  # bit string: no '' inside
    "SELECT N'x'''; DELETE FROM trials; SELECT ''",
    "SELECT 1; COMMIT; DELETE FROM trials",  # COMMIT would end a read-only transaction
    "SELECT 1 -- \r; DELETE FROM trials",  # a line comment ends at a carriage return too
]
SERVER_ATTACKS = {
    "pg_read_file": "SELECT pg_read_file('/etc/hostname')",
    "pg_read_binary_file": "SELECT * FROM pg_catalog.pg_read_binary_file('/etc/hostname')",
    "pg_ls_dir": "SELECT pg_ls_dir('.')",
    "pg_stat_file": "SELECT (pg_stat_file('postgresql.conf')).size",
    "lo_import": "SELECT lo_import('/etc/hostname')",
    "lo_export": "SELECT lo_export(1, '/tmp/ablate_test_lo')",
    "pg_terminate_backend": "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
    "pg_cancel_backend": "SELECT pg_cancel_backend(pg_backend_pid())",
    "pg_sleep": "SELECT pg_sleep(30)",
    "pg_sleep_for": "SELECT pg_sleep_for('30 seconds')",
    "pg_advisory_lock": "SELECT pg_advisory_lock(1)",
    "query_to_xml": "SELECT query_to_xml('SELECT pg_read_file(''/etc/hostname'')', true, true, '')",
    "pg_file_settings": "SELECT * FROM pg_file_settings",
    "set_config": "SELECT set_config('statement_timeout', '0', false)",
    # PostgreSQL revokes this one from PUBLIC; it is refused for that, not for its name.
    "pg_show_all_file_settings": "SELECT * FROM pg_show_all_file_settings()",
    # Spellings of a name that PostgreSQL folds or decodes to pg_sleep.
    "pg_sleep ": 'SELECT "pg_sleep"(30)',
    "pg_sleep  ": "SELECT PG_CATALOG . PG_SLEEP /* comment */ (30)",
    "pg_sleep   ": 'SELECT U&"\\0070g_sleep"(30)',
    "pg_sleep    ": "SELECT U&\"!0070g_sleep\" UESCAPE '!' (30)",
    "pg_sleep     ": "SELECT E'\\'', pg_sleep(30) -- '",
}


@pytest.mark.postgres
def test_every_postgres_quoting_form_and_server_function_is_refused(
    pg_attack_url: str, tmp_path: Path
) -> None:
    before = snapshot(pg_attack_url.replace("ablate_test_writer@", "postgres@"))
    for statement in QUOTING_ATTACKS:
        with _naming(statement), pytest.raises(ReadOnlyQueryError, match="statements given"):
            run_read_only_query(pg_attack_url, statement)
    for name, statement in SERVER_ATTACKS.items():
        started = time.monotonic()
        with _naming(statement), pytest.raises(ReadOnlyQueryError, match=f"refuses {name.strip()}"):
            run_read_only_query(pg_attack_url, statement)
        assert time.monotonic() - started < 10, statement
    marker = tmp_path / "pwned"
    for statement in [
        f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'",
        f"COPY trials TO '{marker}'",
        "DO $$ BEGIN PERFORM pg_read_file('/etc/hostname'); END $$",
        "CALL nothing()",
        "SET default_transaction_read_only = off",
        "BEGIN READ WRITE",
    ]:
        with pytest.raises(ReadOnlyQueryError, match="statements are refused"):
            run_read_only_query(pg_attack_url, statement)
    # The driver, not only the check: sent as is, a second statement is refused by the server.
    with (
        pytest.MonkeyPatch.context() as patch,
        pytest.raises(ReadOnlyQueryError, match="multiple commands"),
    ):
        patch.setattr(sql_module, "check_read_only", lambda sql, dialect: set())
        run_read_only_query(pg_attack_url, "SELECT 1; DELETE FROM trials")
    assert not marker.exists()
    assert snapshot(pg_attack_url.replace("ablate_test_writer@", "postgres@")) == before


@pytest.mark.postgres
def test_functions_outside_pg_catalog_are_refused(pg_url: str) -> None:
    filled(pg_url)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        schema = pg_url.rsplit("%3D", 1)[1]
        admin.execute(
            f'CREATE FUNCTION "{schema}".harmless_name() RETURNS text LANGUAGE sql '
            "AS $$ SELECT pg_read_file('/etc/hostname') $$"
        )
    with pytest.raises(ReadOnlyQueryError, match="defined in schema"):
        run_read_only_query(pg_url, "SELECT harmless_name()")


@pytest.mark.postgres
def test_superuser_is_warned_and_an_ordinary_role_is_not(pg_attack_url: str) -> None:
    with read_only_query(pg_attack_url, "SELECT 1") as stream:
        assert list(stream.rows) == [(1,)]
    if "ablate_test_writer@" in pg_attack_url:
        assert stream.notices == []
    else:
        (line,) = stream.notices
        assert "superuser 'postgres'" in line and "read-only role" in line


FALSE_POSITIVES = [
    'SELECT 1 AS copy, 2 AS "delete", \'DROP TABLE trials; --\' AS "update" FROM trials',
    "SELECT count(*) AS into_count FROM trials WHERE status <> 'a:b' AND error IS NULL",
    "SELECT lower('X'), coalesce(NULL, 1), 'pg_sleep(1)' AS not_a_call FROM trials LIMIT 1",
]
PG_FALSE_POSITIVES = [
    "SELECT $$a$$ AS d, $q$ pg_sleep(1); $q$ AS q, E'x\\'y' AS e, U&'\\0061' AS u, "
    "x'1F'::int AS h, B'101' AS b, 1 /* /* nested */ ; */ AS c",
    "SELECT extract(year FROM now()) > 2000, 7 % 3, '%s'",
    "SHOW search_path",
    "(SELECT 1);",
    "TABLE trials",
    "EXPLAIN SELECT * FROM trials",
]


def test_ordinary_queries_are_not_refused(db_url: str) -> None:
    filled(db_url)
    statements = FALSE_POSITIVES + ([] if db_url.startswith("sqlite") else PG_FALSE_POSITIVES)
    for statement in statements:
        assert run_read_only_query(db_url, statement).columns, statement


def test_reads_work_and_keep_literal_percent_and_colons(db_url: str) -> None:
    filled(db_url)
    result = run_read_only_query(
        db_url,
        "SELECT image_size, augment, avg(val_acc), count(*) FROM study_ro WHERE augment LIKE 'n%' "
        "AND status <> 'a:b' GROUP BY 1, 2 ORDER BY 1",
    )
    assert result.columns[:2] == ["image_size", "augment"]
    assert [(r[0], r[1], r[3]) for r in result.rows] == [(8, "none", 1), (16, "none", 1)]
    assert result.rows[0][2] == pytest.approx(0.5)
    joined = run_read_only_query(
        db_url,
        "SELECT t.number, e.epoch, e.val_acc FROM epochs e JOIN trials t ON t.id = e.trial_id "
        "JOIN studies s ON s.id = t.study_id WHERE s.name = 'ro'",
    )
    assert joined.rows == [(0, 1, 0.5)]


ENDLESS = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
    # In the select list: a set-returning function in FROM is materialised before any row.
    "postgresql": "SELECT generate_series(1, 1000000000000) AS x",
}
COUNT_ENDLESS = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    "postgresql": "SELECT count(*) FROM generate_series(1, 1000000000000)",
}


@pytest.mark.slow
def test_rows_stream_and_a_long_query_times_out(db_url: str) -> None:
    filled(db_url)
    engine = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    started = time.monotonic()
    # A trillion rows: only streaming returns the first ones (and stops the rest) in seconds.
    with read_only_query(db_url, ENDLESS[engine], timeout_s=60) as stream:
        first = [row for _, row in zip(range(5), stream.rows, strict=False)]
    assert first == [(1,), (2,), (3,), (4,), (5,)]
    assert time.monotonic() - started < 20
    started = time.monotonic()
    with pytest.raises(ReadOnlyQueryError, match=r"longer than 1 s .*--timeout"):
        run_read_only_query(db_url, COUNT_ENDLESS[engine], timeout_s=1)
    assert time.monotonic() - started < 15


def test_sqlite_read_pragmas_are_allowed(sqlite_url: str) -> None:
    filled(sqlite_url)
    info = run_read_only_query(sqlite_url, "PRAGMA table_info(trials)")
    assert "val_acc" in [row[1] for row in info.rows]
    assert run_read_only_query(sqlite_url, "PRAGMA user_version").rows == [(0,)]


def test_sql_errors_are_one_line(sqlite_url: str) -> None:
    filled(sqlite_url)
    with pytest.raises(ReadOnlyQueryError, match="no such table: nope"):
        run_read_only_query(sqlite_url, "SELECT * FROM nope")
    with pytest.raises(ReadOnlyQueryError, match="empty"):
        check_read_only("  -- nothing\n")
    with pytest.raises(ReadOnlyQueryError, match="unterminated"):
        check_read_only("SELECT 'open")
    with pytest.raises(ReadOnlyQueryError, match="unterminated"):
        check_read_only("SELECT $x$ open")
    with pytest.raises(ReadOnlyQueryError, match="unterminated /\\*"):
        check_read_only("SELECT 1 /* /* */")


def test_tokenizer_follows_postgresql_quoting() -> None:
    kinds = [(t.kind, t.value) for t in tokenize('SELECT x$a$, $a$ ; $a$, E\'\\\'\' , "Q""" (')]
    assert kinds == [
        ("word", "select"),
        ("word", "x$a$"),
        ("op", ","),
        ("string", "$a$ ; $a$"),
        ("op", ","),
        ("string", "E'\\''"),
        ("op", ","),
        ("quoted", 'Q"'),
        ("op", "("),
    ]


def test_sql_on_a_database_without_ablate_schema_writes_nothing(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    with pytest.raises(NotAblateDatabaseError, match="not an ablate database; `ablate db upgrade`"):
        run_read_only_query(f"sqlite:///{other}", "SELECT * FROM notes")
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://alice:s3cr%40t@db.example.org:5432/res",
            "postgresql://alice:***@db.example.org:5432/res",
        ),
        ("postgresql+psycopg://bob:pa:ss@host/db", "postgresql+psycopg://bob:***@host/db"),
        (
            "postgresql://host/db?user=x&password=hunter2",
            "postgresql://host/db?user=x&password=***",
        ),
        ("sqlite:///results.db", "sqlite:///results.db"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_unreachable_server_error_hides_the_password() -> None:
    with pytest.raises(StoreError) as info:
        ResultStore("postgresql://postgres:hunter2@127.0.0.1:1/test")
    message = str(info.value)
    assert "hunter2" not in message and "***" in message
    assert "\n" not in message


@pytest.mark.postgres
def test_display_url_masks_password(pg_url: str) -> None:
    # trust auth ignores the password, so the store opens and we can check what it shows
    url = pg_url.replace("postgres@", "postgres:hunter2@")
    with ResultStore(url) as store:
        assert "hunter2" not in store.display_url and "***" in store.display_url
        assert "hunter2" not in repr(store)
