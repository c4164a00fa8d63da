"""Checkpoint files of a trial, written atomically (temporary file + ``os.replace``).

``checkpoint_dir`` holds:

* ``last.pt``: everything needed to continue after the last finished epoch (model, optimizer,
  schedule, grad scaler, random states, epoch, best-so-far, early-stopping counter, history);
* ``best.pt``: the model weights of the best epoch so far (``.best.pending.pt`` while a new best
  waits for its ``last.pt``, so the two files never disagree after a crash);
* ``predictions.npz``: a sample of test images with their predicted labels;
* ``reported.txt``: the last epoch handed to the reporter, so a resume re-sends only what was lost.

Files are read with ``weights_only=True``: random states are stored as tensors and plain values.
A write that fails leaves no temporary file behind; a full disk is raised as
:class:`~ablate.errors.DiskFullError` naming the file and about how much it needed.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablate.errors import DiskFullError

LAST = "last.pt"
BEST = "best.pt"
PENDING_BEST = ".best.pending.pt"
PREDICTIONS = "predictions.npz"
REPORTED = "reported.txt"


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file next to ``path``, then rename over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Our own file object: closed even when torch's writer fails halfway (else the descriptor
    # of the removed temporary file would keep its disk space taken).
    with _written(tmp, path, lambda: _nbytes(obj)), open(tmp, "wb") as f:
        torch.save(obj, f)
    os.replace(tmp, path)


@contextmanager
def _written(tmp: Path, path: Path, needed_bytes: Callable[[], int]) -> Iterator[None]:
    """Remove ``tmp`` if the write fails; name a full disk as such."""
    try:
        yield
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, (OSError, RuntimeError)) and _disk_full(e, path, needed_bytes()):
            needed_mb = max(1, round(needed_bytes() / 2**20))
            raise DiskFullError(f"no space left on device: {path} (needs ~{needed_mb} MB)") from e
        raise


def _disk_full(error: BaseException, path: Path, needed: int) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # torch's zip writer reports a short write as "unexpected pos N vs M" (a RuntimeError that
    # hides the ENOSPC): check the free space instead of trusting the message.
    try:
        return shutil.disk_usage(path.parent).free < needed
    except OSError:
        return False


def _nbytes(obj: Any) -> int:
    """Roughly what ``obj`` takes on disk: its tensors and arrays, plus a little per value."""
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values()) + 64 * len(obj)
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj) + 16 * len(obj)
    return 64


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
    write_text(folder / REPORTED, str(epoch))


def write_text(path: Path, text: str) -> None:
    """A small text file, written atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with _written(tmp, path, lambda: 4096):
        tmp.write_text(text)
    os.replace(tmp, path)


def save_predictions(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    with _written(tmp, path, lambda: _nbytes(arrays)), open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)
