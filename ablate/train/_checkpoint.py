"""Checkpoint files of a trial, written atomically (:func:`ablate.files.write_atomic`).

``checkpoint_dir`` holds:

* ``last.pt``: everything needed to continue after the last finished epoch (model, optimizer,
  schedule, grad scaler, random states, epoch, best-so-far, early-stopping counter, history);
* ``best.pt``: the model weights of the best epoch so far (``.best.pending.pt`` while a new best
  waits for its ``last.pt``, so the two files never disagree after a crash);
* ``predictions.npz``: a sample of test images with their predicted labels;
* ``reported.txt``: the last epoch handed to the reporter, so a resume re-sends only what was lost.

A warm start (field ``warm_start``) reads the ``model`` entry of another trial's ``best.pt`` or
``last.pt`` into a new trial's model (:func:`load_warm_start`): weights only, since the new trial
has its own optimizer, schedule and epoch count. Once the new trial has a ``last.pt`` of its own,
it resumes from that, never from the source again.

Files are read with ``weights_only=True``: random states are stored as tensors and plain values.
A write that fails leaves no temporary file behind; a full disk is raised as
:class:`~ablate.errors.DiskFullError` naming the file and about how much it needed.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablate.errors import StudyError
from ablate.files import write_atomic

LAST = "last.pt"
BEST = "best.pt"
PENDING_BEST = ".best.pending.pt"
PREDICTIONS = "predictions.npz"
REPORTED = "reported.txt"


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save ``obj`` to ``path`` atomically (:func:`ablate.files.write_atomic`)."""
    write_atomic(path, lambda f: torch.save(obj, f), needed_bytes=lambda: _nbytes(obj))


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


def weight_shapes(path: Path) -> tuple[int | None, dict[str, tuple[int, ...]]]:
    """(epoch, name -> shape of each tensor of its ``model`` entry) of a checkpoint file, read
    memory-mapped: a plan checks a ResNet's checkpoint without reading its weights."""
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise StudyError(f"{path} is not a checkpoint of ablate's trainer (no 'model' weights in it)")
    epoch = state.get("epoch")
    return (int(epoch) if epoch is not None else None), {k: tuple(v.shape) for k, v in state["model"].items()}


def weights_mismatch(
    expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], *, source: str = "the checkpoint"
) -> str | None:
    """Why weights of shapes ``found`` (those of ``source``) do not load into a model of shapes
    ``expected`` (strictly: every name on both sides, every shape equal), or None when they do."""
    missing = [k for k in expected if k not in found]
    if missing:
        return f"{source} has no {missing[0]!r} ({len(missing)} of this model's weights missing)"
    unexpected = [k for k in found if k not in expected]
    if unexpected:
        return f"{source} has {unexpected[0]!r}, no weight of this model ({len(unexpected)} such)"
    for name, shape in expected.items():
        if found[name] != shape:
            return f"{name!r} is {list(found[name])} in {source}, {list(shape)} in this model"
    return None


def load_warm_start(model: torch.nn.Module, path: Path) -> int | None:
    """Load the model weights of another trial's checkpoint (``best.pt`` or ``last.pt``) into
    ``model``, in place (the optimizer keeps its parameters); return the epoch they are from.
    Nothing else is taken: not the optimizer, schedule, epoch count or random states."""
    state = load(path)
    weights = state["model"]
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    why = weights_mismatch(expected, {k: tuple(v.shape) for k, v in weights.items()})
    if why is not None:
        raise StudyError(f"warm start from {path}: its weights do not fit this trial's model: {why}")
    model.load_state_dict(weights)
    epoch = state.get("epoch")
    return int(epoch) if epoch is not None else None


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
    write_atomic(folder / REPORTED, str(epoch))


def save_predictions(path: Path, **arrays: np.ndarray) -> None:
    """The sample of test images and their predictions, as one ``.npz`` written atomically."""
    write_atomic(
        path,
        lambda f: np.savez(f, **arrays),  # type: ignore[arg-type]
        needed_bytes=lambda: _nbytes(arrays),
    )
