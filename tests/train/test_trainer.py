"""train_trial end to end on CPU: learning, determinism, exact resume, stopping rules, artifacts."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ablate.errors import StudyError
from ablate.study import make_config
from ablate.train import (
    EpochMetrics,
    TrainResult,
    TrialPruned,
    environment,
    smoke_config,
    train_trial,
)

from .helpers import comparable, tiny


class Recorder:
    """A reporter that keeps what it is given and can prune at a chosen epoch."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.epochs: list[EpochMetrics] = []
        self.batches: list[tuple[int, int, int, float | None]] = []
        self.prune_at = prune_at

    def report_epoch(self, m: EpochMetrics) -> None:
        self.epochs.append(m)
        if m.epoch == self.prune_at:
            raise TrialPruned()

    def on_batch(self, epoch: int, batch: int, n_batches: int, loss: float | None) -> None:
        self.batches.append((epoch, batch, n_batches, loss))


@pytest.mark.slow
def test_learns_synthetic_data_well_above_chance(tmp_path: Path) -> None:
    rec = Recorder()
    result = train_trial(tiny(synthetic_samples=128, epochs=4), reporter=rec, checkpoint_dir=tmp_path)
    assert result.status == "completed" and result.stop_reason == "completed" and result.error is None
    assert result.val_acc is not None and result.val_acc > 0.6  # chance is 0.25
    assert result.test_acc is not None and result.test_acc > 0.6
    assert [m.epoch for m in rec.epochs] == [1, 2, 3, 4] and result.epochs_run == 4
    assert rec.epochs[-1].train_loss < rec.epochs[0].train_loss
    assert result.best_val_acc == max(m.val_acc for m in rec.epochs)
    assert result.best_metric == result.best_val_acc
    assert rec.epochs[result.best_epoch - 1].val_acc == result.best_val_acc  # type: ignore[operator]
    assert result.val_top5 is None and result.images_per_s and result.images_per_s > 0
    # Start-up is apart from the training time, which counts from the end of the first step.
    assert result.startup_s is not None and result.startup_s > 0 and result.duration_s > 0


@pytest.mark.slow
def test_metrics_dict_holds_the_numbers_for_the_database() -> None:
    result = train_trial(tiny(epochs=1))
    metrics = result.metrics_dict()
    assert set(metrics) == {
        "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "best_val_acc", "best_epoch",
        "best_metric", "test_acc", "test_loss", "test_epoch", "epochs_run", "duration_s", "images_per_s",
        "peak_mem_mb", "n_params", "n_trainable_params", "startup_s", "stop_reason", "n_train", "n_val", "n_test",
        "data",
    }
    assert metrics["stop_reason"] == "completed"
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (52, 12, 64)  # 20 % of 64 held out
    assert metrics["data"]["normalization"]["how"].startswith("computed from the training split")
    numbers = {k: v for k, v in metrics.items() if k not in ("stop_reason", "data")}
    assert all(v is None or isinstance(v, (int, float)) for v in numbers.values())
    nan = dataclasses.replace(result, train_loss=float("nan"))
    assert nan.metrics_dict()["train_loss"] is None


@pytest.mark.slow
def test_top5_with_more_than_five_classes() -> None:
    result = train_trial(tiny(num_classes=8, epochs=1))
    assert result.val_top5 is not None and result.val_acc is not None
    assert result.val_top5 >= result.val_acc


@pytest.mark.slow
def test_same_config_and_seed_give_identical_metrics_and_another_seed_does_not() -> None:
    cfg = tiny(augment="heavy", mixup_alpha=0.4, cutmix_alpha=0.4, cnn_dropout=0.3, label_smoothing=0.1)
    a, b = train_trial(cfg), train_trial(cfg)
    assert comparable(a.history) == comparable(b.history)
    assert a.test_acc == b.test_acc and a.test_loss == b.test_loss
    c = train_trial(dataclasses.replace(cfg, seed=1))
    assert comparable(c.history) != comparable(a.history)


RESUME_CONFIG = dict(
    epochs=4, augment="heavy", mixup_alpha=0.2, cutmix_alpha=0.2, cnn_dropout=0.2,
    scheduler="plateau", plateau_patience=0, label_smoothing=0.1,
)


@pytest.mark.slow
def test_resumed_trial_ends_exactly_like_an_uninterrupted_one(tmp_path: Path) -> None:
    cfg = tiny(**RESUME_CONFIG)
    whole = train_trial(cfg, checkpoint_dir=tmp_path / "whole")
    first = Recorder(prune_at=2)
    with pytest.raises(TrialPruned):  # the reporter stops the first session after epoch 2
        train_trial(cfg, reporter=first, checkpoint_dir=tmp_path / "parts")
    assert [m.epoch for m in first.epochs] == [1, 2]
    second = Recorder()
    resumed = train_trial(cfg, reporter=second, checkpoint_dir=tmp_path / "parts")
    assert [m.epoch for m in second.epochs] == [3, 4]  # reported epochs are not re-sent
    assert comparable(resumed.history) == comparable(whole.history)
    drop = {"duration_s", "images_per_s", "peak_mem_mb", "startup_s"}
    assert {k: v for k, v in resumed.metrics_dict().items() if k not in drop} == {
        k: v for k, v in whole.metrics_dict().items() if k not in drop
    }
    p1, p2 = np.load(tmp_path / "whole" / "predictions.npz"), np.load(tmp_path / "parts" / "predictions.npz")
    assert np.array_equal(p1["preds"], p2["preds"])


