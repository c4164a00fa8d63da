"""warm_start: a trial begins from another trial's checkpoint with a recipe of its own.

One source study (a tiny CNN, two epochs on digits) is trained once for the module; the tests
warm-start from it through the real CLI and workers, and check what loads, what is refused at
plan time, what is recorded, and that an interrupted warm-started trial resumes from its own
checkpoint.
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ablate.cli import app
from ablate.run import run_study
from ablate.store import ResultStore, load_environments, load_epochs, load_trials
from ablate.study import load_studies, make_config
from ablate.train import train_trial

from .invariants import check_completed_trials
from .processes import ABLATE, clean_env, wait_for_epochs

pytestmark = pytest.mark.slow  # every test here trains

BASE = dict(dataset="digits", image_size=8, model="cnn", cnn_blocks=2, cnn_filters=8, cnn_dense=32,
            batch_size=32, augment="none", device="cpu", scheduler="none", num_workers=0,
            prediction_samples=0)  # fmt: skip


@dataclass(frozen=True)
class Source:
    folder: Path
    db: str
    runs: Path
    trial_id: int
    val_acc: float
    best: Path


def _study_file(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(f"from ablate import Study\nBASE = {BASE!r}\n{text}\n")
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    folder = tmp_path_factory.mktemp("warm_source")
    db, runs = f"sqlite:///{folder / 'ablate.db'}", folder / "runs"
    path = _study_file(folder, "ws_source", "study = Study(name='ws_source', base=dict(BASE, epochs=2, lr=0.05), seeds=[0])")
    (outcome,) = run_study(path, db=db, runs_dir=runs)
    assert outcome.counts == {"completed": 1}
    trial = load_trials("ws_source", db=db).iloc[0]
    (best,) = runs.glob("ws_source/trial-0000-*/best.pt")
    return Source(folder, db, runs, int(trial["trial_id"]), float(trial["val_acc"]), best)


def _plan(path: Path, source: Source, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["plan", str(path), "--db", source.db, "--runs-dir", str(source.runs), *extra])
    return result.exit_code, result.output


def _refused(path: Path, source: Source, *extra: str) -> str:
    code, output = _plan(path, source, *extra)
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in output, output
    assert lines[0].startswith("error: ") and path.name in lines[0]
    return lines[0]


def test_a_warm_started_trial_continues_where_its_source_stopped_with_its_own_lr(source: Source, tmp_path: Path) -> None:
    path = _study_file(tmp_path, "ws_next",
                       "study = Study(name='ws_next', base=dict(BASE, epochs=1, lr=0.01), "
                       "factors=dict(warm_start=[None, 'ws_source:0']), seeds=[0])")  # fmt: skip
    code, output = _plan(path, source)
    assert code == 0, output
    assert f"warm start ws_source:0: trial 0 of ws_source (version 1, trial id {source.trial_id}), best.pt of epoch 2" in " ".join(output.split())
    (outcome,) = run_study(path, db=source.db, runs_dir=source.runs)
    assert outcome.counts == {"completed": 2}
    trials = load_trials("ws_next", db=source.db).set_index("number")
    epochs = load_epochs("ws_next", db=source.db).set_index("number")
    fresh, warm = epochs.loc[0], epochs.loc[1]
    # the first epoch starts from the source's weights: near its final accuracy, far above a fresh start
    assert warm["val_acc"] >= source.val_acc - 0.03, (warm["val_acc"], source.val_acc)
    assert warm["val_acc"] - fresh["val_acc"] >= 0.15, (warm["val_acc"], fresh["val_acc"])
    assert warm["lr"] == pytest.approx(0.01)  # its own learning rate, not the source's 0.05
    # recorded as such: the field in the config, the source in the trial's environment row
    assert trials.loc[1, "config"]["warm_start"] == "ws_source:0"
    assert trials.loc[1, "config"]["warm_start_from"] == "best"
    envs = load_environments("ws_next", db=source.db).set_index("number")
    recorded = envs.loc[1, "extra"]["warm_start"]
    assert recorded == {
        "reference": "ws_source:0", "study": "ws_source", "study_version": 1, "number": 0,
        "trial_id": source.trial_id, "checkpoint": "best", "epoch": 2, "path": str(source.best.resolve()),
    }  # fmt: skip
    assert "warm_start" not in (envs.loc[0, "extra"] or {})
    (kept,) = source.runs.glob("ws_next/trial-0001-*/warm_start.json")
    assert json.loads(kept.read_text()) == recorded
    # and the report's provenance block names it
    from ablate.report._provenance import collect_provenance, provenance_lines

    block = collect_provenance(load_trials("ws_next", db=source.db), load_environments("ws_next", db=source.db))
    assert block is not None
    assert (f"Warm-started from: ws_source:0 (trial id {source.trial_id}, best checkpoint of epoch 2) "
            "(1 trial).") in provenance_lines(block)


def test_the_weights_at_the_start_are_the_source_checkpoints(source: Source, tmp_path: Path) -> None:
    # An lr so small that one epoch leaves every weight where it started (to 1e-6).
    recipe = dict(BASE, epochs=1, lr=1e-9, momentum=0.0, weight_decay=0.0)
    warm = make_config(dict(recipe, warm_start="ws_source:0"), where="test")
    train_trial(warm, checkpoint_dir=tmp_path / "warm", warm_start=source.best)
    fresh = make_config(recipe, where="test")
    train_trial(fresh, checkpoint_dir=tmp_path / "fresh")
    start = torch.load(source.best, weights_only=True)["model"]
    params = [k for k in start if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(params) >= 6
    after = torch.load(tmp_path / "warm" / "last.pt", weights_only=True)["model"]
    for k in params:
        torch.testing.assert_close(after[k], start[k], atol=1e-6, rtol=0)
    other = torch.load(tmp_path / "fresh" / "last.pt", weights_only=True)["model"]
    assert all(not torch.allclose(other[k], start[k], atol=1e-3) for k in params if other[k].numel() > 1)


def test_warm_start_from_last_loads_the_last_checkpoint(source: Source, tmp_path: Path) -> None:
    path = _study_file(tmp_path, "ws_last",
                       "study = Study(name='ws_last', base=dict(BASE, epochs=1, warm_start='ws_source:0', "
                       "warm_start_from='last'), factors=dict(lr=[0.01]), seeds=[0])")  # fmt: skip
    code, output = _plan(path, source)
    assert code == 0 and "last.pt of epoch 2" in " ".join(output.split()), output


def test_plan_refuses_a_source_that_is_not_there_or_does_not_fit(source: Source, tmp_path: Path) -> None:
    store = ResultStore(source.db)
    (queued,) = load_studies(_study_file(tmp_path, "ws_queued", "study = Study(name='ws_queued', base=dict(BASE, epochs=1), seeds=[0])"))
    store.register_study(queued)
    store.add_trials(queued, queued.validate())
    store.close()

    def study(name: str, **base: object) -> Path:
        return _study_file(tmp_path, name, f"study = Study(name={name!r}, base=dict(BASE, epochs=1, **{base!r}), "
                                           "factors=dict(lr=[0.01]), seeds=[0])")  # fmt: skip

    assert "no study named 'nope'" in _refused(study("ws_a", warm_start="nope:0"), source)
    assert "study 'ws_source' has no trial 7" in _refused(study("ws_b", warm_start="ws_source:7"), source)
    assert "expected 'STUDY:NUMBER'" in _refused(study("ws_c", warm_start="ws_source"), source)
    line = _refused(study("ws_d", warm_start="ws_queued:0"), source)
    assert "that trial is queued, not finished: run study 'ws_queued' first" in line
    line = _refused(study("ws_e", warm_start="ws_source:0", cnn_filters=16), source)
    assert "'block1.conv.weight' is [8, 1, 3, 3] in the checkpoint, [16, 1, 3, 3] in this model" in line
    assert "cnn_filters 8 there, 16 here" in line
    line = _refused(study("ws_f", warm_start="ws_source:0", dataset="synthetic", num_classes=4), source)
    assert "that trial has 10 classes (digits), this one 4 (synthetic)" in line
    other = _study_file(tmp_path, "ws_j", "study = Study(name='ws_j', base=dict(dataset='digits', model='tv:resnet18', "
                        "device='cpu', epochs=1, warm_start='ws_source:0'), factors=dict(lr=[0.01]), seeds=[0])")
    assert "that trial trained model 'cnn', this one 'tv:resnet18'" in _refused(other, source)
    assert "'pretrained' are both set" in _refused(study("ws_g", warm_start="ws_source:0", pretrained=True), source)
    # the checkpoint file gone (moved away for this check)
    last = source.best.with_name("last.pt")
    last.rename(last.with_name("moved.pt"))
    try:
        line = _refused(study("ws_h", warm_start="ws_source:0", warm_start_from="last"), source)
    finally:
        last.with_name("moved.pt").rename(last)
    assert "that trial's last.pt is neither at its recorded path nor under" in line
    # ... and `ablate run` refuses the same, before writing anything
    result = CliRunner().invoke(app, ["run", str(study("ws_i", warm_start="ws_source:7")), "--db", source.db,
                                      "--runs-dir", str(source.runs)])
    assert result.exit_code == 2 and "has no trial 7" in result.output, result.output
    assert "ws_i" not in {s["name"] for s in ResultStore(source.db, read_only=True).study_summaries()}


def test_two_stages_in_one_file_run_in_order_and_smoke_runs_without_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _study_file(tmp_path, "stages",
                       "first = Study(name='stage_one', base=dict(BASE, epochs=1, lr=0.05), seeds=[0])\n"
                       "second = Study(name='stage_two', base=dict(BASE, epochs=1, warm_start='stage_one:0'), "
                       "factors=dict(lr=[0.01]), seeds=[0])")  # fmt: skip
    # planned without any database (no ./ablate.db here): the source is the file's own first study
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABLATE_DB", raising=False)
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 0, result.output
    assert "trial 0 of study stage_one, which this file runs first" in " ".join(result.output.split())
    wrong = _study_file(tmp_path, "wrong",
                        "first = Study(name='stage_one', base=dict(BASE, epochs=1, cnn_dense=16), seeds=[0])\n"
                        "second = Study(name='stage_two', base=dict(BASE, epochs=1, warm_start='stage_one:0'), "
                        "factors=dict(lr=[0.01]), seeds=[0])")  # fmt: skip
    result = CliRunner().invoke(app, ["plan", str(wrong)])
    assert result.exit_code == 2 and "in that trial's model" in result.output and "cnn_dense 16 there, 32 here" in result.output, result.output
    db = f"sqlite:///{tmp_path / 'ablate.db'}"
    one, two = run_study(path, db=db, runs_dir=tmp_path / "runs")
    assert one.counts == two.counts == {"completed": 1}
    (env,) = load_environments("stage_two", db=db)["extra"]
    assert env["warm_start"]["study"] == "stage_one" and env["warm_start"]["checkpoint"] == "best"
    # --smoke into a database without the source: a line, and the smoke trial starts from random weights
    smoke_db = f"sqlite:///{tmp_path / 'smoke.db'}"
    one, two = run_study(path, db=smoke_db, runs_dir=tmp_path / "smoke_runs", smoke=True)
    assert two.study == "stage_two_smoke" and two.counts == {"completed": 1}
    assert "warm_start" not in load_environments("stage_two_smoke", db=smoke_db)["extra"][0]
    # --smoke with the source in the database loads it (same shapes on synthetic data)
    _, two = run_study(path, db=db, runs_dir=tmp_path / "runs", smoke=True)
    assert two.counts == {"completed": 1}
    (env,) = load_environments("stage_two_smoke", db=db)["extra"]
    assert env["warm_start"]["trial_id"] == int(load_trials("stage_one", db=db)["trial_id"][0])


def test_an_interrupted_warm_started_trial_resumes_from_its_own_checkpoint(source: Source, tmp_path: Path) -> None:
    path = _study_file(tmp_path, "ws_long",
                       "study = Study(name='ws_long', base=dict(BASE, epochs=12, lr=0.01, warm_start='ws_source:0'), "
                       "factors=dict(lr=[0.01]), seeds=[0])")  # fmt: skip
    db, runs = f"sqlite:///{tmp_path / 'ablate.db'}", tmp_path / "runs"
    # the source lives in this test's own database and runs folder: it is deleted below
    src = _study_file(tmp_path, "ws_source", "study = Study(name='ws_source', base=dict(BASE, epochs=2, lr=0.05), seeds=[0])")
    run_study(src, db=db, runs_dir=runs)
    cmd = [*ABLATE, "run", str(path), "--db", db, "--runs-dir", str(runs)]
    first = subprocess.Popen(cmd, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_epochs("ws_long", db, 2)
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 143, out + err
    done = len(load_epochs("ws_long", db=db))
    assert 2 <= done < 12, "the trial finished before it could be interrupted"
    # the source's checkpoints are gone: a resume that went back to them would fail
    for f in runs.glob("ws_source/*/*.pt"):
        f.unlink()
    # (`ablate run` would now refuse the study's unstarted trials; its worker resumes this one)
    worker = [*ABLATE, "worker", "--study", "ws_long", "--db", db, "--runs-dir", str(runs)]
    again = subprocess.run(worker, env=clean_env(), capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming trial 0" in again.stdout
    trials = check_completed_trials("ws_long", db)
    assert int(trials["epochs_run"][0]) == 12
    (env,) = load_environments("ws_long", db=db)["extra"]
    assert env["warm_start"]["study"] == "ws_source" and env["warm_start"]["epoch"] == 2
