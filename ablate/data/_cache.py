"""The decoded image cache: an image folder's split decoded once, shared by every trial.

An ablation feeds the same JPEGs to 3-30 trials; on a machine with few cores the DataLoader
workers re-decoding them every epoch, not the GPU, set the pace. So a split folder is decoded
once, in parallel on all cores, into one uint8 array ``(N, S, S, 3)`` stored as a ``.npy`` file
that every trial and every process of the machine memory-maps (the page cache holds it once).

What is stored (the choice, and why): each image as the folder path's own sizing would leave it
before its crop, made square.

* ``crop`` (train_resize / eval_resize ``crop``, and augment_ops' random_resized_crop): the short
  side resized to ``S = resize_side(image_size, crop_ratio)`` (146 px for 128, 256 for 224), then
  the centre ``S x S`` square. The evaluation centre crop is then the folder path's (to within a
  pixel: each of the two centre crops rounds its offset); a
  training random crop is drawn from the centre square of a non-square photo instead of its whole
  long side, and random_resized_crop's area is a fraction of that square (a photo of aspect 4:3
  loses an eighth of its width at each end; square images lose nothing).
* ``squash``: the whole image resized to ``image_size x image_size``, as the folder path does.

Native size (resize ``none``) is not cached: images of different sizes do not stack.

Files, per split folder and sizing, under ``cache_dir()/images/<folder>-<hash>-<kind><S>/``:
``images.npy`` (the array), ``index.json`` (the folder, every file with its size and mtime, the
files left out as unreadable) and ``used`` (touched at each use: ``ablate cache ls``'s last use).
A cache is valid while the folder lists the same files with the same sizes and mtimes; else it
is rebuilt. A build holds an exclusive ``fcntl`` lock on the entry, writes the array under a
temporary name and ``os.replace``-s it, then the index: a process that finds the lock taken waits
and then reads what the first one built. The disk space is checked before anything is written.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from ablate.errors import DataNotFoundError, DiskFullError, StudyError
from ablate.files import cache_dir, human_bytes, write_atomic

if TYPE_CHECKING:
    from ablate.data._dataset import Dataset, Split
    from ablate.study import TrialConfig

CACHE_VERSION = 1
CACHE_KINDS = ("crop", "squash")
# Images per decoding task: large enough that the pool's overhead is small, small enough that
# the progress bar moves and all cores get work.
CHUNK = 64
# Room kept free beside the cache (the index, the filesystem's own needs).
DISK_MARGIN = 64 << 20


def images_root() -> Path:
    """Where decoded image caches live: ``cache_dir()/images`` ($ABLATE_CACHE/images, else
    ~/.cache/ablate/images)."""
    return cache_dir() / "images"


def cache_bytes(n: int, side: int) -> int:
    """Bytes of a cache of ``n`` RGB images of ``side`` px (the .npy header aside)."""
    return n * side * side * 3


def fingerprint(folder: Path, files: Sequence[str]) -> str:
    """Digest of the file list (relative to ``folder``: the same from any working directory)
    with each file's size and mtime: changes when a file is added, removed, replaced or touched."""
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.relpath(f, folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def entry_name(folder: Path, kind: str, side: int) -> str:
    """Folder name of one cache: readable (the dataset and split folder) and unique (a hash of
    the folder's absolute path)."""
    folder = folder.resolve()
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{folder.parent.name}-{folder.name}")[:60]
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:10]
    return f"{readable}-{digest}-{kind}{side}"


@dataclass(frozen=True)
class ImageCache:
    """One built cache: the files of a split folder (in the listing's order) and their decoded
    images (a read-only memory map), with the files left out as unreadable."""

    path: Path
    folder: str
    kind: str
    side: int
    files: tuple[str, ...]
    skipped: frozenset[str]
    images: np.ndarray

    @property
    def nbytes(self) -> int:
        return cache_bytes(len(self.files), self.side)

    def rows(self, files: Sequence[str]) -> np.ndarray:
        """Row of each of ``files`` (all of them in this cache)."""
        where = {f: i for i, f in enumerate(self.files)}
        return np.fromiter((where[f] for f in files), np.int64, len(files))


# --- decoding (in worker processes: PIL and numpy only)


