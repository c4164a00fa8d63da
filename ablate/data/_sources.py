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
from collections.abc import Callable, Iterable
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ablate.data._batches import ImageDecodeError, decode_image
from ablate.data._dataset import (
    Dataset,
    DatasetMissingError,
    NamedSplits,
    Split,
    dataset,
    dataset_source,
)
from ablate.errors import DataNotFoundError, StudyError
from ablate.files import cache_dir, write_atomic
from ablate.study import split_source

if TYPE_CHECKING:
    from ablate.study import TrialConfig

# Derived splits never depend on the trial's seed: replicates differ in training randomness only.
SPLIT_SEED = 0
# Fraction of digits held out as its test set (sklearn's digits ships as one set).
DIGITS_TEST_FRACTION = 0.2
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")

IMAGEFOLDER = "imagefolder:<path>"

# Published per-channel statistics (0..1 scale); others are computed from the training images.
CIFAR10_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_MEAN_STD = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def data_root(config: TrialConfig) -> Path:
    """The folder datasets are read from: ``data_root``, else ``$ABLATE_DATA``, else ./data."""
    return Path(config.data_root or os.environ.get("ABLATE_DATA") or "data").expanduser()


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
    """Read ``config.dataset`` into the train/val/test splits its study declares
    (``train_split``, ``val_split``, ``test_split``), normalisation statistics included."""
    ds = _load_splits(config, verify=False)
    mean, std, how = _normalisation(config, ds)
    return replace(ds, mean=mean, std=std, normalization=how)


def check_data(config: TrialConfig) -> Dataset:
    """The splits of ``config`` as training would read them, without normalisation statistics,
    after checking every declared folder (class folders with images, each image file's header
    readable) and the normalisation's channel count. Raises DataNotFoundError / StudyError with
    one line naming the problem. Header checks of an unchanged folder are cached."""
    ds = _load_splits(config, verify=True)
    if config.normalize == "custom" and len(config.mean) != ds.channels:
        raise StudyError(
            f"field 'mean' has {len(config.mean)} values but {config.dataset} has {ds.channels} "
            f"channel(s); give one mean and one std per channel"
        )
    return ds


# The fields that decide which images each split holds (and their normalisation's shape).
_DATA_FIELDS = (
    "dataset", "data_root", "download", "num_classes", "synthetic_samples", "train_split", "val_split",
    "test_split", "split_seed", "max_train_samples", "normalize", "mean", "std",
)  # fmt: skip


