"""Image folders: the decoded cache path against the PIL + DataLoader path (issue 19).

Run by hand (not a test):

    .venv/bin/python bench/imagefolder.py                  # writes bench/results/imagefolder.md
    .venv/bin/python bench/imagefolder.py --quick          # a fast look, nothing written

A folder of real JPEG files is generated in a temporary directory (``--images`` files, 50 classes,
each 240-400 x 200-340 px, smooth colour patterns with noise, quality 90). Then, at 64, 128 and
224 px, with augment "basic" (the folder path's Resize(S) + RandomCrop, then flip) and
normalisation, up to the normalised float batch the model would get:

* cache: ``image_feed`` (the decoded cache, memory-mapped) -> CachedBatches -> BatchAugment.train;
  its build time (first use, fresh cache folder) is reported apart.
* PIL 0 / PIL 2: ``image_cache="off"``: LoaderBatches with 0 and 2 DataLoader workers (PIL decode
  in draft mode, torchvision v2 Resize + RandomCrop) -> BatchAugment.train.

The three are timed over whole epochs of the training split, interleaved (cache, PIL 0, PIL 2,
cache, ...), ``--rounds`` times; medians and the median of the per-round ratios are reported (the
machine is shared, so the load changes between rounds). Last, a small model's whole epoch
(``train_trial``, the second epoch of 2 so that start-up is left out) both ways at 128 px.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablate.data import (  # noqa: E402
    BatchAugment,
    LoaderBatches,
    folder_transforms,
    image_feed,
    load_dataset,
    resize_side,
)
from ablate.study import TrialConfig, make_config  # noqa: E402
from ablate.train import train_trial  # noqa: E402

CLASSES = 50
BATCH = 128
SIZES = (64, 128, 224)
EPOCH_IMAGES = 1000  # training images of the whole-epoch runs (a CPU epoch of the model is slow)


def write_folder(root: Path, n: int) -> None:
    """``n`` JPEG files in ``root/train/<class>/`` with distinct smooth patterns per class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        k = i % CLASSES
        d = root / "train" / f"class_{k:02d}"
        d.mkdir(parents=True, exist_ok=True)
        w, h = int(rng.integers(240, 401)), int(rng.integers(200, 341))
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        coarse[..., k % 3] = 40 + 4 * k
        im = Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR)
        pixels = np.asarray(im, dtype=np.int16) + rng.integers(-12, 13, (h, w, 3), dtype=np.int16)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(d / f"{i}.jpg", quality=90)


def config(root: Path, size: int, **kw: Any) -> TrialConfig:
    base = dict(
        dataset=f"imagefolder:{root}", image_size=size, augment="basic", val_split=None, test_split=None,
        batch_size=BATCH, num_workers=2, device="cpu", normalize="imagenet", epochs=1,
    )
    return make_config({**base, **kw}, where="bench")


def epoch_rate(source: Any, augment: BatchAugment, seed: int) -> float:
    """Images/s of one training epoch of ``source`` through ``augment`` (one torch thread, as the
    trainer runs data work on CPU)."""
    gen = torch.Generator().manual_seed(seed)
    n = 0
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        started = time.perf_counter()
        for x, _ in source.train_batches(BATCH, seed):
            augment.train(x, gen)
            n += len(x)
        return n / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(before)