@pytest.mark.slow
def test_epochs_checkpointed_but_not_reported_are_reported_on_resume(tmp_path: Path) -> None:
    cfg = tiny(epochs=3)
    train_trial(cfg, checkpoint_dir=tmp_path)  # no reporter: nothing was delivered
    (tmp_path / "reported.txt").write_text("1")
    rec = Recorder()
    result = train_trial(cfg, reporter=rec, checkpoint_dir=tmp_path)
    assert [m.epoch for m in rec.epochs] == [2, 3]
    assert result.epochs_run == 3


@pytest.mark.slow
def test_a_crash_between_last_and_best_keeps_the_pending_best(tmp_path: Path) -> None:
    cfg = tiny(epochs=2)
    train_trial(cfg, checkpoint_dir=tmp_path)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    shutil.move(tmp_path / "best.pt", tmp_path / ".best.pending.pt")
    torch.save({"epoch": -1, "model": best["model"]}, tmp_path / "best.pt")  # stale
    result = train_trial(cfg, checkpoint_dir=tmp_path)
    assert torch.load(tmp_path / "best.pt", weights_only=True)["epoch"] == best["epoch"]
    assert result.best_epoch == best["epoch"]


@pytest.mark.slow
def test_checkpoint_dir_of_another_trial_is_refused(tmp_path: Path) -> None:
    train_trial(tiny(epochs=1), checkpoint_dir=tmp_path)
    with pytest.raises(StudyError, match="another trial"):
        train_trial(tiny(epochs=1, lr=0.01), checkpoint_dir=tmp_path)


@pytest.mark.slow
def test_checkpoint_files_and_predictions(tmp_path: Path) -> None:
    rec = Recorder()
    cfg = tiny(dataset="digits", num_classes=None, image_size=16, epochs=1, prediction_samples=30, batch_size=64)
    result = train_trial(cfg, reporter=rec, checkpoint_dir=tmp_path)
    assert set(result.artifacts) == {"best_checkpoint", "last_checkpoint", "predictions"}
    assert all(Path(p).parent == tmp_path for p in result.artifacts.values())
    last = torch.load(result.artifacts["last_checkpoint"], weights_only=True)
    assert {"model", "optimizer", "schedule", "scaler", "rng", "epoch", "best", "bad_epochs", "history"} <= set(last)
    assert last["epoch"] == 1 and not list(tmp_path.glob("*.tmp"))
    preds = np.load(result.artifacts["predictions"])
    assert preds["images"].shape == (30, 16, 16, 1) and preds["images"].dtype == np.uint8
    assert np.bincount(preds["labels"]).tolist() == [3] * 10  # class-balanced sample
    assert preds["preds"].shape == (30,) and list(preds["class_names"]) == [str(i) for i in range(10)]
    # on_batch: every 10th batch and the last, with the loss as a float on CPU.
    n = rec.batches[0][2]
    assert [b for _, b, _, _ in rec.batches] == [*range(10, n + 1, 10), *([n] if n % 10 else [])]
    assert all(isinstance(loss, float) for *_, loss in rec.batches)


@pytest.mark.slow
def test_non_finite_loss_stops_the_trial_as_diverged(tmp_path: Path) -> None:
    rec = Recorder()
    result = train_trial(tiny(lr=1e12, epochs=3, scheduler="none"), reporter=rec, checkpoint_dir=tmp_path)
    assert result.status == "failed" and result.stop_reason == "diverged"
    assert result.error is not None and result.error.startswith("diverged: non-finite loss at epoch ")
    assert result.epochs_run == len(rec.epochs) < 3


@pytest.mark.slow
def test_early_stopping_on_the_study_metric() -> None:
    # A vanishing learning rate never improves the metric after the first epoch.
    result = train_trial(tiny(lr=1e-12, epochs=6, early_stopping=2, scheduler="none", val_split="val"))
    assert result.stop_reason == "early_stopped" and result.status == "completed"
    assert result.epochs_run == 3 and result.best_epoch == 1


@pytest.mark.slow
def test_minimised_metric_picks_the_lowest_epoch() -> None:
    result = train_trial(tiny(epochs=3), metric="val_loss", direction="minimize")
    losses = [m.val_loss for m in result.history]
    assert result.best_metric == min(losses) and result.best_epoch == losses.index(min(losses)) + 1
    with pytest.raises(StudyError, match="metric"):
        train_trial(tiny(), metric="accuracy")


