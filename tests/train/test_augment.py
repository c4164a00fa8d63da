"""Batch augmentation on the device: each operation does what it says, reproducibly."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ablate.data import BatchAugment
from ablate.data._augment import color_jitter, crop_and_flip, random_grayscale, random_rotation
from ablate.data._augment_ops import ERASE_SCALE, random_erasing

from .helpers import tiny


def _batch(b: int = 6, h: int = 8, c: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, h, h, c), generator=g, dtype=torch.uint8)


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_crop_returns_a_window_of_the_zero_padded_image() -> None:
    x = _batch()
    pad = 2
    out = crop_and_flip(x, pad, False, _gen())
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = F.pad(x, (0, 0, pad, pad, pad, pad))
    offsets = set()
    for i in range(len(x)):
        hits = [
            (dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
            if torch.equal(out[i], padded[i, dy : dy + 8, dx : dx + 8])
        ]
        assert hits, f"image {i} is not a crop of its padded input"
        offsets.add(hits[0])
    assert len(offsets) > 1  # the offsets differ between images
    assert torch.equal(out, crop_and_flip(x, pad, False, _gen()))


def _augment(**kw: object) -> BatchAugment:
    cfg = tiny(image_size=8, **kw)
    return BatchAugment(
        cfg, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), crop_on_device=True, out_channels=3,
        channels_last=True, device=torch.device("cpu"),
    )


def test_eval_normalises_uint8_into_channels_last_floats() -> None:
    x = _batch()
    out = _augment().eval(x)
    mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    expected = (x.permute(0, 3, 1, 2).float() / 255 - mean) / std
    assert out.shape == (6, 3, 8, 8)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected)


def test_flip_only_preset_gives_each_image_or_its_mirror() -> None:
    aug = _augment(crop_padding=0)
    x = _batch(b=32)
    out = aug.train(x, _gen())
    plain, mirrored = aug.eval(x), aug.eval(x.flip(2))
    flipped = [torch.equal(out[i], mirrored[i]) for i in range(32)]
    assert all(f or torch.equal(out[i], plain[i]) for i, f in enumerate(flipped))
    assert 0 < sum(flipped) < 32


def test_none_preset_changes_nothing_and_heavy_is_reproducible() -> None:
    x = _batch()
    none = _augment(augment="none")
    torch.testing.assert_close(none.train(x, _gen()), none.eval(x))
    heavy = _augment(augment="heavy", erasing_p=1.0)
    a, b = heavy.train(x, _gen(5)), heavy.train(x, _gen(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, heavy.train(x, _gen(6)))


def test_resizes_when_stored_images_are_not_at_image_size() -> None:
    out = _augment().train(_batch(h=5), _gen())
    assert out.shape == (6, 3, 8, 8)


def test_grey_images_are_repeated_for_three_channel_models() -> None:
    aug = BatchAugment(
        tiny(image_size=8), mean=(0.5,), std=(0.25,), crop_on_device=True, out_channels=3,
        channels_last=False, device=torch.device("cpu"),
    )
    out = aug.eval(_batch(c=1))
    assert out.shape == (6, 3, 8, 8)
    assert torch.equal(out[:, 0], out[:, 2])


def test_random_erasing_zeroes_one_rectangle_per_image() -> None:
    x = torch.ones(50, 3, 16, 16)
    out = random_erasing(x, 1.0, _gen())
    for img in out:
        zero = img[0] == 0
        rows, cols = zero.any(1).nonzero(), zero.any(0).nonzero()
        area = int(zero.sum())
        # A filled axis-aligned rectangle, the same on every channel, of 2-33 % of the image.
        assert area == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert torch.equal(img[1] == 0, zero)
        assert ERASE_SCALE[0] * 256 * 0.5 <= area <= ERASE_SCALE[1] * 256 * 1.5
    assert torch.equal(random_erasing(x, 0.0, _gen()), x)


def test_grayscale_jitter_and_rotation() -> None:
    x = torch.rand(8, 3, 10, 10, generator=_gen())
    grey = random_grayscale(x, 1.0, _gen())
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    torch.testing.assert_close(color_jitter(x, 0.0, _gen()), x)
    jittered = color_jitter(x, 0.5, _gen())
    assert not torch.allclose(jittered, x) and jittered.min() >= 0 and jittered.max() <= 1
    torch.testing.assert_close(random_rotation(x, 0.0, _gen()), x, atol=1e-5, rtol=0)
    # Rotation turns about the centre: the centre pixel of an odd-sized image stays, the corners
    # of an all-ones image leave the frame (zero fill) once the angle is large enough.
    ones = torch.ones(16, 1, 7, 7)
    g = _gen(3)
    angles = (torch.rand(16, generator=_gen(3)) * 2 - 1) * 60.0
    rotated = random_rotation(ones, 60.0, g)
    torch.testing.assert_close(rotated[:, 0, 3, 3], torch.ones(16))
    big = angles.abs() > 20
    assert big.any()
    assert (rotated[big, 0, 0, 0] < 0.5).all()


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["none", "basic", "heavy"])
def test_presets_train_a_model(preset: str) -> None:
    from ablate.train import train_trial

    result = train_trial(tiny(augment=preset, epochs=1))
    assert result.status == "completed" and result.train_loss is not None
    assert math.isfinite(result.train_loss)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["randaugment", "trivialaugment"])
def test_auto_augment_runs_per_image_through_the_loader_path(policy: str) -> None:
    from ablate.data import LoaderBatches
    from ablate.train import train_trial
    from ablate.train._trainer import _Trial

    cfg = tiny(dataset="digits", num_classes=None, image_size=16, auto_augment=policy, num_workers=0, epochs=1)
    trial = _Trial(cfg, metric="val_acc", maximize=True, checkpoint_dir=None)
    assert isinstance(trial.train_src, LoaderBatches)
    x, _ = next(trial.train_src.train_batches(8, seed=0))
    assert x.shape == (8, 16, 16, 1) and x.dtype == torch.uint8
    result = train_trial(cfg)
    assert result.status == "completed" and result.train_loss is not None
