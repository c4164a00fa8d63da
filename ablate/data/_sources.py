"""Where images come from: digits, CIFAR, synthetic and image folders, split into train/val/test.

Small datasets are returned decoded, as uint8 arrays of shape (N, H, W, C); image folders as
file lists, decoded later by DataLoader workers. Every split that is derived here (the validation
hold-out, digits' test set, ``max_train_samples``) is stratified and uses a fixed seed, so all the
trials of a study are compared on the same images whatever their own seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ablate.errors import DataNotFoundError, StudyError
from ablate.study import cache_dir

if TYPE_CHECKING:
    from ablate.study import TrialConfig

# Derived splits never depend on the trial's seed: replicates differ in training randomness only.
SPLIT_SEED = 0
# Fraction of digits held out as its test set (sklearn's digits ships as one set).
DIGITS_TEST_FRACTION = 0.2
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
IMAGEFOLDER_PREFIX = "imagefolder:"

# Published per-channel statistics (0..1 scale); others are computed from the training images.
CIFAR10_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_MEAN_STD = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class Split:
    """One split: labels plus either decoded images (N, H, W, C uint8) or image file paths."""

    labels: np.ndarray
    images: np.ndarray | None = None
    files: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> Split:
        """The images at ``index``, in that order."""
        return Split(
            labels=self.labels[index],
            images=None if self.images is None else self.images[index],
            files=None if self.files is None else tuple(self.files[i] for i in index),
        )


@dataclass(frozen=True)
class Dataset:
    """The three splits of one dataset and what a model and the normaliser need to know of it."""

    name: str
    train: Split
    val: Split
    test: Split | None
    class_names: tuple[str, ...]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_memory(self) -> bool:
        """True when the images are decoded arrays (augmented per batch on the device)."""
        return self.train.images is not None


def data_root(config: TrialConfig) -> Path:
    """The folder datasets are read from: ``data_root``, else ``$ABLATE_DATA``, else ./data."""
    return Path(config.data_root or os.environ.get("ABLATE_DATA") or "data").expanduser()


def dataset_channels(config: TrialConfig) -> int:
    """Image channels of ``config.dataset`` without loading it (digits: 1, synthetic: as set)."""
    if config.dataset == "digits":
        return 1
    if config.dataset == "synthetic":
        return synthetic_channels(config)
    return 3


def synthetic_channels(config: TrialConfig) -> int:
    # TrialConfig has no channel field; smoke runs of 1-channel datasets set it through ``extra``.
    channels = int(config.extra.get("synthetic_channels", 3))
    if channels not in (1, 3):
        raise StudyError(f"field 'extra.synthetic_channels' is {channels}; allowed: 1, 3")
    return channels


def stratified_split(
    labels: np.ndarray, fraction: float, *, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out), holding out ``fraction`` of every class (at least one image of
    each class with two or more, never all of a class). Both sorted."""
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = round(fraction * len(idx))
        if fraction > 0 and len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        held.append(idx[:k])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held_idx)
    return kept, held_idx


def balanced_order(labels: np.ndarray, *, seed: int = SPLIT_SEED) -> np.ndarray:
    """All indices, shuffled within each class and interleaved round-robin across classes, so that
    any prefix is as balanced as it can be (used for max_train_samples and prediction samples)."""
    rng = np.random.default_rng(seed)
    per_class = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        per_class.append(idx)
    # Rank of each image inside its class, then order by (rank, class).
    rank = np.empty(len(labels), np.int64)
    for idx in per_class:
        rank[idx] = np.arange(len(idx))
    return np.lexsort((labels, rank))


def load_dataset(config: TrialConfig) -> Dataset:
    """Read ``config.dataset`` into train/val/test splits (val held out of train when absent)."""
    name = config.dataset
    if name == "digits":
        ds = _digits(config)
    elif name in ("cifar10", "cifar100"):
        ds = _cifar(config, name)
    elif name == "synthetic":
        ds = _synthetic(config)
    elif name.startswith(IMAGEFOLDER_PREFIX):
        ds = _imagefolder(config, name[len(IMAGEFOLDER_PREFIX) :])
    else:
        raise StudyError(
            f"field 'dataset' is {name!r}; allowed: digits, cifar10, cifar100, synthetic, imagefolder:<path>"
        )
    if config.max_train_samples is not None and config.max_train_samples < len(ds.train):
        keep = np.sort(balanced_order(ds.train.labels)[: config.max_train_samples])
        ds = replace(ds, train=ds.train.subset(keep))
    mean, std = _normalisation(config, ds)
    return replace(ds, mean=mean, std=std)


def _hold_out_val(config: TrialConfig, train: Split, what: str) -> tuple[Split, Split]:
    if config.val_split <= 0:
        raise StudyError(
            f"field 'val_split' is {config.val_split:g} but {what} has no validation split; "
            "allowed: a fraction > 0 such as 0.2"
        )
    kept, held = stratified_split(train.labels, config.val_split)
    return train.subset(kept), train.subset(held)