@pytest.mark.slow
def test_time_limit_stops_after_the_epoch_that_reached_it() -> None:
    result = train_trial(tiny(epochs=5, time_limit_s=1e-6))
    assert result.stop_reason == "time_limit" and result.epochs_run == 1 and result.status == "completed"


@pytest.mark.slow
def test_explicit_amp_on_cpu_and_no_cuda_device() -> None:
    for amp in ("bf16", "fp16"):
        result = train_trial(tiny(amp=amp, epochs=1, synthetic_samples=32))
        assert result.status == "completed" and result.train_loss is not None
        assert math.isfinite(result.train_loss)
    if not torch.cuda.is_available():
        with pytest.raises(StudyError, match="no CUDA device"):
            train_trial(tiny(device="cuda"))


def test_channels_last_for_conv_models_only() -> None:
    from ablate.train._trainer import _Trial

    conv = _Trial(tiny(), metric="val_acc", maximize=True, checkpoint_dir=None)
    weight = conv.model.block1.conv.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and weight.shape[-1] == 3
    x, _ = next(conv.train_src.train_batches(8, 0))
    assert conv.augment.train(x, torch.Generator().manual_seed(0)).is_contiguous(memory_format=torch.channels_last)
    off = _Trial(tiny(channels_last=False), metric="val_acc", maximize=True, checkpoint_dir=None)
    assert off.model.block1.conv.weight.is_contiguous()


def test_environment_describes_the_machine() -> None:
    env = environment()
    assert env.torch == torch.__version__ and env.extra["cpu_count"] >= 1
    assert env.device_name and env.hostname and env.python and env.ablate_version
    assert environment(device="cuda:0 Test GPU").device_name == "cuda:0 Test GPU"


SEED_STUDIES: list[dict[str, Any]] = [
    # 1. ImageNet-100 architecture comparison / EfficientNet image-size ablation
    dict(dataset="imagefolder:/data/imagenet100", num_classes=100, model="efficientnet_b0", image_size=64,
         batch_size=128, epochs=10, early_stopping=3, amp="auto"),
    # 2. CIFAR-100 from scratch, heavy recipe
    dict(dataset="cifar100", model="resnet18", cifar_stem=True, lr=0.1, scheduler="step", step_size=50,
         epochs=200, augment="heavy", mixup_alpha=0.2, cutmix_alpha=0.2, label_smoothing=0.1,
         early_stopping=20, batch_size=64, num_workers=2),
    # 3. HW2P2 faces
    dict(dataset="imagefolder:/data/faces", num_classes=50, model="resnet18", image_size=32, lr=0.1,
         scheduler="cosine_restarts", t_0=10, t_mult=2, label_smoothing=0.2, augment="heavy"),
    # 4. iNaturalist CNN from scratch on digits-like grey images
    dict(dataset="digits", model="cnn", cnn_blocks=5, cnn_filters=32, cnn_organisation="double",
         cnn_activation="mish", cnn_dropout=0.3, image_size=32, early_stopping=5),
]


@pytest.mark.slow
@pytest.mark.parametrize("values", SEED_STUDIES, ids=["effnet", "cifar100", "hw2p2", "inat_cnn"])
def test_smoke_config_runs_the_same_trial_on_synthetic_data(values: dict[str, Any]) -> None:
    cfg = make_config(values, where="test")
    smoke = smoke_config(cfg)
    assert smoke.dataset == "synthetic" and smoke.epochs == 1 and smoke.pretrained is False
    assert smoke.num_workers == 0 and not smoke.compile and smoke.weights_path is None
    for name in ("model", "image_size", "freeze", "lr_groups", "augment", "mixup_alpha", "cnn_blocks", "optimizer", "scheduler"):
        assert getattr(smoke, name) == getattr(cfg, name), name
    expected = {"cifar100": 100, "digits": 10}.get(cfg.dataset, cfg.num_classes)
    assert smoke.num_classes == expected
    result = train_trial(smoke)
    assert result.status == "completed" and result.epochs_run == 1
    assert result.images_per_s and result.history[0].epoch == 1
    if cfg.dataset == "digits":
        assert smoke.extra["synthetic_channels"] == 1


def test_smoke_config_needs_the_class_count_of_an_image_folder() -> None:
    cfg = make_config(dict(dataset="imagefolder:/data/x"), where="test")
    with pytest.raises(StudyError, match="num_classes"):
        smoke_config(cfg)


@pytest.mark.slow
def test_smoke_of_the_pretrained_224px_fine_tuning_study(tmp_path: Path) -> None:
    cfg = make_config(
        dict(dataset="cifar100", model="resnet50", pretrained=True, image_size=224, lr=0.01,
             scheduler="plateau", epochs=100, augment="heavy", freeze="layer1", lr_groups=[1, 0.5, 0.25]),
        where="test",
    )
    result = train_trial(smoke_config(cfg), checkpoint_dir=tmp_path)
    assert result.status == "completed"
    assert isinstance(result, TrainResult) and result.n_trainable_params < result.n_params
    images = np.load(tmp_path / "predictions.npz")["images"]
    assert images.shape[1:] == (64, 64, 3)
