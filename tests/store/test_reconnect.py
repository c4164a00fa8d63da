"""Lost database connections are a fault of the moment, not the user's: real PostgreSQL sessions
ended from an admin connection (pg_terminate_backend), and a server that does not answer."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from tests.conftest import _pg_admin_dsn

from ablate import Study
from ablate.errors import DatabaseUnavailableError, StudyError
from ablate.store import ResultStore, load_epochs, load_trials
from ablate.store._engine import make_engine, resolve_url, run_transaction

ABLATE = [sys.executable, "-m", "ablate"]
ROOT = Path(__file__).parents[2]


def _terminate(app: str) -> int:
    """End every server session of ``app`` (only this test's: other tests share the server)."""
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (app,)
        ).fetchall()
    return len(rows)


@pytest.mark.postgres
@pytest.mark.slow
def test_store_calls_survive_their_sessions_being_ended(pg_url: str) -> None:
    app = f"ablate-test-{uuid.uuid4().hex[:8]}"
    store = ResultStore(f"{pg_url}&application_name={app}")
    study = Study(name="drops", factors=dict(image_size=[8, 16, 24]))
    store.register_study(study)
    store.add_trials(study, study.validate())
    claimed = store.claim_next_trial("drops", worker="w", lease_s=30)
    assert claimed is not None
    for _ in range(3):
        assert _terminate(app) >= 1  # the pooled connection is now dead
        assert store.heartbeat(claimed.trial_id, "w", 30, epoch=1)
        store.record_epoch(claimed.trial_id, {"epoch": 1, "val_acc": 0.5})
    assert store.finish_trial(claimed.trial_id, "w", status="completed", metrics={"val_acc": 0.5})
    assert list(load_trials("drops", db=pg_url)["status"]) == ["completed", "queued", "queued"]


@pytest.mark.slow
def test_a_server_that_stays_away_is_an_infrastructure_error_after_the_window() -> None:
    engine = make_engine(resolve_url("postgresql://postgres@127.0.0.1:1/test"))  # nothing listens
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError) as caught:
        run_transaction(engine, lambda s: s.execute(text("SELECT 1")), write=False, doing="testing",
                        reconnect_s=1.5)
    assert 1.5 <= time.monotonic() - started < 15
    assert caught.value.exit_code == 3 and "unreachable for" in str(caught.value)


@pytest.mark.postgres
def test_a_wrong_database_name_is_not_retried(pg_url: str) -> None:
    engine = make_engine(resolve_url("postgresql://postgres@127.0.0.1:5432/no_such_db_here"))
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        run_transaction(engine, lambda s: s.execute(text("SELECT 1")), write=False, reconnect_s=30)
    assert time.monotonic() - started < 10
    assert not isinstance(caught.value, (DatabaseUnavailableError, StudyError))


STUDY = """
import time
from ablate import Study
from ablate.train import EpochMetrics

def slow(config, reporter):
    for epoch in range(1, 7):
        time.sleep(0.15)
        reporter.report_epoch(EpochMetrics(epoch=epoch, train_loss=1.0, train_acc=0.5, val_loss=1.0,
            val_acc=epoch / 10, val_top5=None, lr=0.1, seconds=0.15, images_per_s=0.0, peak_mem_mb=0.0))
    return {"val_acc": 0.6, "epochs_run": 6}

study = Study(name="dropped", factors=dict(x=[0, 1, 2, 3]), train=slow)
"""


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_finish_every_trial_through_bursts_of_dropped_connections(pg_url: str, tmp_path: Path) -> None:
    app = f"ablate-test-{uuid.uuid4().hex[:8]}"
    study_file = tmp_path / "dropped.py"
    study_file.write_text(STUDY)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [*ABLATE, "run", str(study_file), "--db", f"{pg_url}&application_name={app}", "--workers", "2",
         "--lease-s", "20", "--runs-dir", str(tmp_path / "runs")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    ended = 0
    stop = threading.Event()

    def bursts() -> None:
        nonlocal ended
        while not stop.is_set():
            for _ in range(5):  # a burst: every session of the run, five times in a row
                ended += _terminate(app)
                time.sleep(0.1)
            time.sleep(1.0)

    killer = threading.Thread(target=bursts, daemon=True)
    killer.start()
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        stop.set()
        killer.join()
    assert proc.returncode == 0, out + err
    assert ended >= 5, "the test ended too few sessions to mean anything"
    trials = load_trials("dropped", db=pg_url)
    assert list(trials["status"]) == ["completed"] * 4
    epochs = load_epochs("dropped", db=pg_url)
    assert sorted(epochs.groupby("trial_id").size()) == [6, 6, 6, 6]


class _Proxy:
    """A TCP relay to the PostgreSQL server; ``cut()`` is the network going away for good."""

    def __init__(self, port: int = 5432) -> None:
        import socket

        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.is_cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # cut
                return
            if self.is_cut:
                client.close()
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        import socket

        self.is_cut = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self.listener.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
                s.close()


LONG_STUDY = STUDY.replace("range(1, 7)", "range(1, 41)").replace("0.15", "0.3").replace(
    'name="dropped"', 'name="cut_off"')


@pytest.mark.postgres
@pytest.mark.slow
def test_a_database_gone_past_the_lease_stops_the_worker_with_code_3_and_fails_nothing(pg_url: str, tmp_path: Path) -> None:
    proxy = _Proxy()
    study_file = tmp_path / "cut_off.py"
    study_file.write_text(LONG_STUDY)
    via_proxy = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    proc = subprocess.Popen(
        [*ABLATE, "run", str(study_file), "--db", via_proxy, "--lease-s", "3", "--runs-dir", str(tmp_path / "runs")],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if len(load_epochs("cut_off", db=pg_url)) >= 2:
                break
        time.sleep(0.1)
    proxy.cut()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, out + err
    assert "unreachable for" in err and "Traceback" not in out + err
    trials = load_trials("cut_off", db=pg_url)
    assert "failed" not in set(trials["status"]) and trials["error"].isna().all()
