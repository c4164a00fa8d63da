"""Batches of uint8 images on the training device, from memory or through DataLoader workers.

Both sources yield ``(images, labels)`` with images as uint8 (B, H, W, C) on the device (a
channels-last view, so that converting to a channels_last float batch is free); augmentation and
normalisation then run batched on the device (:mod:`ablate.data._augment`).

* :class:`InMemoryBatches` holds a decoded split on the device and indexes it: no workers, no
  per-image Python, which is what makes small datasets fast.
* :class:`LoaderBatches` decodes files with PIL (or applies per-image transforms such as
  RandAugment) in DataLoader workers with torchvision transforms v2, pinned memory on CUDA.

Shuffling is seeded per epoch by the caller, so an epoch is reproducible from ``(seed, epoch)``
alone and a resumed trial sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ablate.data._dataset import Split

# Resize a whole in-memory split once when the result stays under this size, else per batch.
PRESIZE_MAX_BYTES = 1 << 30
# Eval/test batches on the DataLoader path use the crop ratio of the usual ImageNet recipe.
CENTER_CROP_RATIO = 0.875


def resize_nhwc(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (B, H, W, C) resized to (B, size, size, C), bilinear, antialiased when shrinking."""
    x = images.permute(0, 3, 1, 2).float()
    shrink = x.shape[-1] > size or x.shape[-2] > size
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def train_steps(n: int, batch_size: int) -> int:
    """Batches per training epoch; a final batch of one image is dropped (batch norm needs two)."""
    steps = math.ceil(n / batch_size)
    return steps - 1 if n % batch_size == 1 and steps > 1 else steps


