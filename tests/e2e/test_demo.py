"""The README's main job, end to end: a clean clone, the digits study, its report, the database."""

from __future__ import annotations

import csv
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ABLATE = str(Path(sys.executable).with_name("ablate"))


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of the working tree as committed, plus uncommitted edits (as a developer has it)."""
    target = tmp_path_factory.mktemp("clone") / "ablate"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    changed = subprocess.run(["git", "ls-files", "--modified", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in changed:
        if (ROOT / rel).is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, target / rel)
    return target


@pytest.mark.slow
def test_demo_trains_reports_and_stores_everything(clone: Path) -> None:
    run = subprocess.run([ABLATE, "run", "studies/digits_quick.py"], cwd=clone,
                         capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "digits_quick: 18 completed" in run.stdout
    assert "ablate report digits_quick" in run.stdout

    report = subprocess.run([ABLATE, "report", "--study", "digits_quick"], cwd=clone,
                            capture_output=True, text=True, timeout=300, check=False)
    assert report.returncode == 0, report.stdout + report.stderr
    out = clone / "reports" / "digits_quick"
    assert "reports/digits_quick/index.html" in report.stdout
    for name in ("index.html", "report.md", "table.md", "table.csv", "table.tex",
                 "main_effects.png", "learning_curves.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 200, name
    html = (out / "index.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html.replace("http://www.w3.org", "")
    with (out / "table.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6

    db = sqlite3.connect(clone / "ablate.db")
    n_trials, n_done = db.execute(
        "SELECT count(*), sum(status = 'completed') FROM study_digits_quick").fetchone()
    assert (n_trials, n_done) == (18, 18)
    n_epochs = db.execute(
        "SELECT count(*) FROM epochs e JOIN trials t ON t.id = e.trial_id "
        "JOIN studies s ON s.id = t.study_id WHERE s.name = 'digits_quick'").fetchone()[0]
    assert n_epochs == 18 * 6
    by_size = dict(db.execute(
        "SELECT image_size, avg(val_acc) FROM study_digits_quick GROUP BY image_size").fetchall())
    # the demo's point: at 4 px the digits lose detail and accuracy drops
    assert by_size[4] < by_size[8] - 0.03 and by_size[4] < by_size[16] - 0.03, by_size
    assert min(by_size.values()) > 0.5  # every configuration learned

    again = subprocess.run([ABLATE, "run", "studies/digits_quick.py"], cwd=clone,
                           capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0 and "0 new, 18 already finished" in again.stdout
