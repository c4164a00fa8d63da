"""``augment_ops``: an ordered list of torchvision operations, each image drawing its own parameters,
reproducible from the epoch seed, the same list on the in-memory and the image-folder path."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from ablate.data import (
    AugmentPipeline,
    BatchAugment,
    CachedBatches,
    folder_transforms,
    op_transform,
    worker_sizing_transform,
)
from ablate.errors import StudyError
from ablate.study import AUGMENT_OPS, Study
from ablate.study._config import _HASHED_WHEN_SET, FIELD_UNITS, unused_settings

from .helpers import tiny

EXAMPLE = [
    {"op": "random_resized_crop", "scale": [0.08, 1.0]},
    {"op": "hflip", "p": 0.5},
    {"op": "color_jitter", "brightness": 0.4, "hue": 0.1, "p": 0.8},
]


def _batch(b: int = 6, h: int = 8, c: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, h, h, c), generator=g, dtype=torch.uint8)


def _same_image(b: int = 16, h: int = 8) -> torch.Tensor:
    """One image repeated: any difference between outputs comes from per-image draws."""
    return _batch(1, h).expand(b, -1, -1, -1).contiguous()


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pipe(ops: list[dict[str, Any]], size: int = 8) -> AugmentPipeline:
    return AugmentPipeline(tiny(image_size=size, augment_ops=ops).augment_ops, image_size=size)


def _run(ops: list[dict[str, Any]], x: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """uint8 NHWC in, uint8 NHWC out, through the pipeline as BatchAugment calls it."""
    return _pipe(ops, x.shape[1])(x.permute(0, 3, 1, 2), _gen(seed)).permute(0, 2, 3, 1)


# --- the field: validated at plan time

def test_field_is_listed_hashed_when_set_and_sets_the_preset() -> None:
    assert "augment_ops" in _HASHED_WHEN_SET and FIELD_UNITS["augment_ops"]
    plain = tiny()
    assert plain.augment == "basic" and plain.augment_ops == []
    assert plain.config_hash == tiny(augment_ops=[]).config_hash  # old trials keep their identity
    cfg = tiny(augment_ops=EXAMPLE)
    assert cfg.augment == "ops" and cfg.augment_ops == EXAMPLE
    assert cfg.config_hash != plain.config_hash
    assert cfg.config_hash != tiny(augment_ops=EXAMPLE[::-1][:2]).config_hash
    # crop_padding / hflip belong to the presets; train_resize is replaced by a leading resized crop
    unused = unused_settings(cfg)
    assert {"crop_padding", "hflip", "train_resize", "rotation"} <= set(unused)
    assert "train_resize" not in unused_settings(tiny(augment_ops=EXAMPLE[1:]))


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ("hflip", r"must be a list of dicts"),
        ([{"p": 0.5}], r"item 0 must be a dict naming its operation"),
        ([{"op": "hfilp"}], r"item 0: augmentation op 'hfilp', which is not a known augmentation op; did you mean 'hflip'"),
        ([{"op": "color_jiter"}], r"did you mean 'color_jitter'"),
        ([{"op": "hflip", "prob": 0.5}], r"item 0 \(hflip\): unknown parameter 'prob'.*hflip takes p"),
        ([{"op": "color_jitter", "brightnes": 0.4}], r"unknown parameter 'brightnes'; did you mean 'brightness'"),
        ([{"op": "color_jitter", "hue": 0.7}], r"'hue' is 0.7; it must be >= 0 and <= 0.5"),
        ([{"op": "hflip", "p": 1.5}], r"'p' is 1.5; it must be >= 0 and <= 1"),
        ([{"op": "random_resized_crop", "scale": [0.9, 0.1]}], r"'scale' is \[0.9, 0.1\]; it must be \[min, max\] with min <= max"),
        ([{"op": "random_resized_crop", "scale": [0.0, 1.0]}], r"'scale' is 0.0; it must be > 0"),
        ([{"op": "random_resized_crop", "p": 0.5}], r"unknown parameter 'p' \(it always applies"),
        ([{"op": "hflip"}, {"op": "random_resized_crop"}], r"item 1 is random_resized_crop.*must be the first operation"),
        ([{"op": "autoaugment", "policy": "cifar"}], r"'policy' is 'cifar'; did you mean 'cifar10'\?; allowed: imagenet, cifar10, svhn"),
        ([{"op": "randaugment", "magnitude": 31}], r"'magnitude' must be < num_magnitude_bins \(31\)"),
        ([{"op": "crop", "padding": 2.5}], r"'padding' must be an integer"),
        ([{"op": "affine", "translate": [0.1]}], r"'translate' must be a pair"),
        ([{"op": "rotation", "degrees": "a lot"}], r"'degrees' must be a finite number"),
    ],
)
def test_bad_op_lists_are_refused_with_the_reason(ops: Any, message: str) -> None:
    with pytest.raises(StudyError, match=message):
        tiny(augment_ops=ops)


def test_preset_and_per_image_policy_conflicts() -> None:
    with pytest.raises(StudyError, match=r"'augment' is 'heavy' but augment_ops lists operations"):
        tiny(augment="heavy", augment_ops=[{"op": "hflip"}])
    with pytest.raises(StudyError, match=r"'augment' is 'ops' but augment_ops is empty"):
        tiny(augment="ops")
    with pytest.raises(StudyError, match=r"'auto_augment' is 'randaugment' with augment_ops; list it as an operation"):
        tiny(augment_ops=[{"op": "hflip"}], auto_augment="randaugment")
    assert tiny(augment="ops", augment_ops=[{"op": "hflip"}]).augment == "ops"
    with pytest.raises(StudyError, match=r"padding 12 with padding_mode 'reflect' mirrors the image, so it must be < image_size \(12\)"):
        tiny(augment_ops=[{"op": "crop", "padding": 12, "padding_mode": "reflect"}])


def test_every_op_builds_its_torchvision_transform() -> None:
    from torchvision.transforms import v2

    for name, spec in AUGMENT_OPS.items():
        t = op_transform({"op": name}, 8)
        inner = t.transforms[0] if isinstance(t, v2.RandomApply) else t
        assert type(inner).__name__ == spec.torchvision, name
        out = t(torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8))
        assert out.shape == (3, 8, 8) and out.dtype == torch.uint8, name


# --- what each op does

@pytest.mark.parametrize("name", [n for n, s in AUGMENT_OPS.items() if s.p is not None])
def test_p_zero_is_identity(name: str) -> None:
    x = _batch(b=8)
    assert torch.equal(_run([{"op": name, "p": 0.0}], x), x)


def test_flips_crops_grayscale_and_erasing_do_what_they_say() -> None:
    x = _batch(b=8)
    assert torch.equal(_run([{"op": "hflip", "p": 1.0}], x), x.flip(2))
    assert torch.equal(_run([{"op": "vflip", "p": 1.0}], x), x.flip(1))
    grey = _run([{"op": "grayscale", "p": 1.0}], x)
    assert torch.equal(grey[..., 0], grey[..., 1]) and torch.equal(grey[..., 1], grey[..., 2])
    erased = _run([{"op": "erasing", "p": 1.0, "value": 7}], torch.zeros(8, 16, 16, 3, dtype=torch.uint8) + 200)
    assert ((erased == 7).flatten(1).any(1)).all() and ((erased == 200).flatten(1).any(1)).all()
    padded = torch.nn.functional.pad(x, (0, 0, 2, 2, 2, 2), value=255)
    out = _run([{"op": "crop", "padding": 2, "fill": 255}], x)
    for i in range(8):
        assert any(torch.equal(out[i], padded[i, dy : dy + 8, dx : dx + 8]) for dy in range(5) for dx in range(5))


def test_per_image_ops_change_images_as_torchvision_does() -> None:
    from torchvision.transforms.v2 import functional as TF

    x = _batch(b=4, h=9)
    rot = _run([{"op": "rotation", "degrees": [90, 90]}], x)
    assert torch.equal(rot, torch.stack([TF.rotate(img, 90.0) for img in x.permute(0, 3, 1, 2)]).permute(0, 2, 3, 1))
    blurred = _run([{"op": "sharpness", "factor": 0.0, "p": 1.0}], x)
    assert torch.equal(blurred, TF.adjust_sharpness(x.permute(0, 3, 1, 2), 0.0).permute(0, 2, 3, 1))
    bright = _run([{"op": "color_jitter", "brightness": 0.5}], x.clamp(max=100))
    ratio = bright.float().sum((1, 2, 3)) / x.clamp(max=100).float().sum((1, 2, 3))
    assert ((ratio >= 0.49) & (ratio <= 1.51)).all() and len(set(ratio.tolist())) == 4  # one factor per image
    for name in ("perspective", "autoaugment", "randaugment", "trivialaugment", "affine"):
        item = {"op": name, "p": 1.0} | ({"degrees": 30.0} if name == "affine" else {})
        assert not torch.equal(_run([item], _batch(b=16, h=16)), _batch(b=16, h=16)), name


@pytest.mark.parametrize("channels", [3, 1])
def test_batched_color_jitter_computes_what_torchvision_computes_per_image(channels: int) -> None:
    from torchvision.transforms.v2 import functional as TF

    from ablate.data._augment_ops import jitter_images

    g = _gen(0)
    x = torch.randint(0, 256, (16, channels, 9, 9), generator=g, dtype=torch.uint8)
    factors = 0.5 + torch.rand(16, 3, generator=g)
    order = torch.rand(16, 3, generator=g).argsort(1)
    adjust = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation]
    expected = []
    for img, f, o in zip(x, factors, order, strict=True):
        for k in o.tolist():
            img = adjust[k](img, float(f[k]))
        expected.append(img)
    assert torch.equal(jitter_images(x, factors, order), torch.stack(expected))
    assert len({tuple(o.tolist()) for o in order}) > 1  # the orders differ between images


@pytest.mark.parametrize(
    ("mode", "shape", "fill"), [("bilinear", (3, 32, 32), 0), ("nearest", (3, 32, 32), 0), ("bilinear", (1, 9, 13), 200)]
)
def test_batched_rotation_computes_what_torchvision_computes_per_image(mode: str, shape: tuple[int, int, int], fill: int) -> None:
    from torchvision.transforms import v2

    from ablate.data._augment_ops import rotate_images

    g = _gen(0)
    x = torch.randint(0, 256, (16, *shape), generator=g, dtype=torch.uint8)
    angles = torch.rand(16, generator=g) * 360 - 180
    interpolation = v2.InterpolationMode(mode)
    expected = torch.stack([
        v2.RandomRotation((float(a), float(a)), interpolation=interpolation, fill=fill)(img)
        for img, a in zip(x, angles, strict=True)
    ])
    diff = (rotate_images(x, angles, mode, fill).int() - expected.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3  # float rounding of one level, rarely


@pytest.mark.parametrize(("mode", "fill"), [("bilinear", 0), ("nearest", 0), ("bilinear", 200)])
def test_batched_affine_computes_what_torchvision_computes_per_image(mode: str, fill: int) -> None:
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as TF

    from ablate.data._augment_ops import affine_images

    g = _gen(0)
    x = torch.randint(0, 256, (16, 3, 24, 24), generator=g, dtype=torch.uint8)
    angle, shear = torch.rand(16, generator=g) * 90 - 45, torch.rand(16, generator=g) * 40 - 20
    scale, shift = 0.7 + torch.rand(16, generator=g) * 0.6, (torch.rand(16, 2, generator=g) * 8 - 4).round()
    expected = torch.stack([
        TF.affine(img, float(a), [int(t[0]), int(t[1])], float(s), [float(sh), 0.0],
                  interpolation=v2.InterpolationMode(mode), fill=fill)
        for img, a, t, s, sh in zip(x, angle, shift, scale, shear, strict=True)
    ])
    diff = (affine_images(x, angle, shift, scale, shear, mode, fill).int() - expected.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3


def test_order_matters() -> None:
    x = _batch(b=4, h=9)
    rot_then_flip = _run([{"op": "rotation", "degrees": [90, 90]}, {"op": "vflip", "p": 1.0}], x)
    flip_then_rot = _run([{"op": "vflip", "p": 1.0}, {"op": "rotation", "degrees": [90, 90]}], x)
    assert not torch.equal(rot_then_flip, flip_then_rot)
    # Each is the two operations in its order (90 degrees counter-clockwise is torch.rot90).
    assert torch.equal(flip_then_rot, torch.rot90(x.flip(1), 1, (1, 2)))
    assert torch.equal(rot_then_flip, torch.rot90(x, 1, (1, 2)).flip(1))


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "crop", "padding": 3}, {"op": "hflip"}],  # batched kernels
        [{"op": "crop", "padding": 3, "padding_mode": "reflect"}, {"op": "rotation", "degrees": 30}],  # per image
        [{"op": "random_resized_crop", "scale": [0.2, 0.5]}],
    ],
)
def test_images_of_one_batch_draw_their_own_and_batches_replay_from_the_seed(ops: list[dict[str, Any]]) -> None:
    x = _same_image(16, 12)
    state = torch.get_rng_state()
    out = _run(ops, x, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is untouched
    distinct = {bytes(img.flatten().tolist()) for img in out}
    assert len(distinct) > 4, "images of one batch got the same draw"
    assert torch.equal(out, _run(ops, x, seed=3))
    assert not torch.equal(out, _run(ops, x, seed=4))


def test_describe_says_which_ops_run_batched_and_which_per_image() -> None:
    pipe = _pipe([{"op": "crop"}, {"op": "hflip"}, {"op": "color_jitter", "hue": 0.1}, {"op": "randaugment"}])
    assert [kind for kind, _, _ in pipe.stages] == ["batched", "batched", "per_image"]
    assert pipe.describe() == (
        "augment_ops: crop, hflip batched on the device (each image its own draw); "
        "color_jitter, randaugment image by image on the device (torchvision v2 per image)"
    )
    folder = AugmentPipeline(EXAMPLE, image_size=8, sized_in_workers=True)
    assert folder.describe().startswith("augment_ops: random_resized_crop in the DataLoader workers; hflip batched")


# --- both data paths

def _augment(cfg: Any, crop_on_device: bool) -> BatchAugment:
    return BatchAugment(
        cfg, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), crop_on_device=crop_on_device, out_channels=3,
        channels_last=True, device=torch.device("cpu"),
    )


def test_no_crop_is_forced_and_a_leading_resized_crop_sizes_the_images() -> None:
    # Flips only: the images are sized (squashed) and flipped, never cropped.
    flips = _augment(tiny(image_size=8, augment_ops=[{"op": "hflip", "p": 1.0}]), True)
    x = _batch(b=4, h=8)
    torch.testing.assert_close(flips.train(x, _gen()), flips.eval(x.flip(2)))
    # A leading random_resized_crop takes the stored 20 px image to image_size itself.
    cfg = tiny(image_size=8, augment_ops=EXAMPLE)
    assert _augment(cfg, True).train(_batch(b=4, h=20), _gen()).shape == (4, 3, 8, 8)
    # On an image folder it runs in the workers on the decoded image; the device runs the rest.
    tf = folder_transforms(8, train=True, random_crop=False, auto_augment="none", sizing=worker_sizing_transform(cfg))
    assert tf(torch.randint(0, 256, (3, 30, 45), dtype=torch.uint8)).shape == (3, 8, 8)
    folder = _augment(cfg, False)
    assert folder.ops is not None and [n for _, names, _ in folder.ops.stages for n in names] == ["hflip", "color_jitter"]
    assert folder.train(_batch(b=4, h=8), _gen()).shape == (4, 3, 8, 8)


def test_plan_refuses_a_bad_op_and_plans_op_lists_as_factor_levels(tmp_path: Path) -> None:
    from ablate.cli import app

    bad = tmp_path / "bad.py"
    bad.write_text(
        "from ablate import Study\n"
        "s = Study(name='bad', base=dict(dataset='synthetic', num_classes=4), "
        "factors=dict(augment_ops=[[{'op': 'hflip'}], [{'op': 'hflip', 'prob': 0.5}]]))\n"
    )
    result = CliRunner().invoke(app, ["plan", str(bad)])
    assert result.exit_code == 2
    assert "unknown parameter 'prob'; hflip takes p" in result.output and "Traceback" not in result.output
    good = tmp_path / "good.py"
    good.write_text(
        "from ablate import Study\n"
        "s = Study(name='good', base=dict(dataset='synthetic', num_classes=4), factors=dict(augment_ops=[\n"
        "    [], [{'op': 'hflip'}, {'op': 'color_jitter', 'brightness': 0.4, 'hue': 0.1, 'p': 0.8}]]))\n"
    )
    result = CliRunner().invoke(app, ["plan", str(good)])
    assert result.exit_code == 0, result.output
    assert "2 trials: 2 configurations" in result.output
    text = " ".join(result.output.split())  # rich wraps long lines
    assert "augment_ops: hflip batched on the device (each image its own draw); color_jitter image by image" in text
    assert "hflip() > color_jitter(brightness=0.4, hue=0.1, p=0.8)" in text  # the table and level counts
    assert "augment_ops: []: 1, hflip() > color_jitter(brightness=0.4, hue=0.1, p=0.8): 1" in text
    plan = json.loads(CliRunner().invoke(app, ["plan", str(good), "--json"]).output)
    assert [t["params"]["augment_ops"] for t in plan["trials"]] == [
        [], [{"op": "hflip"}, {"op": "color_jitter", "brightness": 0.4, "hue": 0.1, "p": 0.8}],
    ]
    # Levels written as single ops instead of lists of ops.
    flat = tmp_path / "flat.py"
    flat.write_text(
        "from ablate import Study\n"
        "s = Study(name='flat', base=dict(dataset='synthetic', num_classes=4), "
        "factors=dict(augment_ops=[{'op': 'hflip'}, {'op': 'vflip'}]))\n"
    )
    result = CliRunner().invoke(app, ["plan", str(flat)])
    assert result.exit_code == 2 and "each level of augment_ops is a list of them" in result.output
    fields = CliRunner().invoke(app, ["fields"], env={"COLUMNS": "400"})
    assert "augment_ops" in fields.output and "random_resized_crop" in fields.output
    # A preset field the op list makes unused is refused, as any unused setting is.
    unused = Study(
        name="u", base=dict(dataset="synthetic", num_classes=4, crop_padding=2, augment_ops=[{"op": "hflip"}]),
    )
    from ablate.run import plan_trials

    with pytest.raises(StudyError, match=r"field 'crop_padding' is set but no trial uses it \(augment is 'ops'"):
        plan_trials(unused)


@pytest.mark.slow
def test_op_lists_train_smoke_and_show_in_the_report(tmp_path: Path) -> None:
    from ablate.report import build_report
    from ablate.run import run_study
    from ablate.store import load_trials

    f = tmp_path / "ops.py"
    f.write_text(
        "from ablate import Study\n"
        "s = Study(name='ops', base=dict(dataset='synthetic', num_classes=4, synthetic_samples=32, image_size=12,\n"
        "    epochs=1, batch_size=16, cnn_blocks=2, cnn_filters=4, cnn_dense=8, device='cpu'),\n"
        "    factors=dict(augment_ops=[[{'op': 'crop', 'padding': 2}, {'op': 'hflip'}],\n"
        f"        {EXAMPLE!r} + [{{'op': 'trivialaugment'}}, {{'op': 'erasing'}}]]))\n"
    )
    db = f"sqlite:///{tmp_path / 'r.db'}"
    for smoke in (True, False):
        outcomes = run_study(f, db=db, smoke=smoke, runs_dir=tmp_path / "runs")
        assert outcomes[0].counts == {"completed": 2}, outcomes[0].counts
    trials = load_trials("ops", db=db)
    assert sorted(len(v) for v in trials["augment_ops"]) == [2, 5]
    assert all(math.isfinite(v) for v in trials["train_loss"])
    index = build_report("ops", db=db, out=tmp_path / "report")
    table = (index.parent / "table.csv").read_text()
    # Each op list is one level, labelled op by op.
    assert "crop(padding=2) > hflip()" in table
    assert "random_resized_crop(scale=[0.08, 1.0]) > hflip(p=0.5) > color_jitter(brightness=0.4, hue=0.1, p=0.8)" in table


@pytest.mark.slow
def test_the_trainer_runs_the_list_on_both_data_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ablate.data import InMemoryBatches, LoaderBatches
    from ablate.train import train_trial
    from ablate.train._trainer import _Trial

    from .test_data import _write_folder

    # In memory: the stored images stay unsized (the leading crop sizes them), the list runs on the device.
    digits = tiny(dataset="digits", num_classes=None, image_size=16, augment_ops=EXAMPLE)
    memory = _Trial(digits, metric="val_acc", maximize=True, checkpoint_dir=None)
    assert isinstance(memory.train_src, InMemoryBatches) and memory.train_src.images.shape[1:] == (8, 8, 1)
    x, _ = next(memory.train_src.train_batches(8, seed=0))
    assert memory.augment.train(x, _gen()).shape == (8, 1, 16, 16)
    # An image folder: the crop runs in the workers on the decoded 20-22 x 24-28 px files, the rest on the device.
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    _write_folder(tmp_path / "f", {"train": 8, "val": 2, "test": 2})
    cfg = tiny(dataset=f"imagefolder:{tmp_path / 'f'}", num_classes=None, image_size=16, num_workers=0,
               val_split="val", epochs=1, batch_size=8, augment_ops=EXAMPLE, image_cache="off")
    folder = _Trial(cfg, metric="val_acc", maximize=True, checkpoint_dir=None)
    assert isinstance(folder.train_src, LoaderBatches)
    assert folder.augment.ops is not None and folder.augment.ops.in_workers == ["random_resized_crop"]
    x, _ = next(folder.train_src.train_batches(8, seed=0))
    assert x.shape == (8, 16, 16, 3)
    result = train_trial(cfg)
    assert result.status == "completed" and result.train_loss is not None and math.isfinite(result.train_loss)
    # The same folder from its decoded cache: 18 px squares, the crop batched on the device.
    cached = _Trial(dataclasses.replace(cfg, image_cache="on"), metric="val_acc", maximize=True, checkpoint_dir=None)
    assert isinstance(cached.train_src, CachedBatches) and cached.augment.ops is not None
    assert cached.augment.ops.in_workers == [] and cached.augment.ops.stages[0][:2] == ("batched", ["random_resized_crop", "hflip"])
    x, _ = next(cached.train_src.train_batches(8, seed=0))
    assert x.shape == (8, 18, 18, 3) and cached.augment.train(x, _gen()).shape == (8, 3, 16, 16)
    result = train_trial(dataclasses.replace(cfg, image_cache="on"))
    assert result.status == "completed" and result.train_loss is not None and math.isfinite(result.train_loss)
