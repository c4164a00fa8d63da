"""A study's own metrics: declared by evaluations, refused at plan time when wrong, used as the
TPE objective and by the pruner, stored in the study view as typed columns, in the report, and
a bad value failing only its trial."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from ablate.cli import app
from ablate.errors import StudyError
from ablate.metrics import Evaluation, Metric, evaluation
from ablate.run import plan_trials, run_study
from ablate.store import load_epochs, load_trials
from ablate.study import Study, load_studies

HERE = Path(__file__).parent
OWN_METRIC = HERE / "studies" / "own_metric.py"
BASE: dict[str, Any] = dict(
    dataset="synthetic", num_classes=4, synthetic_samples=64, image_size=8, model="cnn", cnn_blocks=1,
    cnn_filters=4, cnn_dense=8, epochs=2, batch_size=32, augment="none", device="cpu",
)


def _conf(model: Any, split: Any) -> dict[str, float]:
    return {"val_conf": 0.5}


CONF = Metric("val_conf", direction="maximize", low=0.0, high=1.0)


def _study(**overrides: Any) -> Study:
    values: dict[str, Any] = dict(name="own", base=BASE, factors=dict(lr=[0.1, 0.05]), metric="val_conf",
                                  evaluations=[Evaluation(_conf, [CONF])])
    values.update(overrides)
    return Study(**values)


# ---------------------------------------------------------------------------- plan time
def test_a_declared_metric_is_the_study_metric_and_takes_its_direction() -> None:
    minimized = Metric("val_err", direction="minimize", low=0.0, high=1.0)
    study = _study(metric="val_err", evaluations=[Evaluation(lambda m, s: {"val_err": 0.1}, [minimized])])
    assert study.direction == "minimize"
    assert len(plan_trials(study, missing_data_ok=True).specs) == 2
    assert [m["name"] for m in study.definition()["metrics"]] == ["val_err", "test_err"]


def test_the_decorator_form_declares_the_same_evaluation() -> None:
    @evaluation(CONF, on_test=False)
    def conf(model: Any, split: Any) -> dict[str, float]:
        return {"val_conf": 0.5}

    assert isinstance(conf, Evaluation) and conf.name == "conf" and conf.metrics == (CONF,)
    assert [m.name for m in conf.declared()] == ["val_conf"]
    plan_trials(_study(evaluations=[conf]), missing_data_ok=True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(evaluations=[Evaluation(_conf, [Metric("val_acc", direction="maximize", low=0, high=1)])], metric="val_acc"),
         "metric 'val_acc' collides with the built-in column 'val_acc'"),
        (dict(evaluations=[Evaluation(_conf, [Metric("val_loss", direction="minimize", low=0)])], metric="val_acc"),
         "collides with the built-in column 'val_loss'"),
        (dict(evaluations=[Evaluation(_conf, [Metric("val_status", direction="maximize")])], metric="val_acc"),
         None),
        (dict(evaluations=[Evaluation(_conf, [Metric("auc", direction="maximize", low=0, high=1)])], metric="val_acc"),
         "metric name 'auc': an evaluation's metric is named val_<name>"),
        (dict(evaluations=[Evaluation(_conf, [Metric("val_x", direction=None)])], metric="val_acc"),
         "metric 'val_x' has direction None; allowed: maximize, minimize"),
        (dict(evaluations=[Evaluation(_conf, [Metric("val_x", direction="maximize", low=1, high=0)])], metric="val_acc"),
         r"range \[1, 0\] is empty"),
        (dict(metric="val_auc"), "metric 'val_auc'; did you mean .*; allowed: .*val_conf, test_conf"),
        (dict(evaluations=[_conf]), "evaluations holds <function _conf"),
        (dict(evaluations=[Evaluation(_conf, [CONF]), Evaluation(_conf, [CONF], name="again")]),
         "metric 'val_conf' is declared by evaluations '_conf' and 'again'"),
        (dict(factors=dict(val_conf=[1, 2]), base={**BASE, "extra": {}}), "metric 'val_conf' is also a factor"),
        (dict(train=lambda config, reporter: {"val_conf": 1.0}, base={}, factors=dict(x=[1, 2])),
         "evaluations run in the built-in trainer"),
    ],
)
def test_bad_declarations_are_one_line_at_plan_time(overrides: dict[str, Any], message: str | None) -> None:
    study = _study(**overrides)
    if message is None:  # a name of the view's own columns only when prefixed: allowed
        plan_trials(study, missing_data_ok=True)
        return
    with pytest.raises(StudyError, match=message) as e:
        plan_trials(study, missing_data_ok=True)
    assert "\n" not in str(e.value)


def test_a_bad_direction_in_a_study_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text(
        "from ablate import Evaluation, Metric, Study\n"
        "bad = Evaluation(lambda m, s: {}, [Metric('val_x', direction='up')])\n"
        "study = Study(name='bad', evaluations=[bad], metric='val_x')\n"
    )
    with pytest.raises(StudyError, match=r"bad.py:2: ValueError: metric 'val_x': direction 'up'; allowed: maximize, minimize"):
        load_studies(path)


def test_a_missing_pairs_file_is_one_line_at_plan_time(tmp_path: Path) -> None:
    from PIL import Image

    from ablate.train import verification

    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / "faces" / split / cls).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (8, 8), (40 * i, 80, 120)).save(tmp_path / "faces" / split / cls / f"{i}.png")
    study = _study(base={**BASE, "dataset": f"imagefolder:{tmp_path / 'faces'}", "num_classes": 2,
                         "val_split": "val", "test_split": None},
                   metric="val_auc", evaluations=[verification(pairs="verification/pairs_val.txt")])
    with pytest.raises(StudyError, match=r"evaluation 'verification': verification pairs file .*pairs_val.txt not found") as e:
        plan_trials(study)
    assert "\n" not in str(e.value)
    assert any("pairs_val.txt not found" in line for line in plan_trials(study, missing_data_ok=True).data)
    plan_trials(study, smoke=True)  # --smoke verifies generated faces: no pairs file needed


# ---------------------------------------------------------------------------- run time
@pytest.mark.slow
def test_own_metric_drives_tpe_and_the_pruner_and_is_a_typed_view_column(db_url: str, tmp_path: Path) -> None:
    (outcome,) = run_study(OWN_METRIC, db=db_url, runs_dir=tmp_path / "runs")
    assert outcome.summary.ran == 5
    trials = load_trials("own_metric", db=db_url)
    done = trials[trials["status"] == "completed"]
    assert trials["val_conf"].dtype == "float64" and done["val_conf"].between(0, 1).all()
    assert done["test_conf"].notna().all()
    # The pruner compared epochs on val_conf (the only per-epoch series it could read it from).
    assert (trials["status"] == "pruned").any(), trials[["status", "val_conf"]]
    epochs = load_epochs("own_metric", db=db_url)
    assert epochs["val_conf"].notna().all()
    # TPE proposed from the stored val_conf values: every trial after the first is a new point.
    assert trials["lr"].nunique() == 5
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT trial_id, val_conf, test_conf FROM study_own_metric WHERE status = 'completed' ORDER BY trial_id"
            )).all()
            if engine.dialect.name == "sqlite":
                kinds = {r[0] for r in conn.execute(text(
                    "SELECT typeof(val_conf) FROM study_own_metric WHERE status = 'completed'"))}
                assert kinds == {"real"}
            else:
                kinds = dict(conn.execute(text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'study_own_metric' AND column_name IN ('val_conf', 'test_conf') "
                    "AND table_schema = current_schema()")).all())
                assert kinds == {"val_conf": "double precision", "test_conf": "double precision"}
            best = conn.execute(text("SELECT MAX(val_conf) FROM study_own_metric")).scalar()
    finally:
        engine.dispose()
    assert [r[1] for r in rows] == pytest.approx(list(done.sort_values("trial_id")["val_conf"]))
    assert best == pytest.approx(done["val_conf"].max())

    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", "--study", "own_metric", "--db", db_url, "--out", str(out),
                                      "--metric", "val_conf"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "val true-class probability" in (out / "table.md").read_text()
    bad = CliRunner().invoke(app, ["report", "--study", "own_metric", "--db", db_url, "--out", str(tmp_path / "r2"),
                                   "--metric", "val_nope"])
    assert bad.exit_code != 0 and "allowed: " in bad.output and "val_conf" in bad.output


BAD_VALUES = '''
from ablate import Evaluation, Metric, Study

def score(model, split):
    lr = split.config.lr
    if lr == 0.05:
        raise RuntimeError("boom")
    return {"val_score": {0.01: 0.5, 0.02: float("nan"), 0.03: "high", 0.04: 7.0}[lr]}

study = Study(
    name="bad_values",
    base=BASE,
    factors=dict(lr=[0.01, 0.02, 0.03, 0.04, 0.05]),
    metric="val_score",
    evaluations=[Evaluation(score, [Metric("val_score", direction="maximize", low=0, high=1)])],
)
'''


@pytest.mark.slow
def test_a_bad_value_fails_its_trial_with_the_reason_and_the_study_goes_on(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad_values.py"
    path.write_text(BAD_VALUES.replace("BASE", repr(BASE)))
    (outcome,) = run_study(path, db=sqlite_url, runs_dir=tmp_path / "runs")
    assert outcome.summary.ran == 5
    trials = load_trials("bad_values", db=sqlite_url).set_index("lr")
    assert trials.loc[0.01, "status"] == "completed" and trials.loc[0.01, "val_score"] == 0.5
    where = "evaluation 'score' on the val split at epoch 1"
    errors = {lr: str(trials.loc[lr, "error"]).splitlines()[0] for lr in (0.02, 0.03, 0.04, 0.05)}
    assert errors == {
        0.02: f"{where}: val_score is nan, not a finite number",
        0.03: f"{where}: val_score is 'high' (str), not a number",
        0.04: f"{where}: val_score is 7, outside its declared range [0, 1]",
        0.05: f"{where} raised RuntimeError: boom",
    }
    assert (trials.loc[[0.02, 0.03, 0.04, 0.05], "status"] == "failed").all()
    assert all(math.isnan(v) for v in trials.loc[[0.02, 0.03], "val_score"])


@pytest.mark.slow
def test_workers_in_other_processes_run_evaluations_from_the_study_file(sqlite_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "ablate", "run", str(OWN_METRIC), "--db", sqlite_url, "--workers", "2",
         "--runs-dir", str(tmp_path / "runs")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = load_trials("own_metric", db=sqlite_url)
    done = trials[trials["status"] == "completed"]
    assert len(trials) == 5 and len(done) >= 2 and done["val_conf"].between(0, 1).all()
    # A worker without the study file cannot run the evaluations: it says so, in one line.
    alone = CliRunner().invoke(app, ["worker", "--study", "own_metric", "--db", sqlite_url])
    assert alone.exit_code == 2
    assert "uses Python code (train=, models=, constraints or evaluations); give its study file" in alone.output


@pytest.mark.slow
def test_early_stopping_and_the_plateau_schedule_watch_the_own_metric(tmp_path: Path) -> None:
    from ablate.study import make_config
    from ablate.train import train_trial

    scores = iter([0.2, 0.6, 0.5, 0.4, 0.9, 0.9])

    def falling(model: Any, split: Any) -> dict[str, float]:
        return {"val_conf": next(scores)}

    config = make_config({**BASE, "epochs": 6, "early_stopping": 2, "scheduler": "plateau",
                          "plateau_patience": 0, "plateau_factor": 0.5, "lr": 0.1}, where="test")
    result = train_trial(config, metric="val_conf", direction="maximize", checkpoint_dir=tmp_path,
                         evaluations=[Evaluation(falling, [CONF], on_test=False)])
    # Best at epoch 2 (0.6), then two epochs without improvement: stopped after epoch 4.
    assert (result.stop_reason, result.epochs_run, result.best_epoch) == ("early_stopped", 4, 2)
    assert result.best_metric == 0.6 and result.metrics_dict()["val_conf"] == 0.4
    # Halved after epoch 3, the first that did not improve (an epoch shows the rate it trained at).
    assert [m.lr for m in result.history] == pytest.approx([0.1, 0.1, 0.1, 0.05])


@pytest.mark.slow
def test_a_resumed_trial_keeps_the_own_metric_of_its_epochs(tmp_path: Path) -> None:
    from ablate.study import make_config
    from ablate.train import train_trial

    def by_epoch(model: Any, split: Any) -> dict[str, float]:
        return {"val_conf": 0.1 * len(calls.append(1) or calls)}

    calls: list[int] = []
    config = make_config({**BASE, "test_split": "test"}, where="test")
    kwargs: dict[str, Any] = dict(metric="val_conf", checkpoint_dir=tmp_path, evaluations=[Evaluation(by_epoch, [CONF])])
    first = train_trial(config, **kwargs)
    again = train_trial(config, **kwargs)  # everything was checkpointed: only the test split is evaluated again
    assert [m.evaluated for m in again.history] == [m.evaluated for m in first.history] == [
        {"val_conf": pytest.approx(0.1)}, {"val_conf": pytest.approx(0.2)}]
    assert len(calls) == 4 and again.metrics_dict()["val_conf"] == pytest.approx(0.2)
    assert again.metrics_dict()["test_conf"] == pytest.approx(0.4)
