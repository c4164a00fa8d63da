"""The trial contract (ablate.trial): importable without torch, and what a reporter is handed."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from typing import Any

import pytest

from ablate.metrics import metric_names
from ablate.run._custom import CustomTrainError, run_custom_train
from ablate.trial import EpochMetrics, Reporter, TrainResult, TrialPruned, epoch_values


@pytest.mark.slow  # starts an interpreter
def test_importing_the_contract_imports_no_torch_nor_the_trainer() -> None:
    code = (
        "import sys, ablate.trial; "
        "loaded = [m for m in ('torch', 'numpy', 'ablate.data', 'ablate.train', 'ablate.store') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_trainer_package_hands_out_the_same_classes() -> None:
    import ablate.train

    assert (ablate.train.EpochMetrics, ablate.train.TrainResult, ablate.train.TrialPruned) == (
        EpochMetrics, TrainResult, TrialPruned,
    )  # fmt: skip


def epoch(n: int = 1, **changes: Any) -> EpochMetrics:
    m = EpochMetrics(epoch=n, train_loss=1.0, train_acc=0.5, val_loss=1.1, val_acc=0.4, val_top5=None,
                     lr=0.1, seconds=2.0, images_per_s=100.0, peak_mem_mb=50.0, group_lrs={"head": 0.1})  # fmt: skip
    return dataclasses.replace(m, **changes)


def test_an_epoch_is_an_epochmetrics_or_a_dict() -> None:
    m = epoch(3)
    assert epoch_values(m) == m.as_dict() and m.as_dict()["group_lrs"] == {"head": 0.1}
    assert set(m.as_dict()) == {"epoch", "group_lrs", *metric_names(per_epoch=True, column=True)}
    assert epoch_values({"epoch": 2, "auc": 0.9}) == {"epoch": 2, "auc": 0.9}
    with pytest.raises(TypeError, match="an EpochMetrics or a dict, not list"):
        epoch_values([1, 0.5])  # type: ignore[arg-type]


def result(**changes: Any) -> TrainResult:
    r = TrainResult(
        status="completed", stop_reason="completed", error=None, train_loss=0.9, train_acc=0.6, val_loss=1.0,
        val_acc=0.55, val_top5=None, best_val_acc=0.57, best_epoch=2, best_metric=0.57, test_acc=0.5,
        test_loss=1.2, epochs_run=3, duration_s=12.0, images_per_s=300.0, peak_mem_mb=80.0, n_params=1000,
        n_trainable_params=10, startup_s=0.5, history=[epoch(1)],
        data={"splits": {"train": {"n": 40}, "val": {"n": 10}}},
    )  # fmt: skip
    return dataclasses.replace(r, **changes)


def test_a_result_gives_the_store_each_final_metric_of_the_table() -> None:
    metrics = result().metrics_dict()
    held = {f.name for f in dataclasses.fields(TrainResult)}
    assert set(metrics) == {m for m in metric_names(per_trial=True) if m in held} | {
        "n_train", "n_val", "n_test", "data"
    }  # fmt: skip
    assert {"best_metric", "startup_s", "stop_reason"} <= set(metrics)  # extra_metrics and its column
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (40, 10, None)
    assert metrics["val_acc"] == 0.55 and metrics["n_params"] == 1000 and metrics["stop_reason"] == "completed"
    diverged = result(train_loss=math.nan, val_loss=math.inf, data={}).metrics_dict()
    assert diverged["train_loss"] is None and diverged["val_loss"] is None and diverged["data"] is None


class Recorder:
    """A reporter as the worker's: it reads ``as_dict()`` and may prune."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.seen: list[dict[str, Any]] = []
        self.prune_at = prune_at

    def report_epoch(self, m: Any) -> None:
        values = m.as_dict()
        self.seen.append(values)
        if values["epoch"] == self.prune_at:
            raise TrialPruned(f"pruned at epoch {self.prune_at}")


def test_a_custom_loop_reports_dicts_or_epochmetrics_and_can_be_pruned() -> None:
    recorder = Recorder(prune_at=3)
    assert isinstance(recorder, Reporter)

    def train(config: Any, reporter: Reporter) -> dict[str, Any]:
        assert isinstance(reporter, Reporter)
        reporter.report_epoch({"epoch": 1, "val_acc": 0.5, "auc": 0.75})
        reporter.report_epoch(epoch(2))
        return {"val_acc": 0.6}

    assert run_custom_train(train, None, recorder, "val_acc").metrics == {"val_acc": 0.6}
    assert recorder.seen == [{"epoch": 1, "val_acc": 0.5, "auc": 0.75}, epoch(2).as_dict()]

    def pruned(config: Any, reporter: Reporter) -> dict[str, Any]:
        for n in (1, 2, 3, 4):
            reporter.report_epoch({"epoch": n, "val_acc": n / 10})
        return {"val_acc": 0.4}

    with pytest.raises(TrialPruned, match="pruned at epoch 3"):
        run_custom_train(pruned, None, Recorder(prune_at=3), "val_acc")


@pytest.mark.parametrize(
    ("reported", "message"),
    [
        ([1, 0.5], "train() reported list [1, 0.5] as an epoch; report a dict or an EpochMetrics"),
        ({"val_acc": 0.5}, "train() reported an epoch numbered None; epochs are integers >= 1"),
        ({"epoch": 1, "best_epoch": 1.5}, "train() reported 'best_epoch' at epoch 1 is 1.5, not a whole number"),
    ],
)
def test_a_bad_report_fails_with_one_line(reported: Any, message: str) -> None:
    def train(config: Any, reporter: Reporter) -> dict[str, Any]:
        reporter.report_epoch(reported)
        return {"val_acc": 0.5}

    with pytest.raises(CustomTrainError) as e:
        run_custom_train(train, None, Recorder(), "val_acc")
    assert str(e.value) == message.replace("train()", f"{train.__qualname__}()")