class InMemoryBatches:
    """A decoded split held on ``device`` as uint8 (N, H, W, C), batched by indexing."""

    def __init__(self, split: Split, *, device: torch.device, image_size: int | None) -> None:
        """``image_size``: the side to resize the whole split to once (None: keep it as stored)."""
        assert split.images is not None
        images = torch.from_numpy(np.ascontiguousarray(split.images)).to(device)
        n, h, w, c = images.shape
        if (
            image_size is not None and (h, w) != (image_size, image_size)
            and n * image_size * image_size * c <= PRESIZE_MAX_BYTES
        ):
            images = torch.cat([resize_nhwc(images[i : i + 1024], image_size) for i in range(0, n, 1024)])
        self.images = images
        self.labels = torch.from_numpy(split.labels).to(device)
        self.device = device

    def __len__(self) -> int:
        return len(self.labels)

    def steps(self, batch_size: int) -> int:
        return train_steps(len(self), batch_size)

    def train_batches(self, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled batches of one epoch, the order fixed by ``seed``."""
        gen = torch.Generator(device=self.device).manual_seed(seed)
        perm = torch.randperm(len(self), generator=gen, device=self.device)
        for i in range(self.steps(batch_size)):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            yield self.images[idx], self.labels[idx]

    def eval_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, len(self), batch_size):
            yield self.images[i : i + batch_size], self.labels[i : i + batch_size]

    def take(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and labels at ``index`` (for the prediction grid)."""
        idx = torch.from_numpy(index).to(self.device)
        return self.images[idx], self.labels[idx]


class ImageDecodeError(RuntimeError):
    """An image file could not be decoded while training: fails the trial (naming the file),
    not the study. Not an AblateError: the other trials may never meet this file."""


def decode_image(path: str, min_side: int | None = None) -> torch.Tensor:
    """An image file as uint8 (3, H, W) RGB. With ``min_side``, JPEGs are decoded at the smallest
    DCT scale whose short side is still >= min_side (PIL's draft mode: several times faster for
    photos far larger than the training size)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if min_side is not None and im.format == "JPEG":
                im.draft("RGB", (min_side, min_side))
            rgb = np.asarray(im.convert("RGB"))
    except Exception as e:  # PIL raises OSError, UnidentifiedImageError, SyntaxError, ValueError...
        raise ImageDecodeError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)


class _Samples(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """Per-image access for DataLoader workers: decode (or slice) and transform one image."""

    def __init__(
        self, split: Split, transform: Callable[[torch.Tensor], torch.Tensor], min_side: int | None,
        native_side: int | None = None,
    ) -> None:
        self.split = split
        self.transform = transform
        self.min_side = min_side
        self.native_side = native_side

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.split.files is not None:
            img = decode_image(self.split.files[i], self.min_side)
            side = self.native_side
            if side is not None and img.shape[1:] != (side, side):
                raise ImageDecodeError(
                    f"{self.split.files[i]}: image is {img.shape[2]}x{img.shape[1]} px but the study feeds "
                    f"images at native size (resize 'none') with image_size {side}"
                )
        else:
            assert self.split.images is not None
            img = torch.from_numpy(self.split.images[i]).permute(2, 0, 1)
        return self.transform(img), int(self.split.labels[i])


def resize_side(image_size: int, crop_ratio: float = CENTER_CROP_RATIO) -> int:
    """Short side images are resized to before the (random or centre) crop of ``image_size``."""
    return max(image_size, round(image_size / crop_ratio))


def folder_transforms(
    image_size: int, *, train: bool, random_crop: bool, auto_augment: str, resize: str = "crop",
    crop_ratio: float = CENTER_CROP_RATIO, sizing: Any | None = None,
) -> Any:
    """Per-image v2 transforms of the DataLoader path, on uint8 tensors. ``resize``: ``crop``
    resizes the short side to ``size / crop_ratio`` then crops (random when training with
    augmentation, else the centre); ``squash`` resizes to size x size; ``none`` keeps the file's
    size. ``sizing``: a transform that sizes training images instead (augment_ops' leading
    random_resized_crop, on the decoded image). Then RandAugment/TrivialAugment for training."""
    from torchvision.transforms import v2

    ops: list[Any] = []
    if sizing is not None and train:
        ops.append(sizing)
    elif resize == "crop":
        ops.append(v2.Resize(resize_side(image_size, crop_ratio), antialias=True))
        ops.append(v2.RandomCrop(image_size) if train and random_crop else v2.CenterCrop(image_size))
    elif resize == "squash":
        ops.append(v2.Resize((image_size, image_size), antialias=True))
    if train:
        ops += auto_augment_ops(auto_augment)
    return v2.Compose(ops) if ops else v2.Identity()


def array_transforms(image_size: int, native: tuple[int, int], auto_augment: str, resize: str = "squash") -> Any:
    """Per-image transforms for in-memory images that need RandAugment/TrivialAugment (squashed
    to image_size first; other sizings are done on the device afterwards)."""
    from torchvision.transforms import v2

    ops: list[Any] = []
    if resize == "squash" and native != (image_size, image_size):
        ops.append(v2.Resize((image_size, image_size), antialias=True))
    ops += auto_augment_ops(auto_augment)
    return v2.Compose(ops) if ops else v2.Identity()


def auto_augment_ops(name: str) -> list[Any]:
    from torchvision.transforms import v2

    if name == "randaugment":
        return [v2.RandAugment()]
    if name == "trivialaugment":
        return [v2.TrivialAugmentWide()]
    return []


class LoaderBatches:
    """A split read through DataLoader workers; batches moved to ``device`` as uint8."""

    def __init__(
        self,
        split: Split,
        *,
        device: torch.device,
        transform: Callable[[torch.Tensor], torch.Tensor],
        num_workers: int,
        pin_memory: bool,
        min_side: int | None = None,
        native_side: int | None = None,
    ) -> None:
        self.samples = _Samples(split, transform, min_side, native_side)
        self.device = device
        self.num_workers = num_workers
        self.pin_memory = pin_memory and device.type == "cuda"

    def __len__(self) -> int:
        return len(self.samples)

    def steps(self, batch_size: int) -> int:
        return train_steps(len(self), batch_size)

    def _loader(self, batch_size: int, seed: int | None) -> torch.utils.data.DataLoader[Any]:
        # A fresh generator per epoch seeds both the shuffle and the workers' transforms.
        gen = torch.Generator().manual_seed(seed if seed is not None else 0)
        return torch.utils.data.DataLoader(
            self.samples,
            batch_size=batch_size,
            shuffle=seed is not None,
            generator=gen,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.device, non_blocking=True).permute(0, 2, 3, 1)
        return x, y.to(self.device, non_blocking=True)

    def _batches(self, batch_size: int, seed: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        try:
            yield from self._loader(batch_size, seed)
        except ImageDecodeError as e:
            # From a worker the message is its whole traceback; the file and reason are its last line.
            last = str(e).strip().splitlines()[-1]
            raise ImageDecodeError(re.sub(r"^[\w.]*ImageDecodeError: ", "", last)) from None

    def train_batches(self, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        steps = self.steps(batch_size)
        for i, (x, y) in enumerate(self._batches(batch_size, seed)):
            if i >= steps:
                break
            yield self._to_device(x, y)

    def eval_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self._batches(batch_size, None):
            yield self._to_device(x, y)

    def take(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        items = [self.samples[int(i)] for i in index]
        x = torch.stack([im for im, _ in items]).permute(0, 2, 3, 1)
        y = torch.tensor([label for _, label in items])
        return x.to(self.device), y.to(self.device)


class CachedBatches:
    """A split read from a decoded image cache (:mod:`ablate.data._cache`): rows of a uint8
    (N, S, S, C) memory map gathered per batch, pinned on CUDA and moved to ``device``, the next
    batch gathered in a thread while the current one trains. No workers, no decoding."""

    def __init__(
        self, images: np.ndarray, rows: np.ndarray, labels: np.ndarray, *, device: torch.device, pin_memory: bool
    ) -> None:
        """``rows``: the cache row of each image of the split, ``labels`` its label."""
        self.images = images
        self.rows = rows
        self.labels = torch.from_numpy(np.asarray(labels, np.int64))
        self.device = device
        self.pin_memory = pin_memory and device.type == "cuda"

    def __len__(self) -> int:
        return len(self.rows)

    def steps(self, batch_size: int) -> int:
        return train_steps(len(self), batch_size)

    def _gather(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        # Rows in ascending order read the memory map front to back (the page cache's best case);
        # the batch's images travel with their labels, so only the order inside a batch changes.
        index = index[np.argsort(self.rows[index], kind="stable")]
        x = torch.from_numpy(np.take(self.images, self.rows[index], axis=0))
        y = self.labels[torch.from_numpy(index)]
        if self.pin_memory:
            x, y = x.pin_memory(), y.pin_memory()
        return x, y

    def _batches(self, chunks: list[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from concurrent.futures import ThreadPoolExecutor

        if not chunks:
            return
        with ThreadPoolExecutor(1) as pool:
            ahead = pool.submit(self._gather, chunks[0])
            for nxt in [*chunks[1:], None]:
                x, y = ahead.result()
                if nxt is not None:
                    ahead = pool.submit(self._gather, nxt)
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def train_batches(self, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled batches of one epoch, the order fixed by ``seed``."""
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed)).numpy()
        steps = self.steps(batch_size)
        yield from self._batches([perm[i * batch_size : (i + 1) * batch_size] for i in range(steps)])

    def eval_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        index = np.arange(len(self))
        yield from self._batches([index[i : i + batch_size] for i in range(0, len(self), batch_size)])

    def take(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and labels at ``index``, in that order (for the prediction grid)."""
        index = np.asarray(index, np.int64)
        x = torch.from_numpy(np.take(self.images, self.rows[index], axis=0))
        return x.to(self.device), self.labels[torch.from_numpy(index)].to(self.device)