def _digits(config: TrialConfig) -> Dataset:
    with resources.files("ablate.data").joinpath("digits.npz").open("rb") as f, np.load(f) as z:
        images, labels, names = z["images"], z["labels"], z["class_names"]
    full = Split(labels=labels, images=images)
    kept, test_idx = stratified_split(labels, DIGITS_TEST_FRACTION, seed=SPLIT_SEED + 1)
    train, val = _hold_out_val(config, full.subset(kept), "digits")
    return Dataset("digits", train, val, full.subset(test_idx), tuple(str(n) for n in names), 1, (), ())


# --- CIFAR: python pickles read directly (torchvision only to download), decoded arrays cached.

_CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "batches.meta", b"labels", b"label_names"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", b"fine_labels", b"fine_label_names"),
}


def _cifar(config: TrialConfig, name: str) -> Dataset:
    folder, train_files, test_files, meta_file, label_key, names_key = _CIFAR_LAYOUT[name]
    root = data_root(config)
    base = root / folder
    needed = [base / f for f in [*train_files, *test_files, meta_file]]
    if not all(p.exists() for p in needed) and config.download:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        root.mkdir(parents=True, exist_ok=True)
        cls(str(root), train=True, download=True)
    missing = [p for p in needed if not p.exists()]
    if missing:
        raise DataNotFoundError(
            f"dataset {name!r} not found: expected {missing[0]} (the python version of {name} "
            f"under data_root {root}); set data_root or $ABLATE_DATA to the folder holding "
            f"{folder}/, or set download=True"
        )
    stamp = "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in needed)

    def decode() -> dict[str, np.ndarray]:
        def read(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
            xs, ys = [], []
            for f in files:
                with open(base / f, "rb") as fh:
                    d = pickle.load(fh, encoding="bytes")
                xs.append(np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32))
                ys.append(np.asarray(d[label_key], np.int64))
            return np.concatenate(xs).transpose(0, 2, 3, 1), np.concatenate(ys)

        with open(base / meta_file, "rb") as fh:
            meta = pickle.load(fh, encoding="bytes")
        x_tr, y_tr = read(train_files)
        x_te, y_te = read(test_files)
        names = np.array([n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]])
        return {"x_train": np.ascontiguousarray(x_tr), "y_train": y_tr,
                "x_test": np.ascontiguousarray(x_te), "y_test": y_te, "class_names": names}

    arrays = cached_arrays(f"{name}-{_digest(stamp)}", decode)
    train, val = _hold_out_val(config, Split(arrays["y_train"], arrays["x_train"]), name)
    test = Split(arrays["y_test"], arrays["x_test"])
    names = tuple(str(n) for n in arrays["class_names"])
    return Dataset(name, train, val, test, names, 3, (), ())


# --- synthetic: class prototypes plus noise, deterministic, learnable in an epoch or two.


