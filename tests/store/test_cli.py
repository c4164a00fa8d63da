"""`ablate db`, `ablate sql`, `ablate ls`, `ablate export` through Typer's runner and a real process."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ablate import Study
from ablate.cli import app
from ablate.errors import NotAblateDatabaseError
from ablate.store import ResultStore, load_trials

ROOT = Path(__file__).resolve().parents[2]


def filled(url: str) -> None:
    study = Study(
        name="digits_quick",
        base=dict(dataset="digits"),
        factors=dict(image_size=[8, 16], augment=["none", "basic"]),
        seeds=[0, 1],
    )
    with ResultStore(url) as store:
        store.register_study(study)
        store.add_trials(study, study.validate())
        while (c := store.claim_next_trial("digits_quick", worker="w", lease_s=60)) is not None:
            acc = c.params["image_size"] / 100 + c.seed / 1000
            store.record_epoch(c.trial_id, {"epoch": 1, "val_acc": acc})
            store.finish_trial(c.trial_id, "w", status="completed", metrics={"val_acc": acc})


def invoke(*args: str, env: dict[str, str] | None = None) -> object:
    return CliRunner().invoke(app, list(args), env=env)


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    result = invoke("db", "current", "--db", url)
    assert result.exit_code == 2 and "no database at" in result.output  # type: ignore[attr-defined]
    result = invoke("db", "upgrade", "--db", url)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    from ablate.store._migrate import head_revisions

    (head,) = head_revisions()
    assert f"at revision {head} (was empty)" in result.output  # type: ignore[attr-defined]
    result = invoke("db", "current", "--db", url)
    assert result.exit_code == 0 and "up to date" in result.output  # type: ignore[attr-defined]
    assert "(already)" in invoke("db", "upgrade", "--db", url).output  # type: ignore[attr-defined]


def test_sql_table_csv_json(db_url: str) -> None:
    filled(db_url)
    query = "SELECT image_size, augment, avg(val_acc) AS acc, count(*) AS n FROM study_digits_quick GROUP BY 1, 2 ORDER BY 1, 2"
    table = invoke("sql", query, "--db", db_url)
    assert table.exit_code == 0, table.output  # type: ignore[attr-defined]
    assert "image_size" in table.output and "4 rows" in table.output  # type: ignore[attr-defined]
    as_csv = invoke("sql", query, "--db", db_url, "--csv")
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))  # type: ignore[attr-defined]
    assert rows[0] == ["image_size", "augment", "acc", "n"]
    assert [(r[0], r[1], r[3]) for r in rows[1:]] == [
        ("8", "basic", "2"),
        ("8", "none", "2"),
        ("16", "basic", "2"),
        ("16", "none", "2"),
    ]
    assert float(rows[3][2]) == pytest.approx(0.16 + 0.0005)
    as_json = json.loads(invoke("sql", query, "--db", db_url, "--json").stdout)  # type: ignore[attr-defined]
    assert as_json[0]["image_size"] == 8 and as_json[0]["n"] == 2


def test_sql_refuses_writes_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    filled(url)
    result = invoke("sql", "DELETE FROM trials", "--db", url)
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert result.output.strip().splitlines() == [  # type: ignore[attr-defined]
        "error: ablate sql is read-only: DELETE statements are refused; allowed: SELECT, WITH, EXPLAIN, VALUES, PRAGMA"
    ]
    count = invoke("sql", "SELECT count(*) FROM trials", "--db", url, "--csv")
    assert count.output.splitlines() == ["count(*)", "8"]  # type: ignore[attr-defined]


def test_ls_counts_and_env_var(db_url: str) -> None:
    filled(db_url)
    result = invoke("ls", "--json", env={"ABLATE_DB": db_url})
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    (row,) = json.loads(result.output)  # type: ignore[attr-defined]
    assert (row["name"], row["version"], row["trials"], row["completed"], row["queued"]) == (
        "digits_quick",
        1,
        8,
        8,
        0,
    )
    table = invoke("ls", "--db", db_url)
    assert "digits_quick" in table.output  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export(fmt: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    filled(url)
    out = tmp_path / f"trials.{fmt}"
    result = invoke(
        "export", "--study", "digits_quick", "--format", fmt, "--out", str(out), "--db", url
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    frame = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt](out)
    assert len(frame) == 8
    assert sorted(frame["image_size"].unique().tolist()) == [8, 16]
    assert frame.groupby("image_size")["val_acc"].mean().round(4).to_dict() == {
        8: 0.0805,
        16: 0.1605,
    }
    assert json.loads(frame["config"].iloc[0])["dataset"] == "digits"


def test_export_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    filled(url)
    bad = invoke("export", "--study", "digits_quick", "--format", "xlsx", "--db", url)
    assert bad.exit_code == 2 and "allowed: csv, parquet, json" in bad.output  # type: ignore[attr-defined]
    missing = invoke("export", "--study", "nope", "--db", url)
    assert missing.exit_code == 2 and "no study named 'nope'" in missing.output  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("out", "says"),
    [
        ("missing/trials.csv", "does not exist"),
        (".", "is a folder"),
        ("/dev/null/trials.csv", "is not a folder"),
    ],
)
def test_export_refuses_an_unwritable_out_in_one_line(
    out: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'e.db'}"
    filled(url)
    result = invoke("export", "--study", "digits_quick", "--out", out, "--db", url)
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    (line,) = result.output.splitlines()  # type: ignore[attr-defined]
    assert line.startswith(f"error: export --out {out}") and says in line


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg2://u@h/db", "postgresql+asyncpg://u@h/db", "sqlite+aiosqlite:///a.db"],
)
def test_unsupported_drivers_are_one_line(url: str) -> None:
    result = invoke("ls", "--db", url)
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    (line,) = result.output.splitlines()  # type: ignore[attr-defined]
    assert "is not supported" in line and "Traceback" not in result.output  # type: ignore[attr-defined]


def test_password_never_printed() -> None:
    result = invoke("ls", "--db", "postgresql://postgres:hunter2@127.0.0.1:1/test")
    assert result.exit_code == 1  # type: ignore[attr-defined]
    assert "hunter2" not in result.output and "postgres:***@" in result.output  # type: ignore[attr-defined]


@pytest.mark.slow
def test_real_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    filled(url)
    env = {**os.environ, "ABLATE_DB": url}
    done = subprocess.run(
        [sys.executable, "-m", "ablate", "sql", "SELECT augment, count(*) AS n FROM study_digits_quick GROUP BY 1 ORDER BY 1", "--csv"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["augment,n", "basic,4", "none,4"]
    refused = subprocess.run(
        [sys.executable, "-m", "ablate", "sql", "DROP TABLE trials"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2 and "DROP statements are refused" in refused.stderr
    assert "Traceback" not in refused.stderr


def _other_apps_sqlite(path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()


READ_ONLY_COMMANDS = [
    ["ls"],
    ["sql", "SELECT 1"],
    ["status", "--study", "digits_quick"],
    ["export", "--study", "digits_quick", "--out", "-"],
    ["report", "--study", "digits_quick"],
]


@pytest.mark.parametrize("kind", ["empty file", "another application's", "not sqlite"])
def test_read_only_commands_refuse_a_foreign_sqlite_file_and_write_nothing(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "their.db"
    if kind == "empty file":
        path.write_bytes(b"")
    elif kind == "not sqlite":
        path.write_text("name,score\nx,1\n")
    else:
        _other_apps_sqlite(path)
    before = path.read_bytes()
    for command in READ_ONLY_COMMANDS:
        result = invoke(*command, "--db", str(path))
        assert result.exit_code == 2, (command, result.output)  # type: ignore[attr-defined]
        says = (
            "not an ablate database: the file is not a SQLite database at all"
            if kind == "not sqlite"
            else "not an ablate database; `ablate db upgrade` creates one"
        )
        assert result.output.splitlines() == [f"error: sqlite:///{path}: {says}"], command  # type: ignore[attr-defined]
    with pytest.raises(NotAblateDatabaseError, match="not an ablate database"):
        load_trials("digits_quick", str(path))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["their.db"]  # no -wal, no report
    current = invoke("db", "current", "--db", str(path))
    if kind == "not sqlite":
        assert current.exit_code == 2 and "not a SQLite database" in current.output  # type: ignore[attr-defined]
    else:
        assert "empty (no ablate schema)" in current.output  # type: ignore[attr-defined]
    assert path.read_bytes() == before


@pytest.mark.postgres
def test_read_only_commands_refuse_an_empty_postgres_schema(pg_url: str) -> None:
    from sqlalchemy import create_engine, inspect

    for command in READ_ONLY_COMMANDS:
        result = invoke(*command, "--db", pg_url)
        assert result.exit_code == 2, (command, result.output)  # type: ignore[attr-defined]
        assert "not an ablate database; `ablate db upgrade` creates one" in result.output  # type: ignore[attr-defined]
    engine = create_engine(pg_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_read_only_commands_refuse_an_old_schema_and_leave_it_old(tmp_path: Path) -> None:
    from ablate.store._migrate import current_revisions, head_revisions

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = min(head_revisions()[0], "0001")
    upgraded = invoke("db", "upgrade", "--db", url, "--revision", old)
    assert upgraded.exit_code == 0, upgraded.output  # type: ignore[attr-defined]
    before = (tmp_path / "old.db").read_bytes()
    for command in READ_ONLY_COMMANDS:
        result = invoke(*command, "--db", url)
        assert result.exit_code == 2, (command, result.output)  # type: ignore[attr-defined]
        assert "`ablate db upgrade` migrates it" in result.output  # type: ignore[attr-defined]
    assert (tmp_path / "old.db").read_bytes() == before
    with ResultStore(url, read_only=True, require_schema=False) as store:
        assert current_revisions(store.engine) == (old,)


@pytest.mark.slow
def test_sql_streams_csv_and_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    filled(url)
    query = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 25000) SELECT x, 'r' || x AS name FROM c"
    as_csv = invoke("sql", query, "--db", url, "--csv")
    lines = as_csv.output.splitlines()  # type: ignore[attr-defined]
    assert lines[0] == "x,name" and lines[-1] == "25000,r25000" and len(lines) == 25001
    as_json = json.loads(invoke("sql", query, "--db", url, "--json").output)  # type: ignore[attr-defined]
    assert len(as_json) == 25000 and as_json[-1] == {"x": 25000, "name": "r25000"}
    empty = invoke("sql", "SELECT 1 AS x WHERE 0", "--db", url, "--json")
    assert json.loads(empty.output) == []  # type: ignore[attr-defined]
    table = invoke("sql", query, "--db", url)
    assert "first 10000 rows shown" in table.output  # type: ignore[attr-defined]
    slow = invoke(
        "sql", query.replace("25000", "100000000000"), "--db", url, "--timeout", "1", "--csv"
    )
    assert slow.exit_code == 2 and "longer than 1 s" in slow.output  # type: ignore[attr-defined]
