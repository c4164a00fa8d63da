"""Throughput of the trainer against a compute-only loop and the seeds' data pipeline.

Run by hand (not a test):

    .venv/bin/python bench/trainer.py                    # writes bench/results/trainer.md
    .venv/bin/python bench/trainer.py --reps 1 --quick   # a fast look, nothing written

Small CNN (the ``cnn`` model at its defaults: 3 blocks, 32 filters doubling, batch norm, dense 128)
on 32 px RGB images, 10 classes, batch 128, SGD with momentum, fp32 on CPU (2 threads).

* trainer: ``train_trial`` on synthetic data held as uint8 in memory, crop+flip augmentation per
  batch, channels_last.
* compute-only: the same model, optimizer, batch and memory format stepping on one pre-built,
  already normalised batch: the ceiling for any data pipeline.
* seeds' pipeline: what the seed write-ups used: a dataset of PIL images (``Image.fromarray`` per
  item, as torchvision's CIFAR does), RandomCrop(32, padding=4) + RandomHorizontalFlip +
  ToTensor + Normalize, a DataLoader with 0 and with 2 workers, NCHW model, ``loss.item()`` per
  batch.

The machine is shared, so load comes and goes within seconds. To expose every pipeline to the
same load, the measurement is interleaved finely: the trainer's reporter hook (``on_batch``, every
10 batches) runs 10 batches of compute-only and 10 of the seeds' 0-worker loop each time, so the
three alternate A B C A B C ... in ~1 s slices; each slice is one sample, medians are reported.
The 2-worker loader cannot be sliced fairly (its workers prefetch while others run), so it is
measured per epoch, alternating with the second epoch of a trainer run without the hook
(A B A B ...).

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablate.data import BatchAugment, InMemoryBatches, load_dataset  # noqa: E402
from ablate.study import TrialConfig, make_config  # noqa: E402
from ablate.train import EpochMetrics, environment, train_trial  # noqa: E402
from ablate.train._models import build_model  # noqa: E402

BATCH = 128
CLASSES = 10
SIZE = 32
SLICE = 10  # batches per interleaved slice (the trainer's on_batch cadence)


def config(batches: int, epochs: int) -> TrialConfig:
    return make_config(
        dict(dataset="synthetic", num_classes=CLASSES, image_size=SIZE, synthetic_samples=batches * BATCH,
             batch_size=BATCH, epochs=epochs, model="cnn", augment="basic", optimizer="sgd", lr=0.05,
             momentum=0.9, weight_decay=5e-4, scheduler="cosine", device="cpu", prediction_samples=0),
        where="bench",
    )


def _sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)


class ComputeOnly:
    """The same model and optimizer stepping on one pre-built channels_last batch."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = build_model(config(1, 1), in_chans=3, num_classes=CLASSES).to(memory_format=torch.channels_last)
        self.model.train()
        self.opt = _sgd(self.model)
        self.x = torch.randn(BATCH, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
        self.y = torch.randint(0, CLASSES, (BATCH,))
        self.run(3)  # warm-up

    def run(self, steps: int) -> float:
        """images/s over ``steps`` steps."""
        start = time.perf_counter()
        for _ in range(steps):
            loss = F.cross_entropy(self.model(self.x), self.y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return steps * BATCH / (time.perf_counter() - start)


class _PilImages(torch.utils.data.Dataset[tuple[Any, int]]):
    """CIFAR-style: uint8 arrays turned into a PIL image per item, like torchvision's CIFAR10."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any) -> None:
        self.images = images
        self.labels = [int(v) for v in labels]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def seeds_dataset(batches: int) -> _PilImages:
    from torchvision import transforms as T

    ds = load_dataset(config(batches, 1))
    tf = T.Compose([T.RandomCrop(SIZE, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(ds.mean, ds.std)])
    assert ds.train.images is not None
    return _PilImages(ds.train.images, ds.train.labels, tf)


class SeedsLoop:
    """The seeds' training loop: DataLoader of PIL transforms, NCHW model, loss.item() per batch."""

    def __init__(self, dataset: _PilImages, workers: int) -> None:
        torch.manual_seed(0)
        self.model = build_model(config(1, 1), in_chans=3, num_classes=CLASSES)  # NCHW, as in the seeds
        self.model.train()
        self.opt = _sgd(self.model)
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_size=BATCH, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
        )
        self.batches: Iterator[Any] = iter(())

    def _next(self) -> Any:
        try:
            return next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            return next(self.batches)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.item())

    def run(self, steps: int) -> float:
        """images/s over the next ``steps`` batches (the iterator carries on across calls)."""
        start = time.perf_counter()
        running = 0.0
        for _ in range(steps):
            x, y = self._next()
            running += self._step(x, y)
        return steps * BATCH / (time.perf_counter() - start)

    def epoch(self) -> float:
        """images/s over one whole epoch of the loader."""
        start = time.perf_counter()
        seen = 0
        for x, y in self.loader:
            self._step(x, y)
            seen += len(y)
        return seen / (time.perf_counter() - start)


