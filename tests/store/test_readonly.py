"""The read-only path of `ablate sql`, `ablate ls` and `ablate status`: driver connections, one schema query.

It must name and refuse databases exactly as ``ResultStore(read_only=True)`` does, read the same
rows as the ORM, write nothing, and keep the light commands' imports light.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ablate import Study
from ablate.errors import NotAblateDatabaseError, StoreError
from ablate.store import ResultStore, read_only_connection, read_study_summaries
from ablate.store._readonly import plain_sqlite_file

ROOT = Path(__file__).resolve().parents[2]


def _filled(url: str) -> None:
    study = Study(name="digits_quick", base=dict(dataset="digits"), factors=dict(image_size=[8, 16]))
    with ResultStore(url) as store:
        store.register_study(study)
        store.add_trials(study, study.validate())
        claimed = store.claim_next_trial("digits_quick", worker="w", lease_s=60)
        assert claimed is not None
        store.finish_trial(claimed.trial_id, "w", status="failed", metrics={}, error="boom")
        store.claim_next_trial("digits_quick", worker="w", lease_s=60)  # left running


@pytest.mark.parametrize("name", ["r.db", "a b.db", "ü.db", "a@b.db", "a:b.db", "a+b.db", "x,y;z.db"])
def test_a_sqlite_file_is_named_as_the_store_names_it(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    ResultStore(str(path)).close()
    for db in (str(path), f"sqlite:///{path}"):
        assert plain_sqlite_file(db) == path  # opened without SQLAlchemy
        with ResultStore(db, read_only=True) as store, read_only_connection(db) as opened:
            assert opened.display_url == store.display_url
            assert opened.dialect == "sqlite"


def test_a_relative_path_and_the_default_resolve_like_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABLATE_DB", raising=False)
    ResultStore("ablate.db").close()
    for db in (None, "ablate.db", "sqlite:///ablate.db", "./ablate.db"):
        with ResultStore(db, read_only=True) as store, read_only_connection(db) as opened:
            assert opened.display_url == store.display_url == f"sqlite:///{tmp_path / 'ablate.db'}"


@pytest.mark.parametrize(
    "db", ["sqlite:///a%20b.db", "sqlite:///x.db?mode=rw", "postgresql://h/db", "sqlite://", ":memory:"]
)
def test_what_needs_sqlalchemy_to_parse_goes_through_it(db: str) -> None:
    assert plain_sqlite_file(db) is None


def test_missing_and_foreign_files_are_refused_as_the_store_refuses_them(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    with pytest.raises(NotAblateDatabaseError) as ours, read_only_connection(str(missing)):
        pass
    with pytest.raises(NotAblateDatabaseError) as theirs:
        ResultStore(str(missing), read_only=True)
    assert str(ours.value) == str(theirs.value)
    folder = tmp_path / "folder.db"
    folder.mkdir()
    with pytest.raises(StoreError, match="while reading the schema version"), read_only_connection(str(folder)):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.db"]


def test_the_sqlite_connection_cannot_write_or_attach(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    ResultStore(str(path)).close()
    before = path.read_bytes()
    with read_only_connection(str(path)) as opened:
        conn = opened.connection
        assert conn.execute("PRAGMA query_only").fetchone() == (1,)
        with pytest.raises(sqlite3.OperationalError, match="readonly database"):
            conn.execute("DELETE FROM studies")
        conn.execute("PRAGMA query_only=OFF")  # mode=ro still refuses: the OS-level guarantee
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("CREATE TABLE t (x)")
        with pytest.raises(sqlite3.OperationalError, match="too many attached"):
            conn.execute(f"ATTACH '{tmp_path / 'new.db'}' AS other")
    assert path.read_bytes() == before
    assert not (tmp_path / "new.db").exists()


def test_study_summaries_are_the_orm_ones(db_url: str) -> None:
    from ablate.store import study_summaries as orm_summaries
    _filled(db_url)
    with read_only_connection(db_url) as opened:
        plain = read_study_summaries(opened)
    assert plain == orm_summaries(db_url)
    assert plain[0]["failed"] == 1 and plain[0]["running"] == 1 and plain[0]["trials"] == 2


@pytest.mark.postgres
def test_an_empty_postgres_schema_is_refused(pg_url: str) -> None:
    with pytest.raises(NotAblateDatabaseError, match="`ablate db upgrade` creates one"), read_only_connection(pg_url):
        pass


LIGHT_COMMANDS = [["sql", "SELECT count(*) FROM trials"], ["ls"], ["status", "digits_quick"], ["--version"]]
# What the light commands must never import; the first three cost seconds.
HEAVY = ("torch", "pandas", "optuna", "alembic")


@pytest.mark.slow
@pytest.mark.parametrize("command", LIGHT_COMMANDS, ids=lambda c: c[0])
def test_light_commands_do_not_import_heavy_libraries(command: list[str], tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _filled(str(db))
    # The modules loaded at exit, printed by an atexit hook registered before ablate is imported.
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('MODULES', ' '.join(sorted(sys.modules)), file=sys.stderr))\n"
        "from ablate.cli import main\n"
        f"sys.argv = ['ablate', *{command!r}] + ([] if {command!r}[0] == '--version' else ['--db', {str(db)!r}])\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "COLUMNS": "120"})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("MODULES ")]
    top = {m.split(".")[0] for m in line.split()[1:]}
    assert not top & set(HEAVY), sorted(top & set(HEAVY))
    if command[0] in ("sql", "ls", "status", "--version"):  # a SQLite file: not even SQLAlchemy
        assert "sqlalchemy" not in top


def test_an_unreachable_server_is_named_as_the_store_names_it() -> None:
    url = "postgresql://postgres:hunter2@127.0.0.1:1/test"
    with pytest.raises(StoreError) as ours, read_only_connection(url):
        pass
    with pytest.raises(StoreError) as theirs:
        ResultStore(url, read_only=True)
    assert str(ours.value) == str(theirs.value)
    assert "hunter2" not in str(ours.value) and "\n" not in str(ours.value)


def test_status_reads_what_the_store_holds(db_url: str) -> None:
    from ablate.errors import StudyError
    from ablate.store import read_study_progress

    _filled(db_url)
    with read_only_connection(db_url) as opened:
        progress = read_study_progress(opened, "digits_quick")
        with pytest.raises(StudyError) as ours:
            read_study_progress(opened, "nope")
    with ResultStore(db_url, read_only=True) as store:
        assert progress.counts == store.status_counts("digits_quick") == {"failed": 1, "running": 1}
        assert progress.definition == store.load_study("digits_quick").definition
        with pytest.raises(StudyError) as theirs:
            store.load_study("nope")
    assert str(ours.value) == str(theirs.value)
    ((number, seed, worker, config, heartbeat, epoch),) = progress.running
    assert (number, seed, worker, config["image_size"], epoch) == (1, 0, "w", 16, None)
    assert heartbeat is not None and heartbeat.tzinfo is not None
    assert progress.failures == [(0, "boom")]
    assert progress.mean_duration_s is None  # nothing completed
