"""The decoded image cache on fake image folders of real PNG/JPEG files: built once and reused,
rebuilt when the folder changes, built once by two processes at once, a corrupt image named (or
left out), a disk too small refused before writing; the device-side random_resized_crop; and a
tiny real training run fed from the cache, with the same result as the DataLoader path."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from tests.train.helpers import tiny

from ablate.data import image_feed, list_caches, load_dataset, open_cache
from ablate.data._cache import decode_square, entry_name, images_root
from ablate.data._device_augment import random_resized_crop, resized_crop_boxes
from ablate.data._sources import _list_split
from ablate.errors import DataNotFoundError, DiskFullError, StudyError
from ablate.study import config_hash
from ablate.train import train_trial

CLASSES = ("cat", "dog", "owl")


def write_tree(root: Path, splits: dict[str, int], *, size: tuple[int, int] = (40, 30)) -> Path:
    """``splits``: folder -> images per class; each class its own colour, PNG and JPEG mixed,
    not square (``size`` is width x height) so that the crop is exercised."""
    rng = np.random.default_rng(0)
    for split, n in splits.items():
        for k, cls in enumerate(CLASSES):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                pixels = np.full((size[1], size[0], 3), 40 + 80 * k, np.uint8)
                pixels += rng.integers(0, 30, pixels.shape, dtype=np.uint8)
                Image.fromarray(pixels).save(d / (f"{i}.png" if i % 2 else f"{i}.jpg"), quality=95)
    return root


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))


def listing(folder: Path) -> tuple[str, ...]:
    split = _list_split(folder, list(CLASSES))
    assert split.files is not None
    return split.files


def build(folder: Path, **kw: Any) -> Any:
    return open_cache(folder, listing(folder), kind=kw.pop("kind", "crop"), side=kw.pop("side", 18), **kw)


def built_at(folder: Path, kind: str = "crop", side: int = 18) -> float:
    return (images_root() / entry_name(folder, kind, side) / "images.npy").stat().st_mtime_ns


def test_decoded_square_is_the_short_side_resize_and_centre_crop(tmp_path: Path) -> None:
    pixels = np.zeros((30, 60, 3), np.uint8)  # 60 wide, 30 high
    pixels[:, 15:45] = 200  # the centre square is bright, the ends dark
    Image.fromarray(pixels).save(tmp_path / "a.png")
    out = decode_square(str(tmp_path / "a.png"), "crop", 20)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    assert out[:, 2:-2].min() == 200  # only the centre square is kept
    squashed = decode_square(str(tmp_path / "a.png"), "squash", 20)
    assert squashed[:, 0].max() == 0 and squashed[:, 10].min() == 200  # the whole width, squeezed


def test_cache_is_built_once_reused_and_rebuilt_when_the_folder_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree(tmp_path / "pets", {"train": 4})
    folder = root / "train"
    first = build(folder)
    assert first.images.shape == (12, 18, 18, 3) and first.images.dtype == np.uint8
    assert first.files == listing(folder)
    # Each class folder has its own colour: the decoded rows follow the file order.
    means = first.images.reshape(12, -1).mean(1)
    assert means[:4].max() < means[4:8].min() and means[4:8].max() < means[8:].min()
    stamp = built_at(folder)
    time.sleep(0.01)
    again = build(folder)
    assert built_at(folder) == stamp  # a hit: not rebuilt
    np.testing.assert_array_equal(again.images, first.images)
    assert build(folder, side=20).images.shape[1] == 20  # another resolution: its own cache
    # The same folder spelt relative to another working directory: the same cache, a hit.
    monkeypatch.chdir(tmp_path)
    relative = build(Path("pets") / "train")
    assert built_at(folder) == stamp and relative.files[0].startswith("pets/train/")
    assert relative.folder == str(folder.resolve())

    touched = folder / "dog" / "1.png"
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))
    build(folder)
    assert built_at(folder) != stamp  # a touched file: rebuilt
    stamp = built_at(folder)
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(folder / "owl" / "new.png")
    bigger = build(folder)
    assert built_at(folder) != stamp and len(bigger.files) == 13  # an added file: rebuilt
    assert [e.images for e in list_caches()] == [13, 12] or sorted(e.images for e in list_caches()) == [12, 13]


def _open_in_child(folder: str, cache: str, out: Any) -> None:
    os.environ["ABLATE_CACHE"] = cache
    c = open_cache(Path(folder), listing(Path(folder)), kind="crop", side=18)
    out.put((float(c.images.astype(np.float64).sum()), (Path(c.path) / "index.json").stat().st_mtime_ns))


@pytest.mark.slow
def test_two_processes_building_the_same_cache_build_it_once(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "pets", {"train": 40}, size=(120, 90))
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_open_in_child, args=(str(root / "train"), os.environ["ABLATE_CACHE"], q)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    # Same pixels, and the same index file: the second process read what the first one built.
    assert results[0] == results[1]
    entry = images_root() / entry_name(root / "train", "crop", 18)
    assert sorted(f.name for f in entry.iterdir()) == [".lock", "images.npy", "index.json", "used"]


@pytest.mark.slow
def test_a_corrupt_image_fails_the_build_naming_it_or_is_left_out_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_tree(tmp_path / "pets", {"train": 4})
    bad = root / "train" / "dog" / "2.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg at all")
    with pytest.raises(DataNotFoundError, match=r"dog/2\.jpg: cannot decode image.*skip_bad_images"):
        build(root / "train")
    entry = images_root() / entry_name(root / "train", "crop", 18)
    assert not (entry / "images.npy").exists() and not list(entry.glob("*.tmp*"))  # nothing half-written
    cache = build(root / "train", skip_bad=True)
    assert cache.skipped == {str(bad)}
    with pytest.raises(DataNotFoundError, match=r"2\.jpg"):
        build(root / "train")  # a study that wants every image does not get the shortened cache

    config = tiny(dataset=f"imagefolder:{root}", num_classes=None, image_size=16, skip_bad_images=True, epochs=1,
                  test_split=None)
    feed = image_feed(config, load_dataset(config), device=torch.device("cpu"))
    assert feed.sources is not None
    assert len(feed.sources["train"]) + len(feed.sources["val"]) == 11
    assert "train: 1 unreadable image(s) left out" in capsys.readouterr().err


def test_a_disk_too_small_is_refused_before_writing_with_the_space_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree(tmp_path / "pets", {"train": 4})
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda path: Usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DiskFullError, match=r"needs 64\.0 MB on .*images.*1000 B free.*ABLATE_CACHE"):
        build(root / "train")
    assert not (images_root() / entry_name(root / "train", "crop", 18) / "images.npy").exists()
    # auto falls back to the DataLoader path and says why; on refuses.
    config = tiny(dataset=f"imagefolder:{root}", num_classes=None, image_size=16, epochs=1, test_split=None)
    feed = image_feed(config, load_dataset(config), device=torch.device("cpu"))
    assert feed.sources is None and "PIL + DataLoader" in feed.line and "1000 B free" in feed.line
    on = tiny(dataset=f"imagefolder:{root}", num_classes=None, image_size=16, image_cache="on", test_split=None)
    with pytest.raises(DiskFullError):
        image_feed(on, load_dataset(on), device=torch.device("cpu"))


def test_path_choice_says_which_and_why(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "pets", {"train": 4, "val": 2})
    base = dict(dataset=f"imagefolder:{root}", num_classes=None, image_size=16, val_split="val", test_split=0.25)
    cases = {
        "off": dict(image_cache="off"),
        "randaugment": dict(auto_augment="randaugment"),
        "native": dict(train_resize="none"),
    }
    for words, kw in cases.items():
        config = tiny(**base, **kw)
        feed = image_feed(config, load_dataset(config), device=torch.device("cpu"))
        assert feed.sources is None and "PIL + DataLoader" in feed.line and words in feed.line
    with pytest.raises(StudyError, match="image_cache' is 'on' but auto_augment"):
        on = tiny(**base, auto_augment="randaugment", image_cache="on")
        image_feed(on, load_dataset(on), device=torch.device("cpu"))
    config = tiny(**base, eval_resize="squash")
    ds = load_dataset(config)
    feed = image_feed(config, ds, device=torch.device("cpu"))
    assert feed.sources is not None and set(feed.sources) == {"train", "val", "test"}
    # train and its held-out test share the train/ cache; val/ is its own, squashed for eval.
    assert "train crop 18 px" in feed.line and "val squash 16 px" in feed.line and "test squash 16 px" in feed.line
    assert sorted((e.split, e.kind, e.side) for e in list_caches()) == [("train", "crop", 18), ("val", "squash", 16)]
    assert [len(feed.sources[s]) for s in ("train", "val", "test")] == [len(ds.train), 6, len(ds.test or ())]
    assert sorted((e.split, e.kind, e.side) for e in list_caches()) == [
        ("train", "crop", 18), ("train", "squash", 16), ("val", "squash", 16),
    ]
    # The cache switch is not part of the trial's identity.
    assert config_hash(tiny(**base, image_cache="off")) == config_hash(tiny(**base))


def test_device_resized_crop_shapes_ranges_and_per_image_seeded_draws() -> None:
    x = torch.randint(0, 256, (64, 3, 36, 36), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(5)
    out = random_resized_crop(x, 16, (0.08, 1.0), (3 / 4, 4 / 3), gen, flip_p=0.5)
    assert out.shape == (64, 3, 16, 16) and out.dtype == torch.uint8
    again = random_resized_crop(x, 16, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(5), flip_p=0.5)
    assert torch.equal(out, again)  # seeded: reproducible
    boxes = resized_crop_boxes(2000, 36, 36, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(1), torch.device("cpu"))
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 36).all() and (left + w <= 36).all()
    area = h * w / 36**2
    assert 0.06 < area.min() < 0.15 and area.max() > 0.9  # torchvision's range, about
    assert len(set(boxes.tolist().__iter__().__next__())) > 1 and len({tuple(b) for b in boxes.tolist()}) > 1000

    # A flip-only crop (scale 1, ratio 1): each image either unchanged or mirrored, both occurring.
    y = torch.arange(16 * 16, dtype=torch.float32).view(1, 1, 16, 16).expand(32, 3, 16, 16).to(torch.uint8).contiguous()
    flipped = random_resized_crop(y, 16, (1.0, 1.0), (1.0, 1.0), torch.Generator().manual_seed(0), flip_p=0.5)
    same = (flipped == y).flatten(1).all(1)
    mirrored = (flipped == y.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()


@pytest.mark.slow
def test_tiny_training_through_the_cache_matches_the_loader_path_in_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "pets", {"train": 8, "val": 3})
    base = dict(dataset=f"imagefolder:{root}", num_classes=None, image_size=16, val_split="val", test_split=None,
                epochs=4, batch_size=8, num_workers=0, augment="basic", normalize="imagenet")
    cached = train_trial(tiny(**base))
    line = capsys.readouterr().err
    assert "data: decoded image cache (train crop 18 px, val crop 18 px" in line
    loader = train_trial(tiny(**base, image_cache="off"))
    assert "PIL + DataLoader" in capsys.readouterr().err
    assert cached.error is None and loader.error is None
    # Distinct colours per class: both paths learn them (chance is 1/3).
    assert cached.history[-1].val_acc > 0.5 and loader.history[-1].val_acc > 0.5
    ops = train_trial(tiny(**{**base, "augment": "ops"}, augment_ops=[{"op": "random_resized_crop"}, {"op": "hflip"}, {"op": "color_jitter", "brightness": 0.2}]))
    assert ops.error is None and len(ops.history) == 4


def test_cached_eval_images_are_the_folder_paths_centre_crops(tmp_path: Path) -> None:
    from ablate.data import BatchAugment, LoaderBatches, folder_transforms, resize_side

    root = write_tree(tmp_path / "pets", {"train": 4, "val": 3}, size=(90, 60))
    # Smooth ramps (a shift of a pixel shows; resampling filters barely differ on them).
    yy, xx = np.mgrid[0:60, 0:90]
    for i, f in enumerate(sorted((root / "val").rglob("*.*"))):
        ramp = np.stack([xx * 2.5, yy * 3.5, (xx + yy) * 1.5 + 10 * i], -1)
        Image.fromarray(np.clip(ramp, 0, 255).astype(np.uint8)).save(f, quality=98)
    config = tiny(dataset=f"imagefolder:{root}", num_classes=None, image_size=32, val_split="val", test_split=None,
                  normalize="imagenet")
    ds = load_dataset(config)
    cpu = torch.device("cpu")
    feed = image_feed(config, ds, device=cpu)
    assert feed.sources is not None and ds.val is not None
    kw = dict(mean=ds.mean, std=ds.std, out_channels=3, channels_last=False, device=cpu)
    cached = BatchAugment(config, crop_on_device=False, cached_folder=True, **kw)
    folder = BatchAugment(config, crop_on_device=False, **kw)
    tf = folder_transforms(32, train=False, random_crop=False, auto_augment="none", resize="crop")
    loader = LoaderBatches(ds.val, device=cpu, transform=tf, num_workers=0, pin_memory=False,
                           min_side=resize_side(32))
    (xc, yc), (xl, yl) = next(feed.sources["val"].eval_batches(64)), next(loader.eval_batches(64))
    assert xc.shape == (9, 37, 37, 3) and torch.equal(yc, yl)
    a, b = cached.eval(xc), folder.eval(xl)
    assert a.shape == b.shape == (9, 3, 32, 32)
    # The folder path resized (no crop): the cached crop is its centre within a pixel (two
    # centre crops in a row round their offsets once each), the pixels within resampling noise.
    from torchvision.transforms import v2

    resized = LoaderBatches(ds.val, device=cpu, transform=v2.Resize(resize_side(32), antialias=True), num_workers=0,
                            pin_memory=False, min_side=resize_side(32))
    full = next(resized.eval_batches(64))[0]  # (9, 37, 55, 3)
    errors = {
        (top, left): (a - folder.eval(full[:, top : top + 32, left : left + 32])).abs().mean().item()
        for top in range(full.shape[1] - 31) for left in range(full.shape[2] - 31)
    }
    best = min(errors, key=errors.__getitem__)
    assert abs(best[0] - 2) <= 1 and abs(best[1] - 12) <= 1 and errors[best] < 0.02
    assert (a - b).abs().mean() < 0.06


def test_cli_cache_ls_and_clear(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ablate.cli import app

    def run(*args: str) -> Any:
        return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "ABLATE_CACHE": os.environ["ABLATE_CACHE"]})

    assert "no image caches in" in run("cache", "ls").output
    pets = write_tree(tmp_path / "pets", {"train": 4, "val": 2})
    owls = write_tree(tmp_path / "owls", {"train": 2})
    build(pets / "train")
    build(pets / "val", kind="squash", side=16)
    build(owls / "train", side=24)
    out = run("cache", "ls")
    assert out.exit_code == 0, out.output
    rows = [line.split() for line in out.stdout.splitlines()]
    assert rows[0] == ["dataset", "split", "resolution", "images", "size", "last", "used"]
    assert sorted((r[0], r[1], r[2], r[4], r[5]) for r in rows[1:]) == sorted([
        (str(pets), "train", "18", "crop", "12"), (str(pets), "val", "16", "squash", "6"),
        (str(owls), "train", "24", "crop", "6"),
    ])
    assert "3 cache(s)" in out.stderr
    for args, message in [
        (("cache", "clear"), "give a DATASET or --all"),
        (("cache", "clear", str(tmp_path / "nope")), "no image cache of"),
    ]:
        bad = run(*args)
        assert bad.exit_code == 2 and message in bad.output, bad.output
    cleared = run("cache", "clear", f"imagefolder:{pets}")
    assert cleared.exit_code == 0 and "removed 2 cache(s)" in cleared.output
    assert [e.dataset for e in list_caches()] == [str(owls)]
    assert "removed 1 cache(s)" in run("cache", "clear", "--all").output and list_caches() == []
    assert "cache" in run("-h").output


def test_fused_crops_give_what_the_folder_paths_two_crops_and_flip_give() -> None:
    from ablate.data._augment import crop_and_flip
    from ablate.data._device_augment import crop_twice_and_flip

    s, size, pad = 10, 7, 2
    img = torch.arange(1, s * s + 1, dtype=torch.int32).view(1, s, s, 1).to(torch.uint8)
    # Every outcome of the sequence: a size crop of the S image, zero padding, a crop, a flip.
    possible = set()
    for oy in range(s - size + 1):
        for ox in range(s - size + 1):
            first = torch.nn.functional.pad(img[:, oy : oy + size, ox : ox + size], (0, 0, pad, pad, pad, pad))
            for dy in range(2 * pad + 1):
                for dx in range(2 * pad + 1):
                    out = first[:, dy : dy + size, dx : dx + size]
                    possible |= {out.numpy().tobytes(), out.flip(2).numpy().tobytes()}
    batch = img.expand(4000, s, s, 1).contiguous()
    fused = crop_twice_and_flip(batch, size, pad, True, torch.Generator().manual_seed(0))
    seen = {o.numpy().tobytes() for o in fused}
    assert seen <= possible and len(seen) > 0.9 * len(possible)
    again = crop_twice_and_flip(batch, size, pad, True, torch.Generator().manual_seed(0))
    assert torch.equal(fused, again)  # seeded
    # The batched gather (CUDA's way) gives the same pixels as the per-image copies (CPU's).
    gathered = crop_twice_and_flip(batch, size, pad, True, torch.Generator().manual_seed(0), per_image=False)
    assert torch.equal(fused, gathered)
    assert len({o.numpy().tobytes() for o in fused[:64]}) > 32  # each image its own draw
    # Centre pixel mean: the same distribution as the two steps in a row.
    seq = crop_and_flip(crop_and_flip(batch, 0, False, torch.Generator().manual_seed(1), out=size), pad, True,
                        torch.Generator().manual_seed(2))
    assert abs(fused.float().mean() - seq.float().mean()) < 1.0
    assert abs((fused == 0).float().mean() - (seq == 0).float().mean()) < 0.01


def test_cache_fields_on_a_dataset_that_is_not_an_image_folder_are_refused() -> None:
    from ablate import Study

    with pytest.raises(StudyError, match=r"'image_cache' is set but no trial uses it \(the dataset is not an image folder"):
        Study(name="d", base=dict(dataset="digits", image_cache="on"), seeds=[0]).validate()
    with pytest.raises(StudyError, match=r"'skip_bad_images' is set but no trial uses it \(image_cache is 'off'"):
        Study(name="f", base=dict(dataset="imagefolder:/x", image_cache="off", skip_bad_images=True), seeds=[0]).validate()


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    dict(augment="heavy", rotation=10.0, color_jitter=0.2, erasing_p=0.5),
    dict(augment="basic", train_resize="squash", eval_resize="squash"),
    dict(augment="none", val_split=0.25, test_split=0.25),
])
def test_other_presets_and_layouts_train_from_the_cache(tmp_path: Path, kw: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "pets", {"train": 8, "val": 3, "test": 2})
    base: dict[str, Any] = dict(dataset=f"imagefolder:{root}", num_classes=None, image_size=16, val_split="val",
                                test_split="test", epochs=2, batch_size=8, normalize="imagenet", image_cache="on")
    result = train_trial(tiny(**{**base, **kw}), checkpoint_dir=tmp_path / "ck")
    assert result.status == "completed" and result.test_acc is not None, result.error
    assert "data: decoded image cache" in capsys.readouterr().err
    assert (tmp_path / "ck" / "predictions.npz").exists()


def test_plan_says_which_path_feeds_the_trials_and_what_is_left_to_build(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ablate.cli import app

    root = write_tree(tmp_path / "pets", {"train": 4, "val": 2})
    study = tmp_path / "study.py"
    study.write_text(
        "from ablate import Study\n"
        f"study = Study(name='pets', base=dict(dataset='imagefolder:{root}', image_size=16, val_split='val',\n"
        "    test_split=None, device='cpu'), factors=dict(auto_augment=['none', 'randaugment']), seeds=[0])\n"
    )

    def plan() -> str:
        out = CliRunner().invoke(app, ["plan", str(study)], env={"COLUMNS": "300", "ABLATE_CACHE": os.environ["ABLATE_CACHE"]})
        assert out.exit_code == 0, out.output
        return " ".join(out.output.split())

    first = plan()
    assert "data: decoded image cache (train crop 18 px, val crop 18 px; 17 KB in" in first
    assert "to build on first use" in first and "free" in first
    assert "PIL + DataLoader workers (2 for train): auto_augment 'randaugment' runs image by image" in first
    assert list_caches() == []  # plan builds nothing
    build(root / "train")
    build(root / "val")
    assert "17 KB in " in plan() and ", built" in plan()
