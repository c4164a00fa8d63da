"""Every transform factor changes the batches it should (training and/or evaluation) and only
those; a setting no trial reads is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from ablate.errors import StudyError
from ablate.study import Study
from ablate.train._trainer import _Trial

from .helpers import tiny
from .test_splits import write_tree


def batches(**kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(first training batch, first validation batch) as the model would see them."""
    trial = _Trial(tiny(**kw), metric="val_acc", maximize=True, checkpoint_dir=None)
    x, _ = next(trial.train_src.train_batches(16, seed=0))
    train = trial.augment.train(x, torch.Generator().manual_seed(0))
    assert trial.val_src is not None
    v, _ = next(trial.val_src.eval_batches(16))
    return train, trial.augment.eval(v)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a, b)


HEAVY = dict(augment="heavy", rotation=0.0, color_jitter=0.0, grayscale_p=0.0, erasing_p=0.0)
# (base, change, changes the training batch, changes the evaluation batch)
FACTORS = [
    (dict(augment="basic"), dict(crop_padding=3), True, False),
    (dict(augment="basic", crop_padding=0), dict(hflip=False), True, False),
    (HEAVY, dict(rotation=30.0), True, False),
    (HEAVY, dict(color_jitter=0.4), True, False),
    (HEAVY, dict(grayscale_p=0.9), True, False),
    (HEAVY, dict(erasing_p=1.0), True, False),
    ({**HEAVY, "erasing_p": 1.0}, dict(erasing_scale=[0.1, 0.1]), True, False),
    ({**HEAVY, "erasing_p": 1.0}, dict(erasing_ratio=[1.0, 1.0]), True, False),
    (dict(augment="none"), dict(train_resize="crop"), True, False),
    (dict(augment="none"), dict(eval_resize="crop"), False, True),
    (dict(augment="none", train_resize="crop", eval_resize="crop"), dict(crop_ratio=0.5), True, True),
    (dict(augment="none"), dict(normalize="custom", mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25]), True, True),
    (dict(augment="none"), dict(normalize="imagenet"), True, True),
]


@pytest.mark.parametrize(("base", "change", "in_train", "in_eval"), FACTORS, ids=[next(iter(c)) + "=" + str(next(iter(c.values()))) for _, c, _, _ in FACTORS])
def test_each_transform_factor_changes_the_batches_it_should(base: dict[str, Any], change: dict[str, Any], in_train: bool, in_eval: bool) -> None:
    train0, eval0 = batches(**base)
    train1, eval1 = batches(**{**base, **change})
    assert _same(train0, train1) is not in_train
    assert _same(eval0, eval1) is not in_eval


def test_resize_then_crop_for_small_in_memory_images() -> None:
    # CIFAR-style 32 px images fed to an ImageNet-sized model: resize to 37 (32 / 0.875), crop 32.
    train, evaluation = batches(image_size=32, augment="none", train_resize="crop", eval_resize="crop", synthetic_samples=32)
    assert train.shape[-2:] == evaluation.shape[-2:] == (32, 32)
    squash_train, _ = batches(image_size=32, augment="none", synthetic_samples=32)
    assert not torch.equal(train, squash_train)


def test_crop_padding_works_on_image_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    root = write_tree(tmp_path / "f", {"train": 6, "val": 2})
    common = dict(dataset=f"imagefolder:{root}", num_classes=None, image_size=16, num_workers=0,
                  val_split="val", test_split=None, augment="basic", hflip=False)
    runs = [batches(**common, crop_padding=p)[0] for p in (0, 4, 16)]
    assert not torch.equal(runs[0], runs[1]) and not torch.equal(runs[1], runs[2])


def test_native_size_feeds_images_unresized_and_refuses_another_size() -> None:
    train, evaluation = batches(image_size=12, augment="none", train_resize="none", eval_resize="none")
    assert train.shape[-2:] == evaluation.shape[-2:] == (12, 12)
    trial = _Trial(tiny(image_size=12, train_resize="none"), metric="val_acc", maximize=True, checkpoint_dir=None)
    with pytest.raises(StudyError, match="native size"):
        trial.augment.train(torch.zeros(2, 10, 10, 3, dtype=torch.uint8), torch.Generator())


def test_per_split_loader_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    root = write_tree(tmp_path / "f", {"train": 2, "val": 1, "test": 1})
    cfg = tiny(dataset=f"imagefolder:{root}", num_classes=None, image_size=16, num_workers=4, eval_workers=2,
               val_split="val", test_split="test", image_cache="off")
    trial = _Trial(cfg, metric="val_acc", maximize=True, checkpoint_dir=None)
    assert trial.val_src is not None and trial.test_src is not None
    assert (trial.train_src.num_workers, trial.val_src.num_workers, trial.test_src.num_workers) == (4, 2, 2)
    assert trial.train_src.pin_memory is False  # pinned memory only on CUDA


@pytest.mark.parametrize(
    ("base", "factors", "unused"),
    [
        (dict(augment="none"), dict(crop_padding=[0, 4, 16]), "crop_padding"),
        (dict(augment="basic", rotation=30.0), dict(lr=[0.1]), "rotation"),
        (dict(scheduler="cosine"), dict(step_size=[10, 20]), "step_size"),
        (dict(), dict(crop_ratio=[0.875, 0.5]), "crop_ratio"),  # digits are squashed, not cropped
    ],
)
def test_a_setting_no_trial_reads_is_refused(base: dict[str, Any], factors: dict[str, Any], unused: str) -> None:
    study = Study(name="s", base=dict(dataset="digits", **base), factors=factors)
    with pytest.raises(StudyError, match=f"field '{unused}' is set but no trial uses it"):
        study.validate()
    # Used by some trials: accepted (digits_quick pads the crop of its augmented half only).
    Study(name="s", base=dict(dataset="digits", crop_padding=1), factors=dict(augment=["none", "basic"])).validate()
