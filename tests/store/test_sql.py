"""`ablate sql` is read-only on both engines, and database URLs never show a password."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ablate import Study
from ablate.errors import ReadOnlyQueryError, StoreError
from ablate.store import ResultStore, check_read_only, mask_url, run_read_only_query
from ablate.store import _sql as sql_module


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
        tables = ["studies", "trials", "trial_params", "epochs", "artifacts", "environments"]
        out: dict[str, Any] = {
            t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1"))]
            for t in tables
        }
        out["view"] = [
            tuple(r) for r in conn.execute(text("SELECT * FROM study_ro ORDER BY number"))
        ]
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
SNEAKY = {
    "DELETE": "WITH gone AS (DELETE FROM trials RETURNING id) SELECT count(*) FROM gone",
    "SELECT INTO": "SELECT * INTO copy_of_trials FROM trials",
    "DROP": "SELECT 1; DROP TABLE trials",
    "UPDATE": "/* just a comment */ UPDATE trials SET error = 'x'",
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


@pytest.mark.parametrize("kind", list(SNEAKY))
def test_writes_hidden_in_reads_are_refused(kind: str) -> None:
    with pytest.raises(ReadOnlyQueryError) as info:
        check_read_only(SNEAKY[kind])
    assert kind in str(info.value) or "one statement" in str(info.value)


def test_keywords_inside_strings_and_names_do_not_count() -> None:
    check_read_only("SELECT 'DROP TABLE trials; DELETE' AS \"update\" FROM trials -- DELETE")


def test_the_connection_itself_refuses_writes(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second guard: with the statement check switched off, the database still refuses."""
    monkeypatch.chdir(tmp_path)
    filled(db_url)
    before = snapshot(db_url)
    monkeypatch.setattr(sql_module, "check_read_only", lambda sql: None)
    kinds = ["DELETE", "UPDATE", "INSERT", "DROP", "CREATE", "ALTER"]
    if db_url.startswith("sqlite"):
        kinds += ["ATTACH", "PRAGMA"]  # SQLite syntax; PostgreSQL has no such statements
    for kind in kinds:
        with pytest.raises(StoreError, match=r"read-?only|readonly|too many attached"):
            run_read_only_query(db_url, WRITES[kind])
    if not db_url.startswith("sqlite"):  # a DELETE inside WITH is PostgreSQL syntax
        with pytest.raises(StoreError, match="read-only"):
            run_read_only_query(db_url, SNEAKY["DELETE"])
    assert snapshot(db_url) == before
    assert not (tmp_path / "elsewhere.db").exists()


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