def check_study_data(configs: Iterable[TrialConfig], *, missing_ok: bool) -> list[str]:
    """Check the data of every distinct data declaration among ``configs`` (see
    :func:`check_data`); return one line per declaration saying what each split holds.

    An absent dataset (DatasetMissingError) raises unless ``missing_ok``, where it becomes a
    line of its own (``ablate plan`` on a machine without the data)."""
    lines: list[str] = []
    seen: set[str] = set()
    for config in configs:
        key = json.dumps([getattr(config, f) for f in _DATA_FIELDS], default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            ds = check_data(config)
        except DatasetMissingError as e:
            if not missing_ok:
                raise
            line = f"data not checked: {e} (`ablate run --smoke` needs no data)"
            if line not in lines:
                lines.append(line)
            continue
        parts = []
        for name, split in ds.splits().items():
            counts = np.bincount(split.labels, minlength=ds.num_classes)
            parts.append(f"{name} {len(split)} ({counts.min()}-{counts.max()} per class; {ds.sources[name]})")
        lines.append(f"data {config.dataset}: {ds.num_classes} classes; " + "; ".join(parts))
    return lines


def _declared_names(config: TrialConfig) -> dict[str, str]:
    """Named splits the config uses: split name -> the field that declares it."""
    names = {config.train_split: "train_split"}
    for field_name in ("val_split", "test_split"):
        value = split_source(getattr(config, field_name))
        if isinstance(value, str):
            names[value] = field_name
    return names


def _load_splits(config: TrialConfig, *, verify: bool) -> Dataset:
    source = dataset_source(config)
    source.check(config)
    return _assemble(config, source.load(config, config.dataset, _declared_names(config), verify))


def _assemble(config: TrialConfig, named: NamedSplits) -> Dataset:
    """Train, val and test as declared: named splits as they are, fractions held out of train
    (stratified; each fraction is of the whole train split; test first, with its own seed)."""
    train = named.splits[config.train_split]
    train_from = named.describe(config.train_split)
    sources: dict[str, str] = {}
    picked: dict[str, Split | None] = {}
    held_parts: list[str] = []
    for role, field_name, seed in (("test", "test_split", config.split_seed + 1), ("val", "val_split", config.split_seed)):
        value = split_source(getattr(config, field_name))
        if value is None:
            picked[role] = None
        elif isinstance(value, str):
            picked[role] = named.splits[value]
            sources[role] = named.describe(value)
        else:
            fraction = value / (1 - sum(float(v) for v in held_parts)) if held_parts else value
            kept, held = stratified_split(train.labels, fraction, seed=seed)
            if len(held) == 0:
                raise StudyError(
                    f"field {field_name!r} is {value:g}: it holds out no image of {train_from} "
                    f"({len(train)} images); use a larger fraction or a folder"
                )
            picked[role] = train.subset(held)
            train = train.subset(kept)
            sources[role] = f"{value:.0%} of {train_from} held out (stratified, split_seed {seed})"
            held_parts.append(str(value))
    sources["train"] = train_from + (" minus the hold-outs" if held_parts else "")
    if config.max_train_samples is not None and config.max_train_samples < len(train):
        keep = np.sort(balanced_order(train.labels)[: config.max_train_samples])
        train = train.subset(keep)
        sources["train"] += f", capped at {config.max_train_samples} (max_train_samples, class-balanced)"
    return Dataset(
        named.name, train, picked["val"], picked["test"], named.class_names, named.channels, (), (), sources
    )


def _missing_split(config: TrialConfig, named_what: str, split: str, field_name: str, available: list[str]) -> StudyError:
    return StudyError(
        f"field {field_name!r} is {split!r} but {named_what} has no {split!r} split "
        f"(it has: {', '.join(available)}); allowed: one of those, a fraction of train, or None"
    )


def _check_names(config: TrialConfig, what: str, wanted: dict[str, str], available: list[str]) -> None:
    for split, field_name in wanted.items():
        if split not in available:
            raise _missing_split(config, what, split, field_name, available)


@dataset("digits", channels=1, classes=10)
def _digits(config: TrialConfig, name: str, wanted: dict[str, str], verify: bool) -> NamedSplits:
    with resources.files("ablate.data").joinpath("digits.npz").open("rb") as f, np.load(f) as z:
        images, labels, names = z["images"], z["labels"], z["class_names"]
    _check_names(config, "digits", wanted, ["train", "test"])
    full = Split(labels=labels, images=images)
    kept, test_idx = stratified_split(labels, DIGITS_TEST_FRACTION, seed=SPLIT_SEED + 1)
    splits = {"train": full.subset(kept), "test": full.subset(test_idx)}
    describe = {
        "train": "digits' train set",
        "test": "digits' test set (20 % of scikit-learn's digits, fixed seed)",
    }
    return NamedSplits("digits", splits, tuple(str(n) for n in names), 1, describe.__getitem__)


# --- CIFAR: python pickles read directly (torchvision only to download), decoded arrays cached.

_CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "batches.meta", b"labels", b"label_names"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", b"fine_labels", b"fine_label_names"),
}


