"""Datasets: splits, CIFAR from its pickles, image folders, synthetic data, missing-data errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ablate.data import (
    DATASETS,
    DatasetMissingError,
    InMemoryBatches,
    LoaderBatches,
    balanced_order,
    dataset_channels,
    dataset_source,
    expected_classes,
    folder_transforms,
    load_dataset,
    stratified_split,
)
from ablate.errors import DataNotFoundError, StudyError
from ablate.train import train_trial

from .helpers import tiny


def test_stratified_split_holds_out_the_same_fraction_of_every_class() -> None:
    labels = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
    kept, held = stratified_split(labels, 0.2)
    assert len(np.intersect1d(kept, held)) == 0
    assert len(kept) + len(held) == len(labels)
    assert np.bincount(labels[held]).tolist() == [2, 4, 6, 8, 10]
    again_kept, again_held = stratified_split(labels, 0.2)
    assert np.array_equal(held, again_held) and np.array_equal(kept, again_kept)


def test_balanced_order_prefixes_cover_classes_evenly() -> None:
    labels = np.repeat(np.arange(3), [2, 10, 10])
    order = balanced_order(labels)
    assert sorted(order.tolist()) == list(range(22))
    assert np.bincount(labels[order[:6]]).tolist() == [2, 2, 2]


def test_digits_ships_with_the_package_and_has_three_splits() -> None:
    ds = load_dataset(tiny(dataset="digits", num_classes=None))
    assert ds.num_classes == 10 and ds.channels == 1
    assert ds.train.images is not None and ds.train.images.dtype == np.uint8
    assert ds.train.images.shape[1:] == (8, 8, 1)
    assert ds.test is not None
    assert len(ds.train) + len(ds.val) + len(ds.test) == 1797
    assert len(ds.val) == pytest.approx(0.2 * (len(ds.train) + len(ds.val)), abs=10)
    counts = np.bincount(ds.val.labels)
    assert counts.max() - counts.min() <= 1  # equal class representation


def test_max_train_samples_keeps_classes_balanced() -> None:
    ds = load_dataset(tiny(dataset="digits", num_classes=None, max_train_samples=50))
    assert len(ds.train) == 50
    assert np.bincount(ds.train.labels).tolist() == [5] * 10


def test_synthetic_is_deterministic_and_follows_the_requested_shape() -> None:
    cfg = tiny(num_classes=3, synthetic_samples=30, image_size=10, extra={"synthetic_channels": 1}, val_split="val")
    a, b = load_dataset(cfg), load_dataset(cfg)
    assert a.train.images is not None and b.train.images is not None
    assert a.train.images.shape == (30, 10, 10, 1) and a.channels == 1
    assert np.array_equal(a.train.images, b.train.images)
    assert len(a.val or ()) == len(a.test or ()) == 30
    assert a.val is not None and not np.array_equal(a.train.images, a.val.images)


def test_normalisation_choices() -> None:
    own = load_dataset(tiny())
    pixels = own.train.images.astype(np.float64) / 255  # type: ignore[union-attr]
    assert own.mean == pytest.approx(tuple(pixels.reshape(-1, 3).mean(0)))
    assert load_dataset(tiny(normalize="imagenet")).mean == (0.485, 0.456, 0.406)
    none = load_dataset(tiny(normalize="none"))
    assert none.mean == (0.0, 0.0, 0.0) and none.std == (1.0, 1.0, 1.0)


def _write_cifar10(root: Path, per_batch: int = 4) -> None:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, size=per_batch)],
        }
        (base / name).write_bytes(pickle.dumps(batch))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (base / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))


def test_cifar10_is_read_from_its_pickles_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ABLATE_DATA", str(tmp_path / "data"))
    _write_cifar10(tmp_path / "data")
    ds = load_dataset(tiny(dataset="cifar10", num_classes=None, val_split=0.25))
    assert ds.class_names[:2] == ("airplane", "automobile")
    assert ds.train.images is not None and ds.train.images.shape[1:] == (32, 32, 3)
    assert len(ds.train) + len(ds.val) == 20 and ds.test is not None and len(ds.test) == 4
    assert ds.mean == (0.4914, 0.4822, 0.4465)  # published CIFAR-10 statistics
    # The channel layout survives the HWC transpose: row 0 of the first image's red plane.
    raw = pickle.loads((tmp_path / "data/cifar-10-batches-py/test_batch").read_bytes())[b"data"]
    assert np.array_equal(ds.test.images[0, 0, :, 0], raw[0, :32])  # type: ignore[index]
    cached = list((tmp_path / "cache" / "datasets").glob("cifar10-*.npz"))
    assert len(cached) == 1
    again = load_dataset(tiny(dataset="cifar10", num_classes=None, val_split=0.25))
    assert np.array_equal(again.train.images, ds.train.images)  # type: ignore[arg-type]


def test_missing_cifar_names_the_path_and_the_ways_to_provide_it(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as err:
        load_dataset(tiny(dataset="cifar100", num_classes=None, data_root=str(tmp_path)))
    msg = str(err.value)
    assert str(tmp_path / "cifar-100-python") in msg
    assert "download=True" in msg and "ABLATE_DATA" in msg
    assert "\n" not in msg


def _write_folder(root: Path, splits: dict[str, int], classes: tuple[str, ...] = ("cat", "dog", "owl")) -> None:
    rng = np.random.default_rng(0)
    for split, n in splits.items():
        for k, cls in enumerate(classes):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                h, w = 20 + i % 3, 24 + i % 5
                pixels = np.full((h, w, 3), 40 + 80 * k, np.uint8) + rng.integers(0, 30, (h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(d / f"{i}.png" if i % 2 else d / f"{i}.jpg")


def test_imagefolder_without_val_holds_out_a_stratified_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    _write_folder(tmp_path / "inat", {"train": 10, "test": 2})
    ds = load_dataset(tiny(dataset=f"imagefolder:{tmp_path / 'inat'}", num_classes=None, val_split=0.2))
    assert ds.class_names == ("cat", "dog", "owl") and not ds.in_memory
    assert ds.val is not None and np.bincount(ds.val.labels).tolist() == [2, 2, 2]
    assert len(ds.train) == 24 and ds.test is not None and len(ds.test) == 6
    src = LoaderBatches(
        ds.val, device=torch.device("cpu"),
        transform=folder_transforms(16, train=False, random_crop=False, auto_augment="none"),
        num_workers=0, pin_memory=False,
    )
    x, y = next(src.eval_batches(4))
    assert x.shape == (4, 16, 16, 3) and x.dtype == torch.uint8 and y.tolist() == [0, 0, 1, 1]


@pytest.mark.slow
def test_imagefolder_trains_through_dataloader_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    _write_folder(tmp_path / "f", {"train": 8, "val": 2, "test": 2})
    cfg = tiny(dataset=f"imagefolder:{tmp_path / 'f'}", num_classes=None, image_size=16, num_workers=1, val_split="val",
               epochs=1, batch_size=8, auto_augment="randaugment", augment="heavy")
    result = train_trial(cfg, checkpoint_dir=tmp_path / "ck")
    assert result.status == "completed" and result.test_acc is not None
    preds = np.load(tmp_path / "ck" / "predictions.npz")
    assert preds["images"].shape == (6, 16, 16, 3) and list(preds["class_names"]) == ["cat", "dog", "owl"]


def test_missing_imagefolder_and_class_count_mismatch(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"expected .*nowhere/train/<class>/<image>"):
        load_dataset(tiny(dataset=f"imagefolder:{tmp_path / 'nowhere'}", num_classes=None))
    _write_folder(tmp_path / "f", {"train": 3})
    with pytest.raises(StudyError, match="num_classes"):
        load_dataset(tiny(dataset=f"imagefolder:{tmp_path / 'f'}", num_classes=5, test_split=None))


def test_val_split_zero_trains_on_all_of_train() -> None:
    ds = load_dataset(tiny(dataset="digits", num_classes=None, val_split=0.0))
    full = load_dataset(tiny(dataset="digits", num_classes=None, val_split=0.2))
    assert ds.val is None and full.val is not None
    assert len(ds.train) == len(full.train) + len(full.val) and ds.test is not None


def test_in_memory_batches_are_shuffled_per_seed_and_resized_once() -> None:
    ds = load_dataset(tiny(dataset="digits", num_classes=None))
    src = InMemoryBatches(ds.train, device=torch.device("cpu"), image_size=16)
    assert src.images.shape[1:] == (16, 16, 1)  # 8 px digits upsampled once, kept as uint8
    first = [y for _, y in src.train_batches(64, seed=1)]
    again = [y for _, y in src.train_batches(64, seed=1)]
    other = [y for _, y in src.train_batches(64, seed=2)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])
    assert sorted(torch.cat(first).tolist()) == sorted(ds.train.labels.tolist())


# --- the dataset registry: every registered dataset loads, or is refused with one clear line.

# A study's dataset name per registered entry (a pattern gets a folder made below).
_DATASET_NAMES = {"imagefolder:<path>": "imagefolder:{tmp}/folder"}


@pytest.mark.parametrize("entry", DATASETS.names())
def test_every_registered_dataset_loads_or_says_what_is_missing(entry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    name = _DATASET_NAMES.get(entry, entry).format(tmp=tmp_path)
    cfg = tiny(dataset=name, num_classes=None if entry != "synthetic" else 4, data_root=str(tmp_path / "none"))
    source = dataset_source(cfg)
    assert source is DATASETS.get(entry, where="test")
    try:
        ds = load_dataset(cfg)
    except DatasetMissingError as e:  # absent here: the message names what was expected, on one line
        assert name.split("{")[0] in str(e) and "\n" not in str(e) and "not found" in str(e)
        assert entry not in ("digits", "synthetic")  # those never need files
        return
    assert ds.channels == dataset_channels(cfg) == source.channels_of(cfg)
    assert ds.num_classes == expected_classes(cfg)
    assert ds.in_memory == source.in_memory
    assert ds.train.images is not None and ds.train.images.shape[-1] == ds.channels
    if source.published is not None:
        assert ds.mean == source.published[1]


def test_the_registry_knows_what_loading_would_tell() -> None:
    grey = tiny(extra={"synthetic_channels": 1})
    assert (dataset_channels(grey), expected_classes(grey)) == (1, 4) == (load_dataset(grey).channels, 4)
    digits = tiny(dataset="digits", num_classes=None)
    ds = load_dataset(digits)
    assert (dataset_channels(digits), expected_classes(digits)) == (ds.channels, ds.num_classes) == (1, 10)
    assert expected_classes(tiny(dataset="cifar100", num_classes=None)) == 100
    assert expected_classes(tiny(dataset="imagefolder:x", num_classes=None)) is None  # known once read
    assert DATASETS.names("cifar*") == ["cifar10", "cifar100"]
    assert DATASETS.names("imagefolder*") == ["imagefolder:<path>"]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("cifar1000", "did you mean 'cifar100' or 'cifar10'?"),
        ("digit", "did you mean 'digits'?"),
        ("imagefolder:", "not a known dataset"),  # the pattern needs a path
    ],
)
def test_an_unknown_dataset_names_its_close_matches(name: str, says: str) -> None:
    with pytest.raises(StudyError) as err:
        load_dataset(tiny(dataset=name))
    msg = str(err.value)
    assert msg.startswith(f"field 'dataset' is {name!r}") and says in msg
    assert "(allowed: digits, cifar10, cifar100, synthetic, imagefolder:<path>)" in msg


def test_synthetic_data_needs_a_class_count() -> None:
    with pytest.raises(StudyError, match="field 'num_classes' must be set when dataset is 'synthetic'"):
        load_dataset(tiny(num_classes=None))
