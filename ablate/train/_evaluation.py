"""A study's own evaluations in the built-in trainer: what they are handed, how their values are checked.

After every epoch the trainer calls each :class:`ablate.Evaluation` with the model and an
:class:`EvalSplit` of the validation split, and once more on the test split with the best
weights. A value that is missing, not a number, NaN or outside the metric's declared range
fails the trial (:class:`EvaluationError`, with the reason); the study goes on.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablate.errors import AblateError
from ablate.metrics import Evaluation, Metric, test_name
from ablate.study import TrialConfig


class EvaluationError(Exception):
    """An evaluation returned something unusable or raised: fails this trial, not the study
    (not an AblateError, which would stop the worker as a configuration problem)."""


@dataclass
class EvalSplit:
    """What an evaluation gets besides the model: one split, and the trainer's evaluation path.

    ``batches()`` yields the split's (inputs, labels) preprocessed exactly as validation sees
    them (resized, normalised, on ``device``); ``images(paths)`` reads image files as a uint8
    (B, H, W, C) batch sized like the split's own images, and ``preprocess`` turns such a batch
    into model inputs. ``data_folder`` is the dataset's folder (an image folder's root, else the
    data root); ``smoke`` is true on the synthetic data of a ``--smoke`` run.
    """

    name: str  # "val" | "test"
    config: TrialConfig
    device: torch.device
    data_folder: Path
    smoke: bool
    batch_size: int
    batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]
    images: Callable[[Sequence[str | Path]], torch.Tensor]
    preprocess: Callable[[torch.Tensor], torch.Tensor]
    autocast: Callable[[], Any]


def run_evaluations(
    evaluations: Sequence[Evaluation], model: torch.nn.Module, split: EvalSplit, *, epoch: int | None
) -> dict[str, float]:
    """Every evaluation's values on ``split``, named as stored (``test_x`` on the test split)."""
    out: dict[str, float] = {}
    for e in evaluations:
        if split.name == "test" and not e.on_test:
            continue
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                values = e.fn(model, split)
        except (AblateError, EvaluationError):
            raise
        except Exception as error:
            raise EvaluationError(f"{_where(e, split, epoch)} raised {type(error).__name__}: {error}") from error
        finally:
            model.train(was_training)
        checked = check_values(e, values, where=_where(e, split, epoch))
        out.update({test_name(k) if split.name == "test" else k: v for k, v in checked.items()})
    return out


def _where(e: Evaluation, split: EvalSplit, epoch: int | None) -> str:
    when = f"epoch {epoch}" if epoch is not None else "the best checkpoint"
    return f"evaluation {e.name!r} on the {split.name} split at {when}"


def check_values(e: Evaluation, values: Any, *, where: str) -> dict[str, float]:
    """The declared values of ``values`` as floats; EvaluationError naming the first bad one."""
    if not isinstance(values, Mapping):
        raise EvaluationError(f"{where} returned {type(values).__name__}; it returns a dict of its metrics")
    declared: dict[str, Metric] = {m.name: m for m in e.metrics}
    undeclared = [k for k in values if k not in declared]
    if undeclared:
        raise EvaluationError(
            f"{where} returned {undeclared[0]!r}, which it does not declare; declared: {', '.join(declared)}"
        )
    out: dict[str, float] = {}
    for name, m in declared.items():
        if name not in values:
            raise EvaluationError(f"{where} returned no value for {name!r}")
        value = values[name]
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise EvaluationError(f"{where}: {name} is {value!r} ({type(value).__name__}), not a number")
        number = float(value)
        if not math.isfinite(number):
            raise EvaluationError(f"{where}: {name} is {number}, not a finite number")
        if not m.low <= number <= m.high:
            raise EvaluationError(f"{where}: {name} is {number:g}, outside its declared range [{m.low:g}, {m.high:g}]")
        out[name] = number
    return out


def read_images(
    paths: Sequence[str | Path], *, config: TrialConfig, in_memory: bool, channels: int, device: torch.device
) -> torch.Tensor:
    """Image files as a uint8 (B, H, W, C) batch on ``device``, sized as the split's own images
    reach :meth:`BatchAugment.eval`: through the folder's evaluation transform for image folders,
    at the stored side for in-memory datasets (which the device then crops or squashes)."""
    from ablate.data import decode_image, folder_transforms, resize_modes, resize_nhwc, stored_side

    _, mode = resize_modes(config, in_memory=in_memory)
    out = []
    if in_memory:
        side = stored_side(mode, config) or config.image_size
        for p in paths:
            x = decode_image(str(p)).permute(1, 2, 0)[None]
            out.append(resize_nhwc(x, side) if x.shape[1:3] != (side, side) else x)
    else:
        tf = folder_transforms(
            config.image_size, train=False, random_crop=False, auto_augment="none", resize=mode,
            crop_ratio=config.crop_ratio,
        )
        out = [tf(decode_image(str(p))).permute(1, 2, 0)[None] for p in paths]
    batch = torch.cat(out)
    if channels == 1:
        batch = batch.float().mean(dim=3, keepdim=True).round().to(torch.uint8)
    return batch.to(device)

