"""`ablate dashboard` for real: the server in its own process over a study run by real workers,
its JSON API and its page in headless Chromium, a run adding trials while it serves, and the
bad inputs that end in one line and exit code 2."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.report.checks import CHROMIUM, CHROMIUM_FLAGS, assert_real_image
from tests.run.processes import ABLATE, ROOT, clean_env

from ablate.store import ResultStore, load_epochs, load_trials

pytestmark = pytest.mark.slow  # starts ablate processes and Chromium

SEARCH = Path(__file__).parent / "studies" / "dash_search.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_search(db: str, tmp_path: Path, n_trials: int, *, workers: int = 1, sleep: float = 0.0) -> subprocess.Popen[str]:
    env = clean_env(DASH_TRIALS=str(n_trials), DASH_SLEEP=str(sleep))
    return subprocess.Popen(
        [*ABLATE, "run", str(SEARCH), "--db", db, "--workers", str(workers), "--runs-dir", str(tmp_path / "runs")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@contextmanager
def dashboard(*args: str) -> Iterator[str]:
    """`ablate dashboard ARGS` on a free port; yields the URL it prints, stops it with Ctrl+C."""
    port = free_port()
    proc = subprocess.Popen(
        [*ABLATE, "dashboard", *args, "--port", str(port)],
        cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 90)
        line = proc.stdout.readline() if ready else ""
        assert line.startswith("optuna-dashboard at http://127.0.0.1:"), line + (proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
        yield line.split()[2]
    finally:
        proc.send_signal(signal.SIGTERM)  # as Ctrl+C (SIGINT may be ignored in a background job)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as response:
        assert response.status == 200
        return json.loads(response.read())


def chromium(url: str, *, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (virtual time), or a screenshot of it."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: apt-get install -y chromium (tools/test-services installs it)", pytrace=False)
    with tempfile.TemporaryDirectory() as profile:
        args = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--hide-scrollbars"]
        args += [f"--screenshot={screenshot}", "--window-size=1400,900"] if screenshot else ["--dump-dom"]
        done = subprocess.run([*args, url], capture_output=True, text=True, timeout=120, cwd=profile)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_dashboard_shows_a_study_and_follows_a_run(db_url: str, tmp_path: Path) -> None:
    first = run_search(db_url, tmp_path, 6)
    assert first.wait(timeout=300) is not None and "6 trials planned" in (first.stdout.read() if first.stdout else "")
    with dashboard("--db", db_url) as url:
        base = url.removesuffix("/dashboard")
        [summary] = get(f"{base}/api/studies")["study_summaries"]
        assert summary["study_name"] == "dash_search" and summary["directions"] == ["maximize"]
        study_id = summary["study_id"]
        detail = get(f"{base}/api/studies/{study_id}")
        trials = load_trials("dash_search", db=db_url)
        assert [t["number"] for t in detail["trials"]] == trials["number"].tolist()
        assert [t["state"] for t in detail["trials"]] == [
            "Complete" if s == "completed" else "Fail" for s in trials["status"]
        ]
        assert detail["objective_names"] == ["val_acc"]
        first_done = next(t for t in detail["trials"] if t["state"] == "Complete")
        assert {p["name"] for p in first_done["params"]} == {"x", "lr", "width"}
        assert len(first_done["intermediate_values"]) == 3
        attrs = {a["key"]: a["value"] for a in first_done["user_attrs"]}
        assert attrs["seed"] == "0" and attrs["status"] == "completed" and "worker" in attrs

        # The page: a JavaScript app, so the DOM is read after its scripts ran.
        assert "dash_search" in chromium(url)
        page = chromium(f"{url}/studies/{study_id}/trials")
        assert all(f"Trial {n}" in page for n in range(6)) and "Trial 6" not in page

        # Three more trials run by two workers while the dashboard is read over and over.
        more = run_search(db_url, tmp_path, 9, workers=2, sleep=1.0)  # > the 2 s optuna-dashboard caches trials
        polls, seen_running = 0, False
        while more.poll() is None:
            states = [t["state"] for t in get(f"{base}/api/studies/{study_id}")["trials"]]
            seen_running |= "Running" in states
            polls += 1
            time.sleep(0.2)
        assert more.returncode == 1, more.stdout.read() if more.stdout else ""  # x=c trials fail
        assert polls > 3 and seen_running

        detail = get(f"{base}/api/studies/{study_id}")
        assert len(detail["trials"]) == 9
        epochs = load_epochs("dash_search", db=db_url)
        for trial in detail["trials"]:
            curve = epochs[epochs["number"] == trial["number"]]
            assert [v["value"] for v in trial["intermediate_values"]] == curve["val_acc"].tolist()
        page = chromium(f"{url}/studies/{study_id}/trials")  # a refresh: a new load of the page
        assert all(f"Trial {n}" in page for n in range(9))
        shot = tmp_path / "dash.png"
        chromium(f"{url}/studies/{study_id}", screenshot=shot)
        assert_real_image(shot)
        if os.environ.get("ABLATE_KEEP_SCREENSHOT"):
            Path(os.environ["ABLATE_KEEP_SCREENSHOT"]).write_bytes(shot.read_bytes())

        # Writes are refused with a reason; notes are kept (in memory).
        request = urllib.request.Request(
            f"{base}/api/studies", method="POST", data=b'{"study_name": "x", "directions": ["minimize"]}',
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 403 and "read-only" in json.loads(refused.value.read())["reason"]
        note = urllib.request.Request(
            f"{base}/api/studies/{study_id}/note", method="PUT", data=b'{"version": 1, "body": "seed 0 only"}',
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(note, timeout=30) as response:
            assert response.status == 204
        assert get(f"{base}/api/studies/{study_id}")["note"] == {"version": 1, "body": "seed 0 only"}
    assert len(load_trials("dash_search", db=db_url)) == 9


def _refused(*args: str) -> str:
    done = subprocess.run([*ABLATE, "dashboard", *args], cwd=ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout == ""
    return done.stderr


def test_bad_inputs_are_one_line_and_exit_code_2(tmp_path: Path, pg_url: str) -> None:
    db = f"sqlite:///{tmp_path / 'ablate.db'}"
    with ResultStore(db):
        pass  # an ablate database without studies
    assert "no study named 'nosuch'" in _refused("nosuch", "--db", db)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert f"--port {port}: already in use on 127.0.0.1" in _refused("--db", db, "--port", port)
    other = tmp_path / "other.db"  # another application's SQLite file
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE trials (id INTEGER PRIMARY KEY, name TEXT)")
    assert "not an ablate database" in _refused("--db", str(other))
    assert "no database at" in _refused("--db", str(tmp_path / "missing.db"))
    # A PostgreSQL schema without ablate's tables, reached with a password in the URL.
    with_password = pg_url.replace("postgres@", "postgres:s3cret-pw@", 1)
    message = _refused("--db", with_password)
    assert "not an ablate database" in message and "s3cret-pw" not in message and "***" in message


def test_help_does_not_import_the_dashboard() -> None:
    # `ablate -h` and `ablate dashboard -h` stay fast: optuna and optuna-dashboard load only
    # when the dashboard starts.
    code = (
        "import sys; from ablate.cli import main; sys.argv = ['ablate', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'optuna_dashboard', 'bottle')))"
    )
    for args in ([], ["-h"], ["dashboard", "-h"]):
        done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=clean_env(), capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
        assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