def decode_square(path: str, kind: str, side: int) -> np.ndarray:
    """One image file as uint8 (side, side, 3) RGB, sized as the cache stores it (see the module
    docstring). JPEGs are decoded at the smallest DCT scale still at least ``side`` px (PIL's
    draft mode, as the folder path's workers do). Raises ValueError naming the file."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft("RGB", (side, side))
            rgb = im.convert("RGB")
            w, h = rgb.size
            if kind == "squash":
                out = rgb.resize((side, side), Image.Resampling.BILINEAR)
            else:
                # torchvision's Resize(side): the short side to side, the long one truncated.
                nw, nh = (side, int(side * h / w)) if w <= h else (int(side * w / h), side)
                nw, nh = max(nw, side), max(nh, side)
                out = rgb.resize((nw, nh), Image.Resampling.BILINEAR) if (nw, nh) != (w, h) else rgb
                left, top = round((nw - side) / 2), round((nh - side) / 2)
                out = out.crop((left, top, left + side, top + side))
            return np.asarray(out, dtype=np.uint8)
    except Exception as e:  # PIL raises OSError, UnidentifiedImageError, SyntaxError, ValueError...
        raise ValueError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None


def _decode_rows(target: str, start: int, files: list[str], kind: str, side: int) -> list[tuple[str, str]]:
    """Decode ``files`` into rows ``start...`` of the .npy file ``target`` (opened here: no image
    crosses a process boundary); (file, message) of those that failed (their rows stay zero)."""
    out = np.load(target, mmap_mode="r+")
    bad: list[tuple[str, str]] = []
    for i, f in enumerate(files):
        try:
            out[start + i] = decode_square(f, kind, side)
        except ValueError as e:
            bad.append((f, str(e)))
    out.flush()
    del out
    return bad


# --- opening and building


def check_space(root: Path, needed: int, what: str) -> None:
    """Raise DiskFullError, before anything is written, when ``root``'s disk lacks ``needed``
    bytes (and a margin)."""
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if free < needed + DISK_MARGIN:
        raise DiskFullError(
            f"no space for {what}: it needs {human_bytes(needed + DISK_MARGIN)} on {root}, "
            f"{human_bytes(free)} free; free space, point $ABLATE_CACHE at a larger disk, or set image_cache='off'"
        )


def _read_index(path: Path) -> dict[str, Any] | None:
    try:
        index = json.loads((path / "index.json").read_text())
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) and index.get("version") == CACHE_VERSION else None


def _open(path: Path, index: dict[str, Any], folder: Path, files: Sequence[str]) -> ImageCache | None:
    """The cache at ``path`` with the caller's own spelling of its folder and files (the index
    holds them relative to the folder, in the same order: the fingerprints matched)."""
    files = tuple(files)
    try:
        images = np.load(path / "images.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    if images.shape != (len(files), index["side"], index["side"], 3) or images.dtype != np.uint8:
        return None
    with contextlib.suppress(OSError):
        (path / "used").touch()
    return ImageCache(
        path, index["folder"], index["kind"], index["side"], files,
        frozenset(os.path.join(str(folder), f) for f in index.get("skipped", [])), images,
    )


def _valid(path: Path, folder: Path, files: Sequence[str], stamp: str, skip_bad: bool) -> ImageCache | None:
    index = _read_index(path)
    if index is None or index.get("fingerprint") != stamp:
        return None
    if index.get("skipped") and not skip_bad:
        return None  # built leaving files out; this study wants them (the build names the first)
    return _open(path, index, folder, files)


@contextlib.contextmanager
def _locked(path: Path, what: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process building {what}", file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def open_cache(
    folder: Path, files: Sequence[str], *, kind: str, side: int, skip_bad: bool = False,
    progress: IO[str] | None = None, stamp: str | None = None,
) -> ImageCache:
    """The cache of split folder ``folder`` (whose images are ``files``, in order) at ``kind`` /
    ``side``, built first if absent or stale. Raises DataNotFoundError naming an unreadable file
    (unless ``skip_bad``: then such files are left out and listed in ``skipped``) and
    DiskFullError when the disk cannot hold it. ``stamp``: ``fingerprint(folder, files)`` when the
    caller has it (a stat of every file)."""
    if kind not in CACHE_KINDS:
        raise ValueError(f"cache kind {kind!r}; allowed: {', '.join(CACHE_KINDS)}")
    path = images_root() / entry_name(folder, kind, side)
    stamp = stamp or fingerprint(folder, files)
    cache = _valid(path, folder, files, stamp, skip_bad)
    if cache is not None:
        return cache
    what = f"the image cache of {folder} at {side} px"
    with _locked(path, what):
        cache = _valid(path, folder, files, stamp, skip_bad)  # built by the process that held the lock
        if cache is None:
            _build(path, folder, list(files), kind, side, stamp, skip_bad, what, progress)
            cache = _valid(path, folder, files, stamp, skip_bad)
    assert cache is not None, f"{path}: the cache just built does not open"
    return cache


def _build(
    path: Path, folder: Path, files: list[str], kind: str, side: int, stamp: str, skip_bad: bool,
    what: str, progress: IO[str] | None,
) -> None:
    n = len(files)
    need = cache_bytes(n, side) + 4096
    check_space(path, need, what)
    (path / "index.json").unlink(missing_ok=True)  # readers without the lock: stale from here on
    target = path / "images.npy"
    tmp = path / f".images.{os.getpid()}.tmp.npy"
    started = time.perf_counter()
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, side, side, 3))
        out.flush()
        del out
        bad = _decode_all(str(tmp), files, kind, side, f"{n} images at {side} px ({human_bytes(need)}) into the cache of {folder}", progress)
        if bad and not skip_bad:
            raise DataNotFoundError(
                f"{bad[0][1]}; {len(bad)} unreadable image(s) in {folder}: fix or remove them, or set "
                "skip_bad_images=True to leave them out"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    skipped = [os.path.relpath(f, folder) for f, _ in bad]
    index = {
        "version": CACHE_VERSION, "folder": str(folder.resolve()), "kind": kind, "side": side,
        "n": n, "bytes": cache_bytes(n, side), "fingerprint": stamp,
        "files": [os.path.relpath(f, folder) for f in files], "skipped": skipped,
        "built_s": round(time.perf_counter() - started, 3), "built_at": time.time(),
    }
    write_atomic(path / "index.json", json.dumps(index))
    (path / "used").touch()


def _workers(n_tasks: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_tasks))


def _decode_all(
    target: str, files: list[str], kind: str, side: int, label: str, stream: IO[str] | None
) -> list[tuple[str, str]]:
    """Decode every file into ``target`` on all cores with a progress bar; the failures."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    tasks = [(start, files[start : start + CHUNK]) for start in range(0, len(files), CHUNK)]
    workers = _workers(len(tasks))
    bad: list[tuple[str, str]] = []
    console = Console(file=stream or sys.stderr)
    columns = (TextColumn("decoding {task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=len(files))
        if workers == 1:
            for start, chunk in tasks:
                bad += _decode_rows(target, start, chunk, kind, side)
                bar.advance(task, len(chunk))
        else:
            # fork: the workers need nothing but this module's functions (PIL and numpy), and a
            # forked worker starts in milliseconds where a spawned one re-imports the program.
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {pool.submit(_decode_rows, target, s, c, kind, side): len(c) for s, c in tasks}
                for done in as_completed(futures):
                    bad += done.result()
                    bar.advance(task, futures[done])
    return sorted(bad)


# --- what `ablate cache ls / clear` shows and removes


@dataclass(frozen=True)
class CacheEntry:
    """One cache on disk, as ``ablate cache ls`` lists it."""

    path: Path
    folder: str
    kind: str
    side: int
    images: int
    bytes_on_disk: int
    last_used: float
    skipped: int

    @property
    def dataset(self) -> str:
        """The dataset folder (the split folder's parent) and the split."""
        return str(Path(self.folder).parent)

    @property
    def split(self) -> str:
        return Path(self.folder).name


def list_caches() -> list[CacheEntry]:
    """Every cache under :func:`images_root`, most recently used first (half-built or damaged
    entries too, with what can be read of them, so that ``clear`` can remove them)."""
    root = images_root()
    if not root.is_dir():
        return []
    entries = []
    for path in sorted(p for p in root.iterdir() if p.is_dir()):
        index = _read_index(path) or {}
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        used = path / "used"
        last = used.stat().st_mtime if used.exists() else path.stat().st_mtime
        entries.append(CacheEntry(
            path, index.get("folder", f"? ({path.name}: incomplete)"), index.get("kind", "?"),
            int(index.get("side", 0)), int(index.get("n", 0)), size, last, len(index.get("skipped", [])),
        ))
    return sorted(entries, key=lambda e: -e.last_used)


def clear_caches(dataset: str | None = None) -> list[CacheEntry]:
    """Remove every cache (``dataset`` None) or those of one dataset: a dataset folder (all its
    splits), one split folder, or ``imagefolder:<path>``. Returns what was removed."""
    entries = list_caches()
    if dataset is not None:
        wanted = Path(dataset.removeprefix("imagefolder:")).expanduser()
        names = {str(wanted), str(wanted.resolve()) if wanted.exists() else str(wanted)}

        def matches(e: CacheEntry) -> bool:
            return bool({e.folder, e.dataset, str(Path(e.folder).resolve().parent), str(Path(e.folder).resolve())} & names)

        entries = [e for e in entries if matches(e)]
    for e in entries:
        with _locked(e.path, f"the image cache of {e.folder}"):
            shutil.rmtree(e.path, ignore_errors=True)
    return entries


# --- which path feeds a trial's image folder


@dataclass(frozen=True)
class CacheFeed:
    """The batch sources of a trial fed from the decoded cache (None: the DataLoader path) and
    the one line saying which path feeds it and why."""

    sources: dict[str, Any] | None
    line: str


def _split_folder(root: Path, files: Sequence[str]) -> Path:
    # Every image of a split comes from one split folder (hold-outs from the training one).
    return root / Path(files[0]).relative_to(root).parts[0]


@dataclass(frozen=True)
class _FeedPlan:
    """What :func:`image_feed` decides before opening anything: the DataLoader path and why, or
    the caches each split reads (split -> (folder, kind, side)), which of them are to be built
    and the bytes that takes."""

    loader: str | None  # the line of the DataLoader path, None for the cache
    wanted: dict[str, tuple[Path, str, int]]
    listings: dict[Path, Split]
    stamps: dict[Path, str]
    need: int
    free: int


def _plan_feed(config: TrialConfig, ds: Dataset) -> _FeedPlan:
    from ablate.data._augment import SIZED_BY_OP, resize_modes
    from ablate.data._batches import resize_side
    from ablate.data._sources import IMAGEFOLDER, _list_split, imagefolder_root

    loader = f"data: PIL + DataLoader workers ({config.num_workers} for train)"
    mode = config.image_cache
    train_mode, eval_mode = resize_modes(config, in_memory=False)
    why_not = None
    if mode == "off":
        why_not = "image_cache is 'off'"
    elif "none" in (train_mode, eval_mode):
        why_not = "resize 'none' feeds native sizes, which the square cache does not hold"
    elif config.auto_augment != "none":
        why_not = f"auto_augment {config.auto_augment!r} runs image by image in the DataLoader workers"
    if why_not is not None:
        if mode == "on":
            raise StudyError(f"field 'image_cache' is 'on' but {why_not}; use image_cache 'auto' or 'off'")
        return _FeedPlan(f"{loader}: {why_not}", {}, {}, {}, 0, 0)

    root = imagefolder_root(config, config.dataset.removeprefix(IMAGEFOLDER.split("<")[0]))
    crop = ("crop", resize_side(config.image_size, config.crop_ratio))
    kind_of = {"crop": crop, SIZED_BY_OP: crop, "squash": ("squash", config.image_size)}
    wanted: dict[str, tuple[Path, str, int]] = {}
    for name, split in ds.splits().items():
        assert split.files is not None
        kind, side = kind_of[train_mode if name == "train" else eval_mode]
        wanted[name] = (_split_folder(root, split.files), kind, side)
    listings = {folder: _list_split(folder, list(ds.class_names)) for folder, _, _ in wanted.values()}
    stamps = {folder: fingerprint(folder, _files(split)) for folder, split in listings.items()}
    missing = {
        (folder, kind, side): len(listings[folder])
        for folder, kind, side in wanted.values()
        if _valid(images_root() / entry_name(folder, kind, side), folder, _files(listings[folder]), stamps[folder],
                  config.skip_bad_images) is None
    }
    need = sum(cache_bytes(n, side) for (_, _, side), n in missing.items())
    images_root().mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(images_root()).free
    if missing and free < need + DISK_MARGIN and mode == "auto":
        return _FeedPlan((
            f"{loader}: the decoded cache would need {human_bytes(need + DISK_MARGIN)} on {images_root()}, "
            f"{human_bytes(free)} free (image_cache 'auto'; point $ABLATE_CACHE at a larger disk)"
        ), {}, {}, {}, need, free)
    return _FeedPlan(None, wanted, listings, stamps, need, free)


def _sizes(plan: _FeedPlan) -> tuple[str, str]:
    """("train crop 146 px, val crop 146 px", the caches' total size)."""
    sizes = ", ".join(f"{name} {kind} {side} px" for name, (_, kind, side) in plan.wanted.items())
    total = sum(cache_bytes(len(plan.listings[f]), side) for f, _, side in dict.fromkeys(plan.wanted.values()))
    return sizes, human_bytes(total)


def describe_feed(config: TrialConfig, ds: Dataset) -> str:
    """The line ``ablate plan`` shows for an image folder: which path will feed its trials and,
    for the cache, how much of it is still to be built (and the free space)."""
    plan = _plan_feed(config, ds)
    if plan.loader is not None:
        return plan.loader
    sizes, total = _sizes(plan)
    line = f"data: decoded image cache ({sizes}; {total} in {images_root()})"
    if not plan.need:
        return line + ", built"
    line += f": {human_bytes(plan.need)} to build on first use, {human_bytes(plan.free)} free"
    if plan.free < plan.need + DISK_MARGIN:
        line += " - not enough: image_cache 'on' will refuse to run"
    return line


def image_feed(config: TrialConfig, ds: Dataset, *, device: Any, progress: IO[str] | None = None) -> CacheFeed:
    """Choose how an image folder feeds the trial (``image_cache``) and, for the cache, open
    (building where needed) the caches of its splits as :class:`CachedBatches` by split name.

    ``auto`` takes the cache unless ``auto_augment`` (a per-image policy of the DataLoader
    workers), native size (resize ``none``) or a disk without room for it need the workers;
    ``on`` refuses those with a StudyError / DiskFullError instead."""
    from ablate.data._batches import CachedBatches

    plan = _plan_feed(config, ds)
    if plan.loader is not None:
        return CacheFeed(None, plan.loader)
    wanted, listings, stamps = plan.wanted, plan.listings, plan.stamps

    def source(name: str) -> CachedBatches:
        folder, kind, side = wanted[name]
        cache = open_cache(
            folder, _files(listings[folder]), kind=kind, side=side, skip_bad=config.skip_bad_images,
            progress=progress, stamp=stamps[folder],
        )
        split = ds.splits()[name]
        assert split.files is not None
        keep = np.fromiter((f not in cache.skipped for f in split.files), bool, len(split))
        if not keep.all():
            first = next(f for f, k in zip(split.files, keep, strict=True) if not k)
            print(f"{name}: {int((~keep).sum())} unreadable image(s) left out (skip_bad_images), such as {first}",
                  file=progress or sys.stderr, flush=True)
        files = [f for f, k in zip(split.files, keep, strict=True) if k]
        return CachedBatches(cache.images, cache.rows(files), split.labels[keep], device=device, pin_memory=config.pin_memory)

    # The test split's cache is opened (built) only when the final evaluation first reads it:
    # no test image is decoded before the trial's epochs and model selection are over.
    sources: dict[str, Any] = {name: source(name) for name in wanted if name != "test"}
    if "test" in wanted:
        sources["test"] = LazySource(lambda: source("test"))
    sizes, total = _sizes(plan)
    line = f"data: decoded image cache ({sizes}; {total} in {images_root()}), augmented on the device"
    return CacheFeed(sources, line)


class LazySource:
    """A batch source made on its first use (the test split's cached batches)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._source: Any = None

    def _made(self) -> Any:
        if self._source is None:
            self._source = self._make()
        return self._source

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    def __len__(self) -> int:
        return len(self._made())


def _files(split: Split) -> tuple[str, ...]:
    assert split.files is not None
    return split.files
