"""random_resized_crop (and a horizontal flip after it) for a whole batch, in one affine grid.

On the folder path augment_ops' leading ``random_resized_crop`` runs in the DataLoader workers,
image by image (torchvision's RandomResizedCrop on the decoded file). Batches from the decoded
image cache arrive as S x S squares, so the crop can run on the device instead: every image draws
its own box exactly as torchvision's ``RandomResizedCrop.get_params`` draws it (ten tries of an
area fraction in ``scale`` and a log-uniform aspect in ``ratio``, the box placed uniformly, then
the centre-crop fallback), and the batch is resampled once by ``grid_sample`` (bilinear). A
``hflip`` right after the crop is folded into the same grid (a negative x scale), each image
drawing its own flip.

One difference: grid_sample does not antialias. The cache stores images at
``image_size / crop_ratio`` (146 px for 128), so a box is at most that over ``image_size``
(1.14x) wider than the output and the missing antialiasing is a small blur of no consequence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

# torchvision draws a box this many times before falling back to a centre crop.
TRIES = 10


def resized_crop_boxes(
    b: int, h: int, w: int, scale: Sequence[float], ratio: Sequence[float], gen: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """(B, 4) boxes (top, left, height, width) in pixels, drawn per image as
    ``RandomResizedCrop.get_params`` draws them."""
    area = h * w
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    target = area * (scale[0] + (scale[1] - scale[0]) * torch.rand(b, TRIES, generator=gen, device=device))
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(b, TRIES, generator=gen, device=device))
    cw = torch.sqrt(target * aspect).round()
    ch = torch.sqrt(target / aspect).round()
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.zeros(b, dtype=torch.long, device=device))
    pick = first.view(b, 1)
    bw, bh = cw.gather(1, pick).view(b), ch.gather(1, pick).view(b)
    # Fallback (no try fits): the whole image, its aspect clamped into ratio, centred.
    in_ratio = w / h
    if in_ratio < ratio[0]:
        fw, fh = w, round(w / ratio[0])
    elif in_ratio > ratio[1]:
        fw, fh = round(h * ratio[1]), h
    else:
        fw, fh = w, h
    found = ok.any(1)
    bw = torch.where(found, bw, torch.full_like(bw, fw))
    bh = torch.where(found, bh, torch.full_like(bh, fh))
    top = (torch.rand(b, generator=gen, device=device) * (h - bh + 1)).floor()
    left = (torch.rand(b, generator=gen, device=device) * (w - bw + 1)).floor()
    top = torch.where(found, top, ((h - bh) / 2).round())
    left = torch.where(found, left, ((w - bw) / 2).round())
    return torch.stack([top, left, bh, bw], 1)


def crop_grid(boxes: torch.Tensor, flip: torch.Tensor, h: int, w: int, size: int) -> torch.Tensor:
    """The sampling grid (B, size, size, 2) that maps each output pixel into its image's box
    (align_corners=False coordinates), mirrored where ``flip`` (B,) is true."""
    top, left, bh, bw = boxes.unbind(1)
    sx = bw / w
    sx = torch.where(flip, -sx, sx)
    zero = torch.zeros_like(sx)
    # Output x in [-1, 1] -> input pixel left + (x + 1) * bw / 2 -> normalised (2 px / w) - 1.
    theta = torch.stack([
        torch.stack([sx, zero, (2 * left + bw) / w - 1], 1),
        torch.stack([zero, bh / h, (2 * top + bh) / h - 1], 1),
    ], 1)
    return F.affine_grid(theta, [len(boxes), 1, size, size], align_corners=False)


def random_resized_crop(
    x: torch.Tensor, size: int, scale: Sequence[float], ratio: Sequence[float], gen: torch.Generator, *,
    flip_p: float = 0.0,
) -> torch.Tensor:
    """uint8 (B, C, H, W) -> uint8 (B, C, size, size): a random resized crop per image (and a
    horizontal flip with probability ``flip_p``), resampled in one grid_sample."""
    b, _, h, w = x.shape
    boxes = resized_crop_boxes(b, h, w, scale, ratio, gen, x.device)
    flip = torch.rand(b, generator=gen, device=x.device) < flip_p if flip_p > 0 else torch.zeros(b, dtype=torch.bool, device=x.device)
    grid = crop_grid(boxes, flip, h, w, size)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def crop_twice_and_flip(
    x: torch.Tensor, size: int, pad: int, flip: bool, gen: torch.Generator, *, per_image: bool | None = None
) -> torch.Tensor:
    """uint8 (B, S, S, C) -> (B, size, size, C): what the folder path does to an image resized
    to S (a random ``size`` crop in its workers, then on the device a random crop after zero
    padding by ``pad`` and a horizontal flip with probability 0.5), in one copy.

    The second crop of the first is a ``size`` window of the S image at the sum of both offsets
    (less ``pad``), blank where it leaves the first crop (a band of at most ``pad`` rows and
    columns): the same distribution as the two crops in a row, without their intermediate
    copies. ``per_image`` (default: on CPU) copies each window with its own slice, several times
    faster there than the batched gather (an index kernel per byte); on CUDA the gather is one
    kernel. Both give the same pixels for the same draws."""
    b, s, _, c = x.shape
    dev = x.device
    first = torch.randint(0, s - size + 1, (b, 2), generator=gen, device=dev)
    shift = torch.randint(-pad, pad + 1, (b, 2), generator=gen, device=dev) if pad else torch.zeros(b, 2, dtype=torch.long, device=dev)
    mirrored = torch.rand(b, generator=gen, device=dev) < 0.5 if flip else torch.zeros(b, dtype=torch.bool, device=dev)
    if per_image if per_image is not None else dev.type == "cpu":
        return _windows_one_by_one(x, size, first.tolist(), shift.tolist(), mirrored.tolist())
    src = F.pad(x, (0, 0, pad, pad, pad, pad)) if pad else x.contiguous()
    at = first + shift + pad  # window origin in the padded image
    st = src.stride()
    n = s + 2 * pad - size + 1
    windows = src.as_strided((b, n, n, size, size, c), (st[0], st[1], st[2], st[1], st[2], st[3]))
    out = windows[torch.arange(b, device=dev), at[:, 0], at[:, 1]]
    if pad:
        i = torch.arange(size, device=dev).view(1, size)
        rows = ((i + shift[:, :1]) < 0) | ((i + shift[:, :1]) >= size)  # (B, size): outside the first crop
        cols = ((i + shift[:, 1:]) < 0) | ((i + shift[:, 1:]) >= size)
        out = out.masked_fill_((rows.view(b, size, 1, 1) | cols.view(b, 1, size, 1)), 0)
    if flip:
        out = torch.where(mirrored.view(b, 1, 1, 1), out.flip(2), out)
    return out


def _windows_one_by_one(
    x: torch.Tensor, size: int, first: list[list[int]], shift: list[list[int]], mirrored: list[bool]
) -> torch.Tensor:
    b, _, _, c = x.shape
    out = torch.zeros((b, size, size, c), dtype=x.dtype, device=x.device)
    for i in range(b):
        (oy, ox), (dy, dx) = first[i], shift[i]
        # Rows/columns k of the output with 0 <= k + d < size come from the first crop.
        y0, y1, x0, x1 = max(0, -dy), min(size, size - dy), max(0, -dx), min(size, size - dx)
        window = x[i, oy + dy + y0 : oy + dy + y1, ox + dx + x0 : ox + dx + x1]
        if mirrored[i]:
            out[i, y0:y1, size - x1 : size - x0] = window.flip(1)
        else:
            out[i, y0:y1, x0:x1] = window
    return out