class Interleaver:
    """Reporter for train_trial: times the trainer between its on_batch calls and runs a slice of
    every other pipeline inside each call (A B C A B C ...)."""

    def __init__(self, others: dict[str, Any]) -> None:
        self.others = others
        self.rates: dict[str, list[float]] = {"trainer": [], **{k: [] for k in others}}
        self.mark: float | None = None
        self.epochs: list[EpochMetrics] = []
        # trainer / other, from a trainer slice and the slices run right after it.
        self.paired: dict[str, list[float]] = {k: [] for k in others}

    def on_batch(self, epoch: int, batch: int, n_batches: int, loss: float | None) -> None:
        now = time.perf_counter()
        trainer = SLICE * BATCH / (now - self.mark) if self.mark is not None else None
        if trainer is not None:  # a full slice of trainer batches since the last call
            self.rates["trainer"].append(trainer)
        for name, pipeline in self.others.items():
            self.rates[name].append(pipeline.run(SLICE))
            if trainer is not None:
                self.paired[name].append(trainer / self.rates[name][-1])
        # An epoch's last call is followed by evaluation: the next slice starts at the next call.
        self.mark = time.perf_counter() if batch + SLICE <= n_batches else None

    def report_epoch(self, m: EpochMetrics) -> None:
        self.epochs.append(m)
        self.mark = None