@dataset("cifar100", classes=100, published=("CIFAR-100", *CIFAR100_MEAN_STD))
@dataset("cifar10", classes=10, published=("CIFAR-10", *CIFAR10_MEAN_STD))
def _cifar(config: TrialConfig, name: str, wanted: dict[str, str], verify: bool) -> NamedSplits:
    _check_names(config, name, wanted, ["train", "test"])
    folder, train_files, test_files, meta_file, label_key, names_key = _CIFAR_LAYOUT[name]
    root = data_root(config)
    base = root / folder
    needed = [base / f for f in [*train_files, *test_files, meta_file]]
    if not all(p.exists() for p in needed) and config.download:
        import torchvision

        cls = getattr(torchvision.datasets, name.upper())  # CIFAR10, CIFAR100
        root.mkdir(parents=True, exist_ok=True)
        cls(str(root), train=True, download=True)
    missing = [p for p in needed if not p.exists()]
    if missing:
        raise DatasetMissingError(
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
    splits = {"train": Split(arrays["y_train"], arrays["x_train"]), "test": Split(arrays["y_test"], arrays["x_test"])}
    names = tuple(str(n) for n in arrays["class_names"])
    return NamedSplits(name, splits, names, 3, lambda split: f"{name}'s official {split} set ({base})")


# --- synthetic: class prototypes plus noise, deterministic, learnable in an epoch or two.


@dataset("synthetic", channels=synthetic_channels, needs_num_classes=True)
def _synthetic(config: TrialConfig, name: str, wanted: dict[str, str], verify: bool) -> NamedSplits:
    assert config.num_classes is not None  # enforced by DatasetSource.check (needs_num_classes)
    _check_names(config, "synthetic", wanted, ["train", "val", "test"])
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
    splits = {name: Split(a[f"y{i}"], a[f"x{i}"]) for i, name in enumerate(("train", "val", "test"))}
    names = tuple(f"class_{i}" for i in range(k))
    return NamedSplits("synthetic", splits, names, channels, lambda split: f"synthetic {split} set ({n} images)")


# --- image folders: a folder per split (train/, val/, test/ or any name), a sub-folder per class.


def imagefolder_root(config: TrialConfig, path: str) -> Path:
    root = Path(path).expanduser()
    if not root.is_absolute() and not root.exists() and (data_root(config) / root).exists():
        root = data_root(config) / root
    return root


@dataset(IMAGEFOLDER, in_memory=False)
def _imagefolder(config: TrialConfig, name: str, wanted: dict[str, str], verify: bool) -> NamedSplits:
    path = name.removeprefix(IMAGEFOLDER.split("<")[0])
    root = imagefolder_root(config, path)
    train_dir = root / config.train_split
    if not root.is_dir():
        raise DatasetMissingError(
            f"dataset 'imagefolder:{path}' not found: expected {train_dir}/<class>/<image> "
            f"(a folder per split, such as {config.train_split}/ and val/, each with a folder per class)"
        )
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    for split, field_name in wanted.items():
        if split not in found:
            raise StudyError(
                f"field {field_name!r} is {split!r} but {root} has no {split}/ folder "
                f"(folders found: {', '.join(found) or 'none'}); set {field_name} to one of them, to a "
                f"fraction of {config.train_split}/ to hold out (e.g. 0.1), or to None"
            )
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataNotFoundError(f"dataset 'imagefolder:{path}': no class folders in {train_dir}")
    if config.num_classes is not None and config.num_classes != len(classes):
        raise StudyError(
            f"field 'num_classes' is {config.num_classes} but {train_dir} has {len(classes)} "
            "class folders; allowed: that number or None"
        )
    splits = {split: _list_split(root / split, classes) for split in wanted}
    if verify:
        for listed in splits.values():
            assert listed.files is not None
            check_image_headers(listed.files)
    return NamedSplits(f"imagefolder:{root}", splits, tuple(classes), 3, lambda split: f"folder {root / split}/")


def _list_split(folder: Path, classes: list[str]) -> Split:
    index = {c: i for i, c in enumerate(classes)}
    files: list[str] = []
    labels: list[int] = []
    for entry in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
        if entry.name not in index:
            raise DataNotFoundError(
                f"{entry}: class folder {entry.name!r} is not a class of the training split (it has "
                f"{len(classes)} classes: {', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''})"
            )
        found = sorted(
            os.path.join(dirpath, f)
            for dirpath, _, names in os.walk(entry)
            for f in names
            if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not found:
            raise DataNotFoundError(f"{entry}: class folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
        files += found
        labels += [index[entry.name]] * len(found)
    if not files:
        raise DataNotFoundError(f"{folder}: no class folders with images")
    return Split(labels=np.asarray(labels, np.int64), files=tuple(files))


def check_image_headers(files: tuple[str, ...]) -> None:
    """Raise DataNotFoundError naming the first file whose image header PIL cannot read.

    Only headers are read (a few KB per file, in threads): a file that is not an image is found
    here; a truncated one only when training decodes it (that trial fails, naming the file).
    The result for an unchanged list of files is cached."""
    key = _digest("|".join(f"{f}:{(st := os.stat(f)).st_size}:{st.st_mtime_ns}" for f in files))
    stamp = cache_dir() / "checks" / f"headers-{key}.ok"
    if stamp.exists():
        return
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    def bad(path: str) -> str | None:
        try:
            with Image.open(path) as im:
                im.size  # noqa: B018 - the header is parsed by open(); size proves it
        except Exception as e:  # PIL raises many kinds: UnidentifiedImageError, OSError, SyntaxError...
            return f"{path}: not a readable image ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        for problem in pool.map(bad, files, chunksize=64):
            if problem is not None:
                raise DataNotFoundError(problem)
    write_atomic(stamp, b"ok\n")


# --- normalisation statistics.


def _normalisation(config: TrialConfig, ds: Dataset) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """(mean, std, how they were obtained) on the 0..1 scale, one value per channel."""
    mean: tuple[float, ...]
    std: tuple[float, ...]
    c = ds.channels
    mode = config.normalize
    if mode == "none":
        return (0.0,) * c, (1.0,) * c, "none (x / 255)"
    if mode == "custom":
        if len(config.mean) != c:
            raise StudyError(
                f"field 'mean' has {len(config.mean)} values but {config.dataset} has {c} channel(s)"
            )
        return tuple(config.mean), tuple(config.std), "custom (mean/std of the study)"
    if mode == "imagenet":
        mean, std = IMAGENET_MEAN_STD
        if c == 1:
            return (float(np.mean(mean)),), (float(np.mean(std)),), "ImageNet's (averaged over RGB)"
        return mean, std, "ImageNet's"
    published = dataset_source(config).published
    if mode == "dataset" and published is not None:
        whose, mean, std = published
        return mean, std, f"published {whose} statistics"
    if ds.train.images is not None:
        return (*_array_mean_std(ds.train.images), f"computed from the training split ({len(ds.train)} images)")
    mean, std = _folder_mean_std(ds, skip_bad=config.skip_bad_images)
    n = min(len(ds.train), 500)
    return mean, std, f"computed from {n} class-balanced training images at 64 px"


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


def _folder_mean_std(
    ds: Dataset, *, sample: int = 500, side: int = 64, skip_bad: bool = False
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std of up to ``sample`` training images at ``side`` px, computed once and cached
    (``skip_bad``: unreadable files left out of the sample, as skip_bad_images leaves them out)."""
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

    def readable(f: str) -> torch.Tensor | None:
        try:
            return decode_image(f, side)
        except ImageDecodeError:
            if skip_bad:
                return None
            raise

    decoded = [im for im in map(readable, files) if im is not None]
    pixels = torch.stack([TF.resize(im, [side, side], antialias=True) for im in decoded])
    mean, std = _array_mean_std(pixels.permute(0, 2, 3, 1).numpy())
    write_atomic(path, json.dumps({"mean": mean, "std": std}))
    return mean, std


# --- the on-disk cache of decoded arrays.


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    write_atomic(
        path, lambda f: np.savez(f, **arrays),  # type: ignore[arg-type]
        needed_bytes=lambda: sum(a.nbytes for a in arrays.values()),
    )
    return arrays
