"""Checkpoint files of a trial, written atomically (temporary file + ``os.replace``).

``checkpoint_dir`` holds:

* ``last.pt``: everything needed to continue after the last finished epoch (model, optimizer,
  schedule, grad scaler, random states, epoch, best-so-far, early-stopping counter, history);
* ``best.pt``: the model weights of the best epoch so far (``.best.pending.pt`` while a new best
  waits for its ``last.pt``, so the two files never disagree after a crash);
* ``predictions.npz``: a sample of test images with their predicted labels;
* ``reported.txt``: the last epoch handed to the reporter, so a resume re-sends only what was lost.

Files are read with ``weights_only=True``: random states are stored as tensors and plain values.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

LAST = "last.pt"
BEST = "best.pt"
PENDING_BEST = ".best.pending.pt"
PREDICTIONS = "predictions.npz"
REPORTED = "reported.txt"


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file next to ``path``, then rename over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch and CUDA generator states, in a weights_only-loadable form."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [version, list(mt), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def read_reported(folder: Path) -> int:
    try:
        return int((folder / REPORTED).read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def write_reported(folder: Path, epoch: int) -> None:
    tmp = folder / f".{REPORTED}.{os.getpid()}.tmp"
    tmp.write_text(str(epoch))
    os.replace(tmp, folder / REPORTED)


def save_predictions(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)
