"""The reporter contract of a study's own `train=`: epochs as dicts or EpochMetrics, artifacts,
a metric of its own as the study's metric (pruned on), and `--smoke` as the study says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ablate.errors import StudyError
from ablate.metrics import Metric
from ablate.run import plan_trials, run_study
from ablate.run._custom import CustomTrainError, run_custom_train
from ablate.store import load_artifacts, load_epochs, load_trials
from ablate.study import Study, load_studies
from ablate.trial import EpochMetrics

STUDY = '''
from ablate import Study
from ablate.metrics import Metric
from ablate.trial import EpochMetrics

def train(config, reporter):
    rate, epochs = config.extra["rate"], config.epochs
    # Epoch 1 as the metrics object, the others as plain dicts holding the study's own metric.
    reporter.report_epoch(EpochMetrics(epoch=1, train_loss=1.0, train_acc=0.5, val_loss=None, val_acc=None,
                                       val_top5=None, lr=0.1, seconds=0.0, images_per_s=0.0, peak_mem_mb=0.0))
    for epoch in range(2, epochs + 1):
        reporter.report_epoch({"epoch": epoch, "score": rate * epoch, "train_loss": 1.0 / epoch})
    weights = reporter.directory / "weights.txt"
    weights.write_text(f"rate {rate}")
    reporter.add_artifact("own_checkpoint", weights)
    return {"score": rate * epochs, "train_loss": 1.0 / epochs}

study = Study(
    name="contract",
    base=dict(epochs=4),
    factors=dict(rate=[0.2, 0.21, 0.22, 0.01]),  # the last falls behind: pruned by the median
    metric="score",
    metrics=[Metric("score", "own score", direction="maximize", low=0.0, high=1.0, objective=True)],
    pruner="median",
    smoke=dict(epochs=1),
    train=train,
)
'''


class Recorder:
    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []

    def report_epoch(self, m: Any) -> None:
        self.epochs.append(m.as_dict())


SCORE = Metric("score", "own score", direction="maximize", low=0.0, high=1.0, objective=True)


def test_a_train_function_reports_dicts_and_adds_artifacts(tmp_path: Path) -> None:
    def train(config: Any, reporter: Any) -> dict[str, Any]:
        reporter.report_epoch({"epoch": 1, "score": 0.5})
        path = reporter.directory / "ckpt.bin"
        path.write_bytes(b"x")
        reporter.add_artifact("own_checkpoint", path)
        return {"score": 0.5}

    done = run_custom_train(train, None, Recorder(), "score", directory=tmp_path / "t", declared=[SCORE])
    assert done.metrics == {"score": 0.5}
    assert done.artifacts == {"own_checkpoint": str((tmp_path / "t" / "ckpt.bin").resolve())}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("return {'score': 1.5}", "train() returned metric 'score' is 1.5, outside its declared range [0.0, 1.0]"),
        ("reporter.report_epoch({'epoch': 1, 'score': 'high'}); return {'score': 0.5}",
         "train() reported 'score' at epoch 1 is str 'high', not a number"),
        ("reporter.add_artifact('ckpt', '/nonexistent/file.pt'); return {'score': 0.5}",
         "train() added artifact 'ckpt' at /nonexistent/file.pt, which does not exist"),
        ("reporter.add_artifact('', '/tmp'); return {'score': 0.5}",
         "train() added an artifact named ''; a name is a string of 1 to 64 characters"),
    ],
    ids=["out-of-range", "not-a-number", "missing-file", "empty-name"],
)
def test_what_a_train_function_gets_wrong_fails_its_trial_with_one_line(body: str, expected: str) -> None:
    scope: dict[str, Any] = {}
    exec(f"def train(config, reporter):\n    {body}\n", scope)
    with pytest.raises(CustomTrainError) as e:
        run_custom_train(scope["train"], None, Recorder(), "score", declared=[SCORE])
    assert str(e.value) == expected


def test_epoch_metrics_and_dicts_reach_the_store_alike() -> None:
    rec = Recorder()
    m = EpochMetrics(epoch=1, train_loss=1.0, train_acc=0.5, val_loss=None, val_acc=None, val_top5=None,
                     lr=0.1, seconds=0.0, images_per_s=0.0, peak_mem_mb=0.0)

    def train(config: Any, reporter: Any) -> dict[str, Any]:
        reporter.report_epoch(m)
        reporter.report_epoch({"epoch": 2, "train_loss": 0.5, "score": 0.2})
        return {"score": 0.2}

    run_custom_train(train, None, rec, "score", declared=[SCORE])
    assert rec.epochs == [m.as_dict(), {"epoch": 2, "train_loss": 0.5, "score": 0.2}]


def _study(tmp_path: Path, text: str = STUDY) -> Study:
    path = tmp_path / "contract.py"
    path.write_text(text)
    return load_studies(path)[0]


def test_a_declared_metric_is_the_study_metric_with_its_direction(tmp_path: Path) -> None:
    study = _study(tmp_path)
    assert study.direction == "maximize"
    planned = plan_trials(study)
    assert len(planned.specs) == 4
    assert [m["name"] for m in study.definition()["metrics"]] == ["score"]
    assert study.definition()["metrics"][0]["direction"] == "maximize" and study.definition()["smoke"] == {"epochs": 1}
    smoke = plan_trials(study, smoke=True)
    assert smoke.study.name == "contract_smoke" and {s.config.epochs for s in smoke.specs} == {1}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    smoke=dict(epochs=1),\n", "",
         "--smoke runs a train= function as the study says: declare what it changes, e.g. Study(smoke=dict(epochs=1), ...)"),
        ('Metric("score"', 'Metric("val_acc"', "metrics declares 'val_acc', a built-in metric's name; name it differently"),
        ("objective=True)", "objective=False)", "metric 'score' is declared without objective=True"),
        ('metric="score"', 'metric="scor"', "metric 'scor'"),
        ("smoke=dict(epochs=1)", "smoke=[1]", "smoke must be a dict of the base fields --smoke changes"),
        ("    train=train,\n", "", "metrics= declares what a train= function reports"),
    ],
    ids=["smoke-undeclared", "builtin-name", "not-objective", "unknown-metric", "smoke-not-dict", "built-in-trainer"],
)
def test_bad_declarations_are_refused_at_plan(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in STUDY
    with pytest.raises(StudyError) as e:
        plan_trials(_study(tmp_path, STUDY.replace(old, new)), smoke=True)
    assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_a_train_study_reports_its_own_metric_is_pruned_on_it_and_runs_smoke(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "contract.py"
    path.write_text(STUDY)
    (outcome,) = run_study(path, db=db_url, runs_dir=tmp_path / "runs")
    assert outcome.counts == {"completed": 3, "pruned": 1}, outcome.counts
    trials = load_trials("contract", db=db_url)
    assert list(trials["status"]) == ["completed"] * 3 + ["pruned"]
    done = trials[trials["status"] == "completed"]
    assert [m["score"] for m in done["extra_metrics"]] == pytest.approx([0.8, 0.84, 0.88])
    epochs = load_epochs("contract", db=db_url)
    first = epochs[epochs["number"] == 0].sort_values("epoch")
    assert list(first["epoch"]) == [1, 2, 3, 4] and first["train_loss"].iloc[0] == 1.0  # the EpochMetrics
    assert [e["score"] for e in first["extra"].iloc[1:]] == pytest.approx([0.4, 0.6, 0.8])
    artifacts = load_artifacts("contract", db=db_url)
    kept = artifacts[artifacts["kind"] == "own_checkpoint"]
    assert len(kept) == 3 and all(Path(p).read_text().startswith("rate ") for p in kept["path"])
    (smoke,) = run_study(path, db=db_url, runs_dir=tmp_path / "runs", smoke=True)
    assert smoke.study == "contract_smoke" and smoke.counts == {"completed": 4}
    assert set(load_epochs("contract_smoke", db=db_url)["epoch"]) == {1}
    assert not pd.isna(load_trials("contract_smoke", db=db_url)["extra_metrics"]).any()


@pytest.mark.slow
def test_tpe_runs_on_a_declared_metric_of_a_train_function(sqlite_url: str, tmp_path: Path) -> None:
    text = STUDY.replace("factors=dict(rate=[0.2, 0.21, 0.22, 0.01]),", "factors=dict(rate=uniform(0.0, 0.25)),")
    text = text.replace('pruner="median",', 'design="tpe", n_trials=4,').replace(
        "from ablate import Study", "from ablate import Study, uniform")
    path = tmp_path / "contract.py"
    path.write_text(text)
    (outcome,) = run_study(path, db=sqlite_url, runs_dir=tmp_path / "runs")
    assert outcome.counts == {"completed": 4}
    trials = load_trials("contract", db=sqlite_url)
    for _, t in trials.iterrows():  # the sampler read each trial's own metric back
        assert t["extra_metrics"]["score"] == pytest.approx(t["rate"] * 4)