def data_only(root: Path, size: int, rounds: int, cache_root: Path) -> dict[str, Any]:
    os.environ["ABLATE_CACHE"] = str(cache_root / f"s{size}")
    cfg = config(root, size)
    ds = load_dataset(cfg)
    cpu = torch.device("cpu")
    started = time.perf_counter()
    feed = image_feed(cfg, ds, device=cpu)
    build_s = time.perf_counter() - started
    assert feed.sources is not None, feed.line
    kw: dict[str, Any] = dict(mean=ds.mean, std=ds.std, out_channels=3, channels_last=True, device=cpu)
    cached_aug = BatchAugment(cfg, crop_on_device=False, cached_folder=True, **kw)
    # The folder path as the trainer builds it (_Trial._sources with image_cache 'off').
    folder_aug = BatchAugment(cfg, crop_on_device=False, **kw)
    tf = folder_transforms(size, train=True, random_crop=True, auto_augment="none", resize="crop")
    pil = {w: LoaderBatches(ds.train, device=cpu, transform=tf, num_workers=w, pin_memory=False,
                            min_side=resize_side(size)) for w in (0, 2)}
    rates: dict[str, list[float]] = {"cache": [], "PIL 0": [], "PIL 2": []}
    for r in range(rounds):
        rates["cache"].append(epoch_rate(feed.sources["train"], cached_aug, r))
        for w in (0, 2):
            rates[f"PIL {w}"].append(epoch_rate(pil[w], folder_aug, r))
        print(f"{size} px round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items()), flush=True)
    return {
        "build_s": build_s, "rates": rates, "bytes": feed.sources["train"].images.nbytes, "line": feed.line,
        "vs2": statistics.median(c / p for c, p in zip(rates["cache"], rates["PIL 2"], strict=True)),
        "vs0": statistics.median(c / p for c, p in zip(rates["cache"], rates["PIL 0"], strict=True)),
    }


def whole_epoch(root: Path, size: int, rounds: int) -> dict[str, list[float]]:
    """Seconds of the second epoch of a small CNN trained both ways, alternating."""
    out: dict[str, list[float]] = {"cache": [], "PIL 2": []}
    for _ in range(rounds):
        for name, mode in (("cache", "on"), ("PIL 2", "off")):
            cfg = config(root, size, image_cache=mode, epochs=2, val_split=0.1, cnn_filters=8, cnn_blocks=3,
                         cnn_dense=64, lr=0.05, max_train_samples=EPOCH_IMAGES)
            result = train_trial(cfg)
            assert result.error is None, result.error
            out[name].append(result.history[-1].images_per_s)
            print(f"whole epoch {size} px {name}: {out[name][-1]:.0f} images/s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1000 images, 1 round, nothing written")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "imagefolder.md")
    args = parser.parse_args()
    if args.quick:
        args.images, args.rounds = 1000, 1
    with tempfile.TemporaryDirectory(prefix="ablate-imagefolder-") as tmp:
        root = Path(tmp) / "folder"
        started = time.perf_counter()
        write_folder(root, args.images)
        print(f"wrote {args.images} JPEGs in {time.perf_counter() - started:.1f} s", flush=True)
        loads = [os.getloadavg()[0]]
        results = {size: data_only(root, size, args.rounds, Path(tmp) / "cache") for size in SIZES}
        loads.append(os.getloadavg()[0])
        os.environ["ABLATE_CACHE"] = str(Path(tmp) / "cache" / "s128")
        epochs = whole_epoch(root, 128, max(1, args.rounds - 1))
        loads.append(os.getloadavg()[0])
        folder_bytes = sum(f.stat().st_size for f in root.rglob("*.jpg"))
    med = statistics.median
    lines = [
        "# Image folders: decoded cache vs PIL + DataLoader (bench/imagefolder.py)",
        "",
        f"Command: `.venv/bin/python bench/imagefolder.py --images {args.images} --rounds {args.rounds}`",
        "",
        f"Machine: {os.cpu_count()} cores, torch {torch.__version__}, CPU only. Shared with other jobs while "
        f"this ran (1-minute load average {min(loads):.1f}-{max(loads):.1f} on 2 cores), so images/s swing; "
        "the paths were interleaved epoch by epoch and the ratios are medians of per-round ratios.",
        "",
        f"{args.images} generated JPEG files ({folder_bytes / 2**20:.0f} MB), {CLASSES} classes, 240-400 x "
        f"200-340 px; augment 'basic' (crop + flip), batch {BATCH}, up to the normalised batch (data only, no model).",
        "",
        "| side | cache build (s) | cache size | cache images/s | PIL 0 workers | PIL 2 workers | cache / PIL 2 | cache / PIL 0 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, r in results.items():
        rates = r["rates"]
        lines.append(
            f"| {size} px | {r['build_s']:.1f} | {r['bytes'] / 2**20:.0f} MB | {med(rates['cache']):.0f} | "
            f"{med(rates['PIL 0']):.0f} | {med(rates['PIL 2']):.0f} | **{r['vs2']:.1f}x** | {r['vs0']:.1f}x |"
        )
    ratio = med(c / p for c, p in zip(epochs["cache"], epochs["PIL 2"], strict=True))
    lines += [
        "",
        "Per-round images/s (cache, PIL 0, PIL 2):",
        "",
        *(f"- {size} px: " + "; ".join(
            f"{c:.0f}, {p0:.0f}, {p2:.0f}" for c, p0, p2 in zip(r["rates"]["cache"], r["rates"]["PIL 0"], r["rates"]["PIL 2"], strict=True)
        ) for size, r in results.items()),
        "",
        f"Whole epoch, small CNN (cnn, 3 blocks, 8 filters doubling, dense 64) at 128 px, {EPOCH_IMAGES} "
        "training images (max_train_samples), train_trial's second epoch (images/s of training, 2 threads "
        "for the model; on this CPU the model, not the data, sets this pace):",
        "",
        f"- cache: {', '.join(f'{v:.0f}' for v in epochs['cache'])} images/s; PIL + 2 workers: "
        f"{', '.join(f'{v:.0f}' for v in epochs['PIL 2'])} images/s; **{ratio:.2f}x**",
        "",
        f"Target: cache / PIL 2 workers >= 5x at 128 px: **{results[128]['vs2']:.1f}x**.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
