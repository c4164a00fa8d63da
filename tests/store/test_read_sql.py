"""`ablate sql`'s table view: floats at most 6 significant digits; --csv and --json keep them all."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from ablate import Study
from ablate.cli import app
from ablate.store import ResultStore

QUERY = (
    "SELECT number, val_acc, 1.0 / 3 AS third, 123456789.25 AS big, 0.0000001234567 AS tiny "
    "FROM study_digits_quick ORDER BY number"
)


def fill(url: str) -> list[float]:
    """Two completed trials whose val_acc needs all 17 digits; returns them."""
    study = Study(
        name="digits_quick", base=dict(dataset="digits"), factors=dict(image_size=[8, 16])
    )
    accs = []
    with ResultStore(url) as store:
        store.register_study(study)
        store.add_trials(study, study.validate())
        while (c := store.claim_next_trial("digits_quick", worker="w", lease_s=60)) is not None:
            acc = 0.9703832752613241 - c.number / 7
            accs.append(acc)
            store.finish_trial(c.trial_id, "w", status="completed", metrics={"val_acc": acc})
    return accs


def test_table_shows_six_significant_digits(db_url: str) -> None:
    accs = fill(db_url)
    result = CliRunner().invoke(app, ["sql", QUERY, "--db", db_url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    rows = [
        [c.strip() for c in line.strip("│").split("│")]
        for line in result.output.splitlines()
        if line.startswith("│")
    ]
    assert rows == [
        ["0", f"{accs[0]:.6g}", "0.333333", "1.23457e+08", "1.23457e-07"],
        ["1", f"{accs[1]:.6g}", "0.333333", "1.23457e+08", "1.23457e-07"],
    ]
    assert rows[0][1] == "0.970383"


def test_csv_and_json_keep_every_digit(db_url: str) -> None:
    accs = fill(db_url)
    as_csv = CliRunner().invoke(app, ["sql", QUERY, "--db", db_url, "--csv"])
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [float(r["val_acc"]) for r in rows] == accs  # exact: repr round-trips
    assert rows[0]["val_acc"] == repr(accs[0])
    as_json = json.loads(CliRunner().invoke(app, ["sql", QUERY, "--db", db_url, "--json"]).stdout)
    assert [r["val_acc"] for r in as_json] == accs