def data_only_us(dataset: _PilImages, batches: int) -> tuple[float, float]:
    """Microseconds per image of each data path alone, no model: (seeds' DataLoader with 0
    workers, the trainer's in-memory batches + device augmentation)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True)
    start = time.perf_counter()
    n = sum(len(y) for _, y in loader)
    seeds = (time.perf_counter() - start) / n * 1e6
    cfg = config(batches, 1)
    ds = load_dataset(cfg)
    cpu = torch.device("cpu")
    src = InMemoryBatches(ds.train, device=cpu, image_size=SIZE)
    aug = BatchAugment(cfg, mean=ds.mean, std=ds.std, crop_on_device=True, out_channels=3, channels_last=True, device=cpu)
    gen = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the trainer runs its data work on CPU
    try:
        for x, _ in src.train_batches(BATCH, seed=1):  # warm the allocator
            aug.train(x, gen)
        start = time.perf_counter()
        n = 0
        for x, y in src.train_batches(BATCH, seed=0):
            aug.train(x, gen)
            n += len(y)
        ours = (time.perf_counter() - start) / n * 1e6
    finally:
        torch.set_num_threads(threads)
    return seeds, ours


def fresh_process_startup() -> float:
    """Seconds from the first import to the end of the first step in a new interpreter."""
    code = (
        "import time; t0 = time.perf_counter()\n"
        "from ablate.study import make_config\n"
        "from ablate.train import train_trial\n"
        "t1 = time.perf_counter()\n"
        "r = train_trial(make_config(dict(dataset='synthetic', num_classes=10, synthetic_samples=256,"
        " batch_size=128, epochs=1, model='cnn', device='cpu'), where='bench'))\n"
        "print((t1 - t0) + r.startup_s)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} (n={len(values)}, quartiles {np.percentile(values, 25):.0f}-{np.percentile(values, 75):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="trainer runs (each: 2 epochs, interleaved)")
    parser.add_argument("--batches", type=int, default=60, help="batches per trainer epoch")
    parser.add_argument("--quick", action="store_true", help="print only, do not write the results file")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "trainer.md")
    args = parser.parse_args()

    seeds_data = seeds_dataset(args.batches)
    others = {"compute-only": ComputeOnly(), "seeds, 0 workers": SeedsLoop(seeds_data, 0)}
    seeds2 = SeedsLoop(seeds_data, 2)
    seeds2.epoch()  # start its workers, warm up
    rec = Interleaver(others)
    epoch_pairs: list[tuple[float, float]] = []
    startups: list[float] = []
    loads: list[float] = []
    for rep in range(args.reps):
        result = train_trial(config(args.batches, 2), reporter=rec)
        assert result.startup_s is not None
        startups.append(result.startup_s)
        plain = train_trial(config(args.batches, 2))  # no hook: whole epochs for the A B pairs
        epoch_pairs.append((plain.history[-1].images_per_s, seeds2.epoch()))
        loads.append(os.getloadavg()[0])
        print(f"rep {rep + 1}: " + ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in rec.rates.items())
              + f"; epochs: trainer {epoch_pairs[-1][0]:.0f}, seeds 2 workers {epoch_pairs[-1][1]:.0f}", flush=True)
    fresh = [fresh_process_startup() for _ in range(3)]
    data = [data_only_us(seeds_data, args.batches) for _ in range(3)]
    seeds_us = statistics.median(d[0] for d in data)
    ours_us = statistics.median(d[1] for d in data)

    med = {k: statistics.median(v) for k, v in rec.rates.items()}
    trainer_epochs = [t for t, _ in epoch_pairs]
    seeds2_epochs = [s for _, s in epoch_pairs]
    med2 = statistics.median(seeds2_epochs)
    # Headline ratios are medians of paired measurements (a trainer slice and the slices right
    # after it; a trainer epoch and the 2-worker epoch right after it): when the load changes
    # during the run, medians of unpaired samples compare different load regimes.
    vs_compute = statistics.median(rec.paired["compute-only"])
    vs_seeds0 = statistics.median(rec.paired["seeds, 0 workers"])
    vs_seeds2 = statistics.median(t / s for t, s in epoch_pairs)
    lines = [
        "# Trainer throughput (bench/trainer.py)",
        "",
        f"Command: `.venv/bin/python bench/trainer.py --reps {args.reps} --batches {args.batches}`",
        "",
        f"Machine: {environment().device_name}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}. Shared with other "
        f"engineers' jobs while this ran (1-minute load average {min(loads):.1f} to {max(loads):.1f} "
        "after each repetition, on 2 cores), so absolute images/s swing with their load; the "
        "pipelines were interleaved in ~1 s slices so that each saw the same load.",
        "",
        f"Small CNN (cnn defaults: 3 blocks, 32 filters doubling, batch norm, dense 128), 32 px RGB, "
        f"{CLASSES} classes, batch {BATCH}, SGD momentum 0.9, weight decay 5e-4, fp32. Trainer: "
        f"{args.reps} runs of 2 epochs x {args.batches} batches, on_batch every {SLICE} batches.",
        "",
        "| pipeline | images/s, median of slices | trainer / this, median of paired slices | ratio of the medians |",
        "| --- | --- | ---: | ---: |",
        f"| trainer (train_trial, uint8 in memory, device augmentation, channels_last) | {_fmt(rec.rates['trainer'])} | 1.00x | |",
        f"| compute-only (same model, batch, channels_last; one pre-built batch) | {_fmt(rec.rates['compute-only'])} | {vs_compute:.3f}x | {med['trainer'] / med['compute-only']:.3f}x |",
        f"| seeds' pipeline, 0 workers (PIL + torchvision transforms, NCHW) | {_fmt(rec.rates['seeds, 0 workers'])} | {vs_seeds0:.2f}x | {med['trainer'] / med['seeds, 0 workers']:.2f}x |",
        "",
        "Whole epochs, alternating (the 2-worker loader prefetches in the background, so it is not sliced):",
        "",
        "| pipeline | images/s per epoch, median | all epochs, in order | trainer / this, median of pairs |",
        "| --- | --- | --- | ---: |",
        f"| trainer, second epoch of each run | {statistics.median(trainer_epochs):.0f} | {', '.join(f'{v:.0f}' for v in trainer_epochs)} | 1.00x |",
        f"| seeds' pipeline, 2 workers | {med2:.0f} | {', '.join(f'{v:.0f}' for v in seeds2_epochs)} | {vs_seeds2:.2f}x |",
        "",
        f"- trainer / compute-only: **{vs_compute:.3f}x** (target >= 0.97x)",
        f"- trainer / seeds' pipeline: **{vs_seeds0:.2f}x** with 0 workers, **{vs_seeds2:.2f}x** with "
        "2 workers (target >= 1.7x)",
        f"- start-up, `train_trial()` entry to the end of the first step (torch already imported): "
        f"median {statistics.median(startups):.2f} s ({', '.join(f'{s:.2f}' for s in startups)})",
        f"- start-up in a fresh interpreter, from the first import to the end of the first step: "
        f"median {statistics.median(fresh):.2f} s ({', '.join(f'{s:.2f}' for s in fresh)}); most of "
        "it is importing torch and, on the first optimizer, torch._dynamo",
        f"- data path alone, no model: seeds' DataLoader (0 workers) {seeds_us:.0f} us/image; the "
        f"trainer's in-memory batches + device augmentation (one thread, as in the trainer) "
        f"{ours_us:.1f} us/image; one compute-only "
        f"step {1e6 / med['compute-only']:.0f} us/image",
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