def _synthetic(config: TrialConfig) -> Dataset:
    assert config.num_classes is not None  # enforced by make_config
    k, size, n = config.num_classes, config.image_size, config.synthetic_samples
    channels = synthetic_channels(config)

    def generate() -> dict[str, np.ndarray]:
        rng = np.random.default_rng([SPLIT_SEED, k, size, channels])
        # Coarse 4x4 colour patterns, mirrored so a horizontal flip keeps the class recognisable.
        grid = rng.uniform(0.0, 1.0, size=(k, 4, 4, channels))
        grid = (grid + grid[:, :, ::-1]) / 2
        cell = -(-size // 4)

        def protos(y: np.ndarray) -> np.ndarray:
            # Per chunk: all classes' prototypes at once are k x size^2 floats (1 GB for 7001
            # classes at 112 px).
            return grid[y].repeat(cell, axis=1).repeat(cell, axis=2)[:, :size, :size].astype(np.float32)

        arrays: dict[str, np.ndarray] = {}
        for split in range(3):
            r = np.random.default_rng([SPLIT_SEED, k, size, channels, n, split])
            labels = r.permutation(np.arange(n) % k).astype(np.int64)
            images = np.empty((n, size, size, channels), np.uint8)
            for start in range(0, n, 256):  # chunks keep the float temporaries small at 224 px
                y = labels[start : start + 256]
                noise = r.normal(0.0, 0.18, size=(len(y), size, size, channels)).astype(np.float32)
                images[start : start + 256] = np.clip(np.rint((0.2 + 0.6 * protos(y) + noise) * 255), 0, 255)
            arrays[f"x{split}"], arrays[f"y{split}"] = images, labels
        return arrays

    # Generating is ~1 s per 10k images at 32 px (the normal draws); reading the cache ~20x less.
    a = cached_arrays(f"synthetic-v1-{k}-{size}-{channels}-{n}", generate)
    train, val, test = (Split(a[f"y{i}"], a[f"x{i}"]) for i in range(3))
    names = tuple(f"class_{i}" for i in range(k))
    return Dataset("synthetic", train, val, test, names, channels, (), ())


# --- image folders: train/ [val/] [test/] with one sub-folder per class.


def _imagefolder(config: TrialConfig, path: str) -> Dataset:
    root = Path(path).expanduser()
    if not root.is_absolute() and not root.exists() and (data_root(config) / root).exists():
        root = data_root(config) / root
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DataNotFoundError(
            f"dataset 'imagefolder:{path}' not found: expected {train_dir}/<class>/<image> "
            "(an ImageFolder layout with train/ and optional val/ and test/ folders)"
        )
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
    if not classes:
        raise DataNotFoundError(f"dataset 'imagefolder:{path}': no class folders in {train_dir}")
    if config.num_classes is not None and config.num_classes != len(classes):
        raise StudyError(
            f"field 'num_classes' is {config.num_classes} but {train_dir} has {len(classes)} "
            "class folders; allowed: that number or None"
        )
    train = _list_split(train_dir, classes, required=True)
    val_dir = next((root / d for d in ("val", "valid", "validation") if (root / d).is_dir()), None)
    if val_dir is not None:
        val = _list_split(val_dir, classes, required=False)
    else:
        train, val = _hold_out_val(config, train, f"{root}")
    test = _list_split(root / "test", classes, required=False) if (root / "test").is_dir() else None
    return Dataset(f"imagefolder:{root}", train, val, test, tuple(classes), 3, (), ())


def _list_split(folder: Path, classes: list[str], *, required: bool) -> Split:
    index = {c: i for i, c in enumerate(classes)}
    files: list[str] = []
    labels: list[int] = []
    for entry in sorted(d for d in folder.iterdir() if d.is_dir()):
        if entry.name not in index:
            raise DataNotFoundError(
                f"{entry}: class folder not in train/ (train has {len(classes)} classes: "
                f"{', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''})"
            )
        found = sorted(
            os.path.join(dirpath, f)
            for dirpath, _, names in os.walk(entry)
            for f in names
            if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not found and required:
            raise DataNotFoundError(f"{entry}: class folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
        files += found
        labels += [index[entry.name]] * len(found)
    if not files:
        raise DataNotFoundError(f"{folder}: no images in its class folders")
    return Split(labels=np.asarray(labels, np.int64), files=tuple(files))


# --- normalisation statistics.


def _normalisation(config: TrialConfig, ds: Dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    c = ds.channels
    if config.normalize == "none":
        return (0.0,) * c, (1.0,) * c
    if config.normalize == "imagenet":
        mean, std = IMAGENET_MEAN_STD
        if c == 1:
            return (float(np.mean(mean)),), (float(np.mean(std)),)
        return mean, std
    if ds.name == "cifar10":
        return CIFAR10_MEAN_STD
    if ds.name == "cifar100":
        return CIFAR100_MEAN_STD
    if ds.train.images is not None:
        return _array_mean_std(ds.train.images)
    return _folder_mean_std(ds)


def _array_mean_std(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std (0..1 scale) of uint8 (N, H, W, C), exact, from 256-bin histograms
    (no float copy of the whole dataset)."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[-1]):
        hist = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
        p = hist / hist.sum()
        mean = float(p @ levels)
        means.append(mean)
        stds.append(max(float(np.sqrt(p @ (levels - mean) ** 2)), 1e-3))
    return tuple(means), tuple(stds)


def _folder_mean_std(ds: Dataset, *, sample: int = 500, side: int = 64) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std of up to ``sample`` training images at ``side`` px, computed once and cached."""
    assert ds.train.files is not None
    order = balanced_order(ds.train.labels)[:sample]
    files = [ds.train.files[i] for i in order]
    key = _digest("|".join(f"{f}:{os.stat(f).st_mtime_ns}" for f in files))
    path = cache_dir() / "stats" / f"mean-std-{key}.json"
    if path.exists():
        stats = json.loads(path.read_text())
        return tuple(stats["mean"]), tuple(stats["std"])
    import torch
    from torchvision.transforms.v2 import functional as TF

    from ablate.data._batches import decode_image

    pixels = torch.stack([TF.resize(decode_image(f, side), [side, side], antialias=True) for f in files])
    mean, std = _array_mean_std(pixels.permute(0, 2, 3, 1).numpy())
    _atomic_write_bytes(path, json.dumps({"mean": mean, "std": std}).encode())
    return mean, std


# --- the on-disk cache of decoded arrays.


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def cached_arrays(key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays stored under ``cache_dir()/datasets/<key>.npz``, built once (written atomically, so
    concurrent workers at worst build twice and never read a half-written file)."""
    path = cache_dir() / "datasets" / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt below
    arrays = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)
    return arrays
