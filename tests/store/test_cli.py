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
from ablate.store import ResultStore

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
    assert result.exit_code == 1 and "no database at" in result.output  # type: ignore[attr-defined]
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
    rows = list(csv.reader(io.StringIO(as_csv.output)))  # type: ignore[attr-defined]
    assert rows[0] == ["image_size", "augment", "acc", "n"]
    assert [(r[0], r[1], r[3]) for r in rows[1:]] == [
        ("8", "basic", "2"),
        ("8", "none", "2"),
        ("16", "basic", "2"),
        ("16", "none", "2"),
    ]
    assert float(rows[3][2]) == pytest.approx(0.16 + 0.0005)
    as_json = json.loads(invoke("sql", query, "--db", db_url, "--json").output)  # type: ignore[attr-defined]
    assert as_json[0]["image_size"] == 8 and as_json[0]["n"] == 2


def test_sql_refuses_writes_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    filled(url)
    result = invoke("sql", "DELETE FROM trials", "--db", url)
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert result.output.strip().splitlines() == [  # type: ignore[attr-defined]
        "error: ablate sql is read-only: DELETE statements are refused; allowed: SELECT, WITH, EXPLAIN, VALUES, PRAGMA <name>"
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
    assert bad.exit_code == 1 and "allowed: csv, parquet, json" in bad.output  # type: ignore[attr-defined]
    missing = invoke("export", "--study", "nope", "--db", url)
    assert missing.exit_code == 2 and "no study named 'nope'" in missing.output  # type: ignore[attr-defined]


def test_password_never_printed() -> None:
    result = invoke("ls", "--db", "postgresql://postgres:hunter2@127.0.0.1:1/test")
    assert result.exit_code == 1  # type: ignore[attr-defined]
    assert "hunter2" not in result.output and "postgres:***@" in result.output  # type: ignore[attr-defined]


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
