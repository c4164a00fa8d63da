"""Running studies with real worker processes against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ablate.run import run_study
from ablate.store import load_epochs, load_trials

from .processes import wait_for_epochs, write_boom_study

pytestmark = pytest.mark.slow  # every test here trains or starts ablate in a new process

HERE = Path(__file__).parent
STUDIES = HERE / "studies"
ROOT = HERE.parents[1]
ABLATE = [sys.executable, "-m", "ablate"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "ABLATE_TEST_LOG": str(tmp_path / "executions.log"), **extra}


def test_four_workers_run_every_trial_exactly_once(db_url: str, tmp_path: Path) -> None:
    env = _env(tmp_path, ABLATE_TEST_SLEEP="0.05")
    proc = subprocess.run(
        [*ABLATE, "run", str(STUDIES / "quick_grid.py"), "--db", db_url, "--workers", "4",
         "--runs-dir", str(tmp_path / "runs")],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = load_trials("quick_grid", db=db_url)
    assert len(trials) == 40
    assert (trials["status"] == "completed").all()
    executions = (tmp_path / "executions.log").read_text().splitlines()
    keys = [tuple(line.split(",")[:3]) for line in executions]
    assert len(keys) == 40 and len(set(keys)) == 40, collections.Counter(keys).most_common(3)
    assert len({line.split(",")[3] for line in executions}) > 1, "only one worker process did work"
    # metrics landed in typed columns, factors as their real values
    row = trials[(trials["a"] == 7) & (trials["b"] == 1)].iloc[0]
    assert row["val_acc"] == pytest.approx(0.71)


def test_rerun_runs_nothing_and_a_new_level_runs_only_new_trials(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_TEST_LOG", str(tmp_path / "executions.log"))
    study_file = tmp_path / "grid.py"
    source = (STUDIES / "quick_grid.py").read_text().replace("range(10)", "range(2)")
    study_file.write_text(source)
    (first,) = run_study(study_file, db=sqlite_url, runs_dir=tmp_path / "runs")
    assert first.added == 8 and first.summary.completed == 8
    (again,) = run_study(study_file, db=sqlite_url, runs_dir=tmp_path / "runs")
    assert again.added == 0 and again.summary.ran == 0
    study_file.write_text(source.replace("a=list(range(2))", "a=list(range(3))"))
    (more,) = run_study(study_file, db=sqlite_url, runs_dir=tmp_path / "runs")
    assert more.added == 4 and more.summary.completed == 4
    log = (tmp_path / "executions.log").read_text().splitlines()
    assert len(log) == 12 == len(set(log))


def test_changing_base_is_refused_unless_new_version(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ablate import StudyError

    monkeypatch.setenv("ABLATE_TEST_LOG", str(tmp_path / "executions.log"))
    study_file = tmp_path / "grid.py"
    source = (STUDIES / "quick_grid.py").read_text().replace("range(10)", "range(1)")
    study_file.write_text(source)
    run_study(study_file, db=sqlite_url, runs_dir=tmp_path / "runs")
    study_file.write_text(source.replace("factors=dict(", "base=dict(epochs=3), factors=dict("))
    with pytest.raises(StudyError, match="base"):
        run_study(study_file, db=sqlite_url, runs_dir=tmp_path / "runs")
    (outcome,) = run_study(study_file, db=sqlite_url, runs_dir=tmp_path / "runs", new_version=True)
    assert outcome.summary.completed == 4


def test_max_trials_and_seed_order(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_TEST_LOG", str(tmp_path / "executions.log"))
    (outcome,) = run_study(STUDIES / "quick_grid.py", db=sqlite_url, max_trials=20, runs_dir=tmp_path / "runs")
    assert outcome.summary.completed == 20
    trials = load_trials("quick_grid", db=sqlite_url)
    done = trials[trials["status"] == "completed"]
    # every configuration's first seed ran before any second seed
    assert set(done["seed"]) == {0}


def test_killed_worker_trial_resumes_from_checkpoint(db_url: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    env = {**os.environ, "ABLATE_LEASE_S": "2"}
    first = subprocess.Popen(
        [*ABLATE, "run", str(STUDIES / "tiny_train.py"), "--db", db_url, "--runs-dir", str(runs)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for_epochs("tiny_train", db_url, 2)
    first.send_signal(signal.SIGKILL)  # a dead Colab session: no clean-up of any kind
    first.wait()
    trials = load_trials("tiny_train", db=db_url)
    assert list(trials["status"]) == ["running"]
    killed_at = len(load_epochs("tiny_train", db=db_url))
    assert 2 <= killed_at < 6
    time.sleep(2.5)  # the lease expires
    resumed = subprocess.run(
        [*ABLATE, "worker", "--study", "tiny_train", "--db", db_url, "--runs-dir", str(runs)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming trial 0" in resumed.stdout
    trials = load_trials("tiny_train", db=db_url)
    assert list(trials["status"]) == ["completed"] and int(trials["attempt"].iloc[0]) == 2
    epochs = load_epochs("tiny_train", db=db_url)
    assert sorted(epochs["epoch"]) == [1, 2, 3, 4, 5, 6]  # none lost, none duplicated


def test_tpe_with_two_workers_proposes_no_duplicates(db_url: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [*ABLATE, "run", str(STUDIES / "tpe_quick.py"), "--db", db_url, "--workers", "2",
         "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = load_trials("tpe_quick", db=db_url)
    assert len(trials) == 12 and (trials["status"] == "completed").all()
    assert trials["config_hash"].is_unique
    assert trials[["x", "lr"]].drop_duplicates().shape[0] == 12


def test_failed_trials_keep_their_error_and_retry_requeues(sqlite_url: str, tmp_path: Path) -> None:
    study_file = write_boom_study(tmp_path, [0, 1, 2])
    (outcome,) = run_study(study_file, db=sqlite_url, runs_dir=tmp_path / "runs")
    assert outcome.counts == {"completed": 2, "failed": 1}
    trials = load_trials("boom", db=sqlite_url)
    failed = trials[trials["status"] == "failed"].iloc[0]
    assert "RuntimeError: exploded on x=1" in failed["error"]
    cli = subprocess.run([*ABLATE, "status", "--study", "boom", "--db", sqlite_url], capture_output=True, text=True, check=False)
    assert "trial" in cli.stdout and "exploded on x=1" in cli.stdout
    retry = subprocess.run([*ABLATE, "retry", "--study", "boom", "--db", sqlite_url], capture_output=True, text=True, check=False)
    assert retry.returncode == 0 and "1 trial(s) re-queued" in retry.stdout
    assert set(load_trials("boom", db=sqlite_url)["status"]) == {"completed", "queued"}


def test_median_pruner_prunes_a_bad_trial(sqlite_url: str, tmp_path: Path) -> None:
    study_file = tmp_path / "prune.py"
    study_file.write_text(
        "from ablate import Study\n"
        "from ablate.train import EpochMetrics\n"
        "def curve(config, reporter):\n"
        "    q = config.extra['quality']\n"
        "    for epoch in range(1, 6):\n"
        "        reporter.report_epoch(EpochMetrics(epoch=epoch, train_loss=1.0, train_acc=q, val_loss=1.0,\n"
        "            val_acc=q * epoch / 5, val_top5=None, lr=0.1, seconds=0.0, images_per_s=0.0, peak_mem_mb=0.0))\n"
        "    return {'val_acc': q, 'epochs_run': 5}\n"
        "study = Study(name='prune', factors=dict(quality=[0.9, 0.8, 0.85, 0.95, 0.1]), train=curve, pruner='median')\n"
    )
    (outcome,) = run_study(study_file, db=sqlite_url, runs_dir=tmp_path / "runs")
    trials = load_trials("prune", db=sqlite_url).set_index("quality")
    assert trials.loc[0.1, "status"] == "pruned"
    assert (trials.drop(index=0.1)["status"] == "completed").all()
    assert outcome.counts == {"completed": 4, "pruned": 1}


def test_missing_data_stops_the_run_with_one_line(sqlite_url: str, tmp_path: Path) -> None:
    study_file = tmp_path / "nodata.py"
    study_file.write_text(
        "from ablate import Study\n"
        "study = Study(name='nodata', base=dict(dataset='imagefolder:/nonexistent/inat', num_classes=10,\n"
        "              model='cnn', epochs=1), factors=dict(lr=[0.1, 0.01]))\n"
    )
    proc = subprocess.run([*ABLATE, "run", str(study_file), "--db", sqlite_url, "--runs-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "/nonexistent/inat" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ablate.db").exists()  # refused before the study was registered


def test_wandb_offline_writes_a_run_directory(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    (outcome,) = run_study(STUDIES / "tiny_train.py", db=sqlite_url, runs_dir=tmp_path / "runs", wandb_project="ablate-test")
    assert outcome.summary.completed == 1
    run_dirs = list((tmp_path / "runs" / "tiny_train" / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1
    (log,) = run_dirs[0].glob("*.wandb")
    records = log.read_bytes()  # protobuf records: keys are stored as plain strings
    assert records.count(b"train_loss") >= 6  # one history row per epoch
    assert b"tiny_train" in records and b"completed" in records


SEED_STUDIES = sorted((ROOT / "studies").glob("*.py"))


@pytest.mark.parametrize("study_file", SEED_STUDIES, ids=[p.stem for p in SEED_STUDIES])
def test_smoke_runs_every_configuration_of_every_seed_study(study_file: Path, tmp_path: Path) -> None:
    from ablate.report import build_report
    from ablate.study import load_studies

    db = f"sqlite:///{tmp_path / 'smoke.db'}"
    outcomes = run_study(study_file, db=db, smoke=True, runs_dir=tmp_path / "runs")
    for study, o in zip(load_studies(study_file), outcomes, strict=True):
        assert o.study == study.name + "_smoke"
        assert o.counts == {"completed": o.planned}, o.counts
        if study.design in ("grid", "ofat"):  # one trial per configuration, first seed
            specs = study.validate()
            assert o.planned == len({s.config_hash for s in specs})
        trials = load_trials(o.study, db=db)
        assert set(trials["seed"]) == {study.seeds[0]}
        epochs = load_epochs(o.study, db=db)
        assert len(epochs) == len(trials)  # one short epoch each
        # and the report renders from the smoke results
        index = build_report(o.study, db=db, out=tmp_path / "reports" / o.study)
        assert index.is_file() and (index.parent / "table.csv").is_file()
        assert len(list(index.parent.glob("*.png"))) >= 2
    # checkpoints were written and then removed; the predictions for the report stay
    assert not list((tmp_path / "runs").rglob("*.pt"))
    assert list((tmp_path / "runs").rglob("predictions.npz"))


def test_budget_stops_claiming_when_the_next_trial_would_not_fit(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_TEST_LOG", str(tmp_path / "executions.log"))
    monkeypatch.setenv("ABLATE_TEST_SLEEP", "0.5")
    # 1.5 s of budget and trials of ~0.5 s: after the first trials the estimate says stop
    (outcome,) = run_study(STUDIES / "quick_grid.py", db=sqlite_url, budget_hours=1.5 / 3600,
                           runs_dir=tmp_path / "runs")
    assert outcome.summary.stopped_by.startswith("budget")
    assert 1 <= outcome.summary.completed <= 3
    assert outcome.counts["queued"] == 40 - outcome.summary.completed


def test_ctrl_c_hands_the_trial_back_for_an_immediate_resume(sqlite_url: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = subprocess.Popen(
        [*ABLATE, "run", str(STUDIES / "tiny_train.py"), "--db", sqlite_url, "--runs-dir", str(runs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for_epochs("tiny_train", sqlite_url, 1)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "went back to the queue" in err and "Traceback" not in err
    assert list(load_trials("tiny_train", db=sqlite_url)["status"]) == ["queued"]
    # no waiting for a lease: the next run resumes at once and finishes the trial
    again = subprocess.run([*ABLATE, "run", str(STUDIES / "tiny_train.py"), "--db", sqlite_url,
                            "--runs-dir", str(runs)], capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert "resuming trial 0" in again.stdout
    assert sorted(load_epochs("tiny_train", db=sqlite_url)["epoch"]) == [1, 2, 3, 4, 5, 6]


def test_status_shows_running_trials_with_their_worker_and_heartbeat(sqlite_url: str) -> None:
    from ablate import Study
    from ablate.store import ResultStore

    study = Study(name="live", factors=dict(image_size=[8, 16]))
    store = ResultStore(sqlite_url)
    store.register_study(study)
    store.add_trials(study, study.validate())
    store.claim_next_trial("live", worker="gpu-box-7", lease_s=60)
    out = subprocess.run([*ABLATE, "status", "--study", "live", "--db", sqlite_url],
                         capture_output=True, text=True, check=False).stdout
    assert "1 queued, 1 running" in out
    assert "gpu-box-7" in out and " s ago" in out
