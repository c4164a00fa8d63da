"""Augmentation and normalisation of whole uint8 batches on the training device.

One pass per batch instead of one Python call per image: crop with padding and flips stay in
uint8 (a quarter of the memory traffic of float), the conversion to float is fused with the
normalisation, and the result comes out in the model's memory format. Every random draw uses the
generator the caller passes, so a batch is reproducible from the epoch's seed.

Presets (``config.augment``): ``none``; ``basic`` = random crop with ``crop_padding`` + flip;
``heavy`` = basic + rotation, colour jitter, random grayscale, random erasing (the HW2P2 recipe,
in torchvision's order: geometry, colour, normalise, erase).

``augment_ops`` (``augment='ops'``): the listed operations instead of a preset, run by
:class:`~ablate.data._augment_ops.AugmentPipeline` on the uint8 batch after sizing, then the
normalisation; for image folders too (only a leading random_resized_crop runs in their workers).

Sizing (``train_resize`` / ``eval_resize``) of in-memory images happens here too: ``squash``
resizes to ``image_size``; ``crop`` resizes to ``image_size / crop_ratio`` and crops
``image_size`` (random for training with augmentation, else the centre: CIFAR 32 -> 256 -> 224);
``none`` feeds the stored size, which must be ``image_size``. Image folders read by DataLoader
workers are sized there (:func:`~ablate.data.folder_transforms`), so their batches arrive at size;
from the decoded image cache (``cached_folder``) they arrive as S x S squares and are sized here
with the folder path's modes, a preset's two random crops and flip in one copy
(:func:`~ablate.data._device_augment.crop_twice_and_flip`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ablate.data._augment_ops import (
    AugmentPipeline,
    build_augment_pipeline,
    random_erasing,
)
from ablate.data._batches import resize_nhwc, resize_side
from ablate.data._device_augment import crop_twice_and_flip
from ablate.errors import StudyError
from ablate.study import sizes_training_images

if TYPE_CHECKING:
    from ablate.study import TrialConfig


# Training sizing when augment_ops starts with random_resized_crop: the operation sizes the images.
SIZED_BY_OP = "op"


def resize_modes(config: TrialConfig, *, in_memory: bool) -> tuple[str, str]:
    """(train, eval) sizing with ``auto`` resolved: crop for image folders, squash in memory;
    ``op`` for training when augment_ops starts with random_resized_crop."""
    auto = "squash" if in_memory else "crop"
    train = auto if config.train_resize == "auto" else config.train_resize
    if sizes_training_images(config.augment_ops):
        train = SIZED_BY_OP
    return train, auto if config.eval_resize == "auto" else config.eval_resize


def stored_side(mode: str, config: TrialConfig) -> int | None:
    """Side in-memory images are resized to before cropping (None: kept as stored)."""
    if mode == "crop":
        return resize_side(config.image_size, config.crop_ratio)
    return config.image_size if mode == "squash" else None
_GRAY = (0.299, 0.587, 0.114)


class BatchAugment:
    """Turns uint8 (B, H, W, C) batches into normalised float (B, C', S, S) model inputs."""

    def __init__(
        self,
        config: TrialConfig,
        *,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        crop_on_device: bool,
        out_channels: int,
        channels_last: bool,
        device: torch.device,
        cached_folder: bool = False,
    ) -> None:
        """``cached_folder``: batches of an image folder from its decoded cache (S x S squares,
        see :mod:`ablate.data._cache`): sized here with the folder path's modes (``auto`` is
        crop), a leading random_resized_crop run batched on the device."""
        # The presets' random crop; augment_ops crops only where it lists a crop.
        on = config.augment in ("basic", "heavy")
        self.size = config.image_size
        # Image folders arrive sized by the DataLoader workers; in-memory and cached images are
        # sized here.
        if cached_folder:
            self.sizing = resize_modes(config, in_memory=False)
        else:
            self.sizing = resize_modes(config, in_memory=True) if crop_on_device else ("pass", "pass")
        self.sides = tuple(stored_side(mode, config) for mode in self.sizing)
        # augment_ops: the pipeline of every data path (a folder's leading random_resized_crop
        # ran in its DataLoader workers).
        self.ops: AugmentPipeline | None = build_augment_pipeline(
            config, sized_in_workers=not (crop_on_device or cached_folder), batched_resized_crop=cached_folder
        )
        self.random_crop = on
        # Cached folder batches with a preset's random crop: both crops and the flip in one gather.
        self.fused_crops = cached_folder and on and self.ops is None and self.sizing[0] == "crop"
        self.pad = config.crop_padding if on else 0
        self.flip = on and config.hflip
        self.heavy = config.augment == "heavy"
        self.rotation = config.rotation
        self.jitter = config.color_jitter
        self.grayscale_p = config.grayscale_p
        self.erasing_p = config.erasing_p
        self.erasing_scale = (config.erasing_scale[0], config.erasing_scale[1])
        self.erasing_ratio = (config.erasing_ratio[0], config.erasing_ratio[1])
        c = len(mean)
        m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, c, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=device).view(1, c, 1, 1)
        self.mean, self.std = m, s
        # uint8 -> normalised float in one multiply-add: x * scale + shift.
        self.scale = 1.0 / (255.0 * s)
        self.shift = -m / s
        self._rows: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.repeat = out_channels // c if out_channels != c else 1
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.device = device

    # --- public entry points

    def train(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Augmented, normalised training batch."""
        if self.fused_crops and x.shape[1] == x.shape[2] == self.sides[0]:
            # From the decoded cache: the workers' random crop and the preset's crop + flip at once.
            x = crop_twice_and_flip(x, self.size, self.pad, self.flip, gen)
        else:
            x = self._sized(x, 0, gen)
            if self.ops is not None:
                x = self.ops(x.permute(0, 3, 1, 2), gen).permute(0, 2, 3, 1)
                return self._finish(self._normalised(x))
            if self.pad or self.flip:
                x = crop_and_flip(x, self.pad, self.flip, gen)
        if not self.heavy:
            return self._finish(self._normalised(x))
        y = x.permute(0, 3, 1, 2).float().div_(255.0)
        if self.rotation > 0:
            y = random_rotation(y, self.rotation, gen)
        if self.jitter > 0:
            y = color_jitter(y, self.jitter, gen)
        if self.grayscale_p > 0 and y.shape[1] == 3:
            y = random_grayscale(y, self.grayscale_p, gen)
        y = y.sub_(self.mean).div_(self.std)
        if self.erasing_p > 0:
            y = random_erasing(y, self.erasing_p, gen, scale=self.erasing_scale, ratio=self.erasing_ratio)
        return self._finish(y)

    def eval(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised evaluation batch, sized by ``eval_resize``."""
        return self._finish(self._normalised(self._sized(x, 1, None)))

    # --- helpers

    def _sized(self, x: torch.Tensor, which: int, gen: torch.Generator | None) -> torch.Tensor:
        """uint8 (B, H, W, C) at image_size: ``which`` 0 for training (random crop when
        augmenting), 1 for evaluation (centre crop)."""
        mode, side = self.sizing[which], self.sides[which]
        h, w = x.shape[1], x.shape[2]
        if mode in ("pass", SIZED_BY_OP):
            return x
        if mode == "none":
            if (h, w) != (self.size, self.size):
                what = "train_resize" if which == 0 else "eval_resize"
                raise StudyError(
                    f"field {what!r} is 'none' (native size) but the images are {w}x{h} px and "
                    f"image_size is {self.size}; set image_size={h} or another {what}"
                )
            return x
        assert side is not None
        if (h, w) != (side, side):
            x = resize_nhwc(x, side)
        if mode == "squash" or side == self.size:
            return x
        if which == 0 and self.random_crop and gen is not None:
            return crop_and_flip(x, 0, False, gen, out=self.size)
        top = (side - self.size) // 2
        return x[:, top : top + self.size, top : top + self.size]

    def _normalised(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, C) -> float (B, C, H, W) with channels_last strides, (x/255 - mean)/std.

        Done on (B*H, W*C) rows with per-row scale/shift vectors: broadcasting over a last
        dimension of 3 channels is several times slower on CPU than over rows of W*C."""
        b, h, w, c = x.shape
        rows = self._rows.get(w)
        if rows is None:
            rows = self._rows[w] = (self.scale.view(c).repeat(w), self.shift.view(c).repeat(w))
        y = x.contiguous().view(b * h, w * c).float()
        return y.mul_(rows[0]).add_(rows[1]).view(b, h, w, c).permute(0, 3, 1, 2)

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        if self.repeat != 1:
            x = x.expand(-1, self.repeat * x.shape[1], -1, -1)
        return x.contiguous(memory_format=self.memory_format)


def crop_and_flip(
    x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator, *, out: int | None = None
) -> torch.Tensor:
    """Per-image random crop (of side ``out``, default the input's) after zero padding by ``pad``
    on every side, and (with ``flip``) a horizontal flip with probability 0.5, of uint8
    (B, H, W, C), in one gather.

    The windows of the padded batch are a strided view (B, 2p+1, 2p+1, H, W, C); indexing it
    copies whole rows, several times faster than per-pixel index arithmetic. Flipped images
    are taken from a mirrored copy of the padded batch (a mirrored crop is a crop of the mirror).
    """
    b, h, w, c = x.shape
    out_h = out_w = out
    if out is None:
        out_h, out_w = h, w
    assert out_h is not None and out_w is not None
    src = F.pad(x, (0, 0, pad, pad, pad, pad)) if pad else x.contiguous()
    pick = torch.arange(b, device=x.device)
    if flip:
        pick = pick + b * (torch.rand(b, generator=gen, device=x.device) < 0.5)
        src = torch.cat([src, src.flip(2)])
    ny, nx = h + 2 * pad - out_h + 1, w + 2 * pad - out_w + 1
    s = src.stride()
    windows = src.as_strided((src.shape[0], ny, nx, out_h, out_w, c), (s[0], s[1], s[2], s[1], s[2], s[3]))
    oy = torch.randint(0, ny, (b,), generator=gen, device=x.device)
    ox = torch.randint(0, nx, (b,), generator=gen, device=x.device)
    return windows[pick, oy, ox]


def random_rotation(x: torch.Tensor, degrees: float, gen: torch.Generator) -> torch.Tensor:
    """Rotate each image of float (B, C, H, W) by a uniform angle in [-degrees, degrees]."""
    b = x.shape[0]
    angle = (torch.rand(b, generator=gen, device=x.device) * 2 - 1) * math.radians(degrees)
    cos, sin = angle.cos(), angle.sin()
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return _GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b


def _factors(b: int, strength: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return (1 - strength + 2 * strength * torch.rand(b, generator=gen, device=device)).view(b, 1, 1, 1)


def color_jitter(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation, each scaled by a factor in [1-s, 1+s] per image."""
    b = x.shape[0]
    x = x * _factors(b, strength, gen, x.device)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * _factors(b, strength, gen, x.device) + mean
    if x.shape[1] == 3:
        g = _gray(x)
        x = (x - g) * _factors(b, strength, gen, x.device) + g
    return x.clamp_(0.0, 1.0)


def random_grayscale(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Replace each RGB image by its luminance with probability ``p``."""
    pick = torch.rand(x.shape[0], generator=gen, device=x.device) < p
    return torch.where(pick.view(-1, 1, 1, 1), _gray(x).expand_as(x), x)
