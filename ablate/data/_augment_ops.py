"""``augment_ops``: the ordered operations of a config as one pipeline over uint8 image batches.

Each operation is torchvision.transforms.v2's transform of the same name (:func:`op_transform`),
so an op list trains the same way whichever path feeds it: in-memory batches and image-folder
batches both go through :class:`AugmentPipeline` on the training device (called by
:class:`~ablate.data.BatchAugment`); only a leading ``random_resized_crop`` of an image folder
runs in the DataLoader workers, on the decoded image (:func:`worker_sizing_transform`), since
images of different sizes cannot be stacked into a batch before it.

A v2 transform called on a batch draws its random parameters once for the whole batch. So every
image must draw its own: flips, crop with constant padding, grayscale and erasing have batched
kernels here that draw per image from the epoch's generator, as do colour jitter without hue,
rotation and affine (each computing what v2's function computes); every other operation runs as its
v2 transform image by image (a loop over the batch), with torch's CPU generator (where v2 draws)
forked and seeded from the epoch's generator, so a batch is reproducible from the epoch seed.
:meth:`AugmentPipeline.describe` says in one line which operations run which way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ablate.study import op_params, sizes_training_images

if TYPE_CHECKING:
    from ablate.study import TrialConfig

# torchvision's RandomErasing defaults: erased area fraction and aspect-ratio range.
ERASE_SCALE = (0.02, 0.33)
ERASE_RATIO = (0.3, 3.3)

Batched = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _interp(name: str) -> Any:
    from torchvision.transforms import v2

    return v2.InterpolationMode.NEAREST if name == "nearest" else v2.InterpolationMode.BILINEAR


def _range(value: Any) -> Any:
    """A degrees parameter as v2 takes it: d or (min, max)."""
    return tuple(value) if isinstance(value, list) else value


def op_transform(item: Mapping[str, Any], image_size: int) -> Any:
    """The v2 transform of one validated ``augment_ops`` item, for one (C, H, W) uint8 image."""
    from torchvision.transforms import v2

    op, a = item["op"], op_params(item)
    p = a.get("p", 1.0)
    t: Any
    if op == "random_resized_crop":
        return v2.RandomResizedCrop(image_size, scale=tuple(a["scale"]), ratio=tuple(a["ratio"]), antialias=True)
    if op == "hflip":
        return v2.RandomHorizontalFlip(p)
    if op == "vflip":
        return v2.RandomVerticalFlip(p)
    if op == "grayscale":
        return v2.RandomGrayscale(p)
    if op == "erasing":
        return v2.RandomErasing(p, scale=tuple(a["scale"]), ratio=tuple(a["ratio"]), value=a["value"])
    if op == "sharpness":
        return v2.RandomAdjustSharpness(a["factor"], p)
    if op == "perspective":
        return v2.RandomPerspective(a["distortion_scale"], p, interpolation=_interp(a["interpolation"]), fill=a["fill"])
    if op == "crop":
        t = v2.RandomCrop(image_size, padding=a["padding"] or None, fill=a["fill"], padding_mode=a["padding_mode"])
    elif op == "rotation":
        t = v2.RandomRotation(_range(a["degrees"]), interpolation=_interp(a["interpolation"]), fill=a["fill"])
    elif op == "affine":
        t = v2.RandomAffine(
            _range(a["degrees"]),
            translate=tuple(a["translate"]) if any(a["translate"]) else None,
            scale=tuple(a["scale"]) if a["scale"] != [1.0, 1.0] else None,
            shear=_range(a["shear"]) if a["shear"] else None,
            interpolation=_interp(a["interpolation"]), fill=a["fill"],
        )
    elif op == "color_jitter":
        t = v2.ColorJitter(a["brightness"], a["contrast"], a["saturation"], a["hue"])
    elif op == "autoaugment":
        t = v2.AutoAugment(v2.AutoAugmentPolicy(a["policy"]), interpolation=_interp(a["interpolation"]), fill=a["fill"])
    elif op == "randaugment":
        t = v2.RandAugment(
            a["num_ops"], a["magnitude"], a["num_magnitude_bins"], interpolation=_interp(a["interpolation"]), fill=a["fill"]
        )
    elif op == "trivialaugment":
        t = v2.TrivialAugmentWide(a["num_magnitude_bins"], interpolation=_interp(a["interpolation"]), fill=a["fill"])
    else:  # pragma: no cover - the study's table and this function list the same names
        raise AssertionError(f"no transform for augmentation op {op!r}")
    return t if p >= 1 else v2.RandomApply([t], p=p)


# --- batched kernels: the same operation as the v2 transform, each image drawing its own

def _chosen(b: int, p: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """(B, 1, 1, 1) mask: which images an operation of probability ``p`` applies to."""
    return (torch.rand(b, generator=gen, device=device) < p).view(b, 1, 1, 1)


def _flip(dim: int, p: float) -> Batched:
    def run(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return torch.where(_chosen(len(x), p, gen, x.device), x.flip(dim), x)

    return run


def _padded_crop(padding: int, fill: int, p: float, size: int) -> Batched:
    """RandomCrop(size, padding, fill) with constant padding, one window per image: the windows of
    the padded batch are a strided view (B, ny, nx, C, size, size) indexed once."""

    def run(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b, c, h, w = x.shape
        src = F.pad(x, (padding,) * 4, value=fill) if padding else x.contiguous()
        ny, nx = h + 2 * padding - size + 1, w + 2 * padding - size + 1
        if ny < 1 or nx < 1:
            raise ValueError(f"augment_ops crop: images of {w}x{h} px with padding {padding} are smaller than {size} px")
        s = src.stride()
        windows = src.as_strided((b, ny, nx, c, size, size), (s[0], s[2], s[3], s[1], s[2], s[3]))
        oy = torch.randint(0, ny, (b,), generator=gen, device=x.device)
        ox = torch.randint(0, nx, (b,), generator=gen, device=x.device)
        out = windows[torch.arange(b, device=x.device), oy, ox]
        if p >= 1 or out.shape != x.shape:
            return out
        return torch.where(_chosen(b, p, gen, x.device), out, x)

    return run


def _grayscale(p: float) -> Batched:
    def run(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

        if x.shape[1] == 1:
            return x
        grey = TF.rgb_to_grayscale(x, num_output_channels=x.shape[1])
        return torch.where(_chosen(len(x), p, gen, x.device), grey, x)

    return run


def _erasing(p: float, scale: Sequence[float], ratio: Sequence[float], value: int) -> Batched:
    """RandomErasing per image; one difference: a drawn rectangle taller or wider than the image
    is clipped to it, where v2 draws again (up to 10 times) and else leaves the image."""

    def run(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return random_erasing(x, p, gen, scale=(scale[0], scale[1]), ratio=(ratio[0], ratio[1]), value=value)

    return run


# v2's luminance weights (rgb_to_grayscale), for contrast and saturation as v2 computes them.
_LUMA = (0.2989, 0.587, 0.114)


def jitter_images(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast and saturation of uint8 (B, C, H, W) with per-image ``factors``
    (B, 3) applied in per-image ``order`` (B, 3; a permutation of 0 brightness, 1 contrast,
    2 saturation), each step computed as v2's adjust_brightness / adjust_contrast /
    adjust_saturation compute it on uint8 (float blend, clamp, truncation to uint8)."""
    b, c = x.shape[:2]
    for step in range(3):
        pick = order[:, step]
        f = factors.gather(1, pick.view(b, 1)).view(b, 1, 1, 1)
        y = x.float()
        if c == 3:
            r, g, bl = y[:, 0:1], y[:, 1:2], y[:, 2:3]
            grey = (r * _LUMA[0] + g * _LUMA[1] + bl * _LUMA[2]).floor_()
        else:
            grey = y
        bright = y * f
        contrast = y * f + grey.mean(dim=(1, 2, 3), keepdim=True) * (1 - f)
        saturated = y * f + grey * (1 - f) if c == 3 else y
        out = torch.where(pick.view(b, 1, 1, 1) == 0, bright, torch.where(pick.view(b, 1, 1, 1) == 1, contrast, saturated))
        x = out.clamp_(0, 255).to(torch.uint8)
    return x


def _color_jitter(brightness: float, contrast: float, saturation: float, p: float) -> Batched:
    """ColorJitter without hue, per image: each image its own factors and its own order."""
    spans = [(max(0.0, 1 - v), 1 + v) for v in (brightness, contrast, saturation)]

    def run(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b, dev = len(x), x.device
        lo = torch.tensor([s[0] for s in spans], device=dev)
        hi = torch.tensor([s[1] for s in spans], device=dev)
        factors = lo + (hi - lo) * torch.rand(b, 3, generator=gen, device=dev)
        order = torch.rand(b, 3, generator=gen, device=dev).argsort(1)
        out = jitter_images(x, factors, order)
        return out if p >= 1 else torch.where(_chosen(b, p, gen, dev), out, x)

    return run


def rotate_images(x: torch.Tensor, degrees: torch.Tensor, mode: str, fill: int = 0) -> torch.Tensor:
    """uint8 (B, C, H, W) each rotated counter-clockwise by its own angle (B,) in degrees about
    the centre, ``fill`` outside: what v2's rotate(..., fill=fill) computes (bilinear or
    nearest), in one grid_sample over the batch with v2's mask channel for the fill."""
    b, c, h, w = x.shape
    a = torch.deg2rad(degrees.float())
    cos, sin, zero = a.cos(), a.sin(), torch.zeros_like(a)
    # In affine_grid's coordinates (each side from -1 to 1) a rotation of a non-square image
    # scales the off-diagonal terms by the aspect ratio.
    theta = torch.stack([torch.stack([cos, -sin * h / w, zero], 1), torch.stack([sin * w / h, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
    return _sample(x, grid, mode, fill)


def affine_images(
    x: torch.Tensor, angle: torch.Tensor, translate: torch.Tensor, scale: torch.Tensor, shear: torch.Tensor,
    mode: str, fill: int = 0,
) -> torch.Tensor:
    """uint8 (B, C, H, W), each image warped by its own angle (B,) in degrees, integer shift
    (B, 2) in px, zoom (B,) and horizontal shear (B,) in degrees, about the centre: what v2's
    affine(img, angle, translate, scale, [shear, 0], fill=fill) computes, for the whole batch
    (v2's inverse matrix and pixel-centred grid, batched)."""
    b, h, w = len(x), x.shape[-2], x.shape[-1]
    rot, sx = torch.deg2rad(angle.float()), torch.deg2rad(shear.float())
    tan_sx = sx.tan()
    a_, c_ = rot.cos(), rot.sin()
    b_ = -(a_ * tan_sx + rot.sin())
    d_ = rot.cos() - c_ * tan_sx
    s = scale.float()
    m0, m1, m3, m4 = d_ / s, -b_ / s, -c_ / s, a_ / s
    tx, ty = translate[:, 0].float(), translate[:, 1].float()
    m2 = -m0 * tx - m1 * ty
    m5 = -m3 * tx - m4 * ty
    theta = torch.stack([torch.stack([m0, m1, m2], 1), torch.stack([m3, m4, m5], 1)], 1)  # (B, 2, 3)
    dev = x.device
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=dev)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=dev)
    base = torch.stack([xs.expand(h, w), ys.unsqueeze(1).expand(h, w), torch.ones(h, w, device=dev)], -1)
    rescaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], device=dev)
    grid = base.view(1, h * w, 3).expand(b, -1, -1).bmm(rescaled).view(b, h, w, 2)
    return _sample(x, grid, mode, fill)


def _sample(x: torch.Tensor, grid: torch.Tensor, mode: str, fill: int) -> torch.Tensor:
    """grid_sample of uint8 images with v2's fill: a ones channel marks what came from the image."""
    b, c, h, w = x.shape
    y = torch.cat([x.float(), torch.ones(b, 1, h, w, device=x.device)], 1)
    out = F.grid_sample(y, grid, mode=mode, padding_mode="zeros", align_corners=False)
    img, mask = out[:, :c], out[:, c:]
    if mode == "nearest":
        img = torch.where(mask < 0.5, torch.full_like(img, float(fill)), img)
    else:
        img = img.sub_(fill).mul_(mask).add_(fill)
    return img.round_().clamp_(0, 255).to(torch.uint8)


def _uniform(lo: float, hi: float, b: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(b, generator=gen, device=device)


def _affine(a: Mapping[str, Any]) -> Batched:
    """RandomAffine per image, its parameters drawn as v2 draws them (shifts rounded to pixels)."""
    deg = a["degrees"]
    lo, hi = (-deg, deg) if isinstance(deg, (int, float)) else (deg[0], deg[1])
    sh = a["shear"]
    sh_lo, sh_hi = (-sh, sh) if isinstance(sh, (int, float)) else (sh[0], sh[1])
    fx, fy = a["translate"]
    s_lo, s_hi = a["scale"]

    def run(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b, dev = len(x), x.device
        h, w = x.shape[-2:]
        angle = _uniform(lo, hi, b, gen, dev)
        shift = torch.stack([_uniform(-fx * w, fx * w, b, gen, dev), _uniform(-fy * h, fy * h, b, gen, dev)], 1).round()
        out = affine_images(
            x, angle, shift, _uniform(s_lo, s_hi, b, gen, dev), _uniform(sh_lo, sh_hi, b, gen, dev),
            a["interpolation"], a["fill"],
        )
        p = a["p"]
        return out if p >= 1 else torch.where(_chosen(b, p, gen, dev), out, x)

    return run


def _rotation(degrees: float | list[float], mode: str, fill: int, p: float) -> Batched:
    lo, hi = (-degrees, degrees) if isinstance(degrees, (int, float)) else (degrees[0], degrees[1])

    def run(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b, dev = len(x), x.device
        angle = lo + (hi - lo) * torch.rand(b, generator=gen, device=dev)
        out = rotate_images(x, angle, mode, fill)
        return out if p >= 1 else torch.where(_chosen(b, p, gen, dev), out, x)

    return run


def _resized_crop(item: Mapping[str, Any], folded: Sequence[Mapping[str, Any]], image_size: int) -> Batched:
    from ablate.data._device_augment import random_resized_crop

    a = op_params(item)
    flip_p = op_params(folded[0])["p"] if folded else 0.0

    def run(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return random_resized_crop(x, image_size, a["scale"], a["ratio"], gen, flip_p=flip_p)

    return run


def batched_kernel(item: Mapping[str, Any], image_size: int) -> Batched | None:
    """The batched per-image kernel of an item, or None when it runs image by image."""
    op, a = item["op"], op_params(item)
    if op in ("hflip", "vflip"):
        return _flip(-1 if op == "hflip" else -2, a["p"])
    if op == "crop" and a["padding_mode"] == "constant":
        return _padded_crop(a["padding"], a["fill"], a["p"], image_size)
    if op == "grayscale":
        return _grayscale(a["p"])
    if op == "rotation":
        return _rotation(a["degrees"], a["interpolation"], a["fill"], a["p"])
    if op == "affine":
        return _affine(a)
    if op == "color_jitter" and a["hue"] == 0:  # a hue shift needs HSV: v2 per image
        return _color_jitter(a["brightness"], a["contrast"], a["saturation"], a["p"])
    if op == "erasing":
        return _erasing(a["p"], a["scale"], a["ratio"], a["value"])
    return None


class AugmentPipeline:
    """The operations of ``augment_ops`` over uint8 (B, C, H, W) batches, in their order:
    batched kernels where an operation has one, else its v2 transform image by image."""

    def __init__(
        self, ops: Sequence[Mapping[str, Any]], *, image_size: int, sized_in_workers: bool = False,
        batched_resized_crop: bool = False,
    ) -> None:
        """``sized_in_workers``: a leading random_resized_crop already ran in the DataLoader
        workers (image folders), so the pipeline starts after it. ``batched_resized_crop``: a
        leading random_resized_crop runs as one grid over the batch, with a hflip right after it
        folded in (batches from the decoded image cache, all of one size)."""
        from torchvision.transforms import v2

        self.in_workers = [ops[0]["op"]] if sized_in_workers and sizes_training_images(ops) else []
        ops = ops[len(self.in_workers):]
        self.stages: list[tuple[str, list[str], Any]] = []  # (kind, op names, callable)
        if batched_resized_crop and sizes_training_images(ops):
            folded = ops[1:2] if len(ops) > 1 and ops[1]["op"] == "hflip" else []
            self.stages.append(("batched", [o["op"] for o in (ops[0], *folded)], _resized_crop(ops[0], folded, image_size)))
            ops = ops[1 + len(folded):]
        for item in ops:
            kernel = batched_kernel(item, image_size)
            kind = "batched" if kernel is not None else "per_image"
            fn = kernel if kernel is not None else op_transform(item, image_size)
            if kind == "per_image" and self.stages and self.stages[-1][0] == "per_image":
                names, previous = self.stages[-1][1], self.stages[-1][2]
                self.stages[-1] = ("per_image", [*names, item["op"]], v2.Compose([*_parts(previous), fn]))
            else:
                self.stages.append((kind, [item["op"]], fn))

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for kind, _, fn in self.stages:
            x = fn(x, gen) if kind == "batched" else _each_image(fn, x, gen)
        return x

    def describe(self) -> str:
        """One line: which operations run batched, which image by image, which in the workers."""
        parts = []
        if self.in_workers:
            parts.append(f"{', '.join(self.in_workers)} in the DataLoader workers")
        batched = [n for kind, names, _ in self.stages if kind == "batched" for n in names]
        each = [n for kind, names, _ in self.stages if kind == "per_image" for n in names]
        if batched:
            parts.append(f"{', '.join(batched)} batched on the device (each image its own draw)")
        if each:
            parts.append(f"{', '.join(each)} image by image on the device (torchvision v2 per image)")
        return "augment_ops: " + "; ".join(parts) if parts else "augment_ops: nothing left to run on the device"


def _parts(t: Any) -> list[Any]:
    from torchvision.transforms import v2

    return list(t.transforms) if isinstance(t, v2.Compose) else [t]


def _each_image(transform: Any, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``transform`` applied to each image of ``x`` with its own random draws. v2 draws its
    parameters from torch's CPU generator: it is forked (the caller's state is untouched) and
    seeded from ``gen``, so the batch is reproducible from the epoch seed."""
    seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device).item())
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return torch.stack([transform(img) for img in x])


def build_augment_pipeline(
    config: TrialConfig, *, sized_in_workers: bool = False, batched_resized_crop: bool = False
) -> AugmentPipeline | None:
    """The pipeline of ``config.augment_ops`` (None when the config uses a preset): the one
    function every data path builds its operations with."""
    if not config.augment_ops:
        return None
    return AugmentPipeline(
        config.augment_ops, image_size=config.image_size, sized_in_workers=sized_in_workers,
        batched_resized_crop=batched_resized_crop,
    )


def worker_sizing_transform(config: TrialConfig) -> Any | None:
    """The leading random_resized_crop of ``augment_ops`` as a v2 transform for the DataLoader
    workers of an image folder (None when the list does not start with one)."""
    if not sizes_training_images(config.augment_ops):
        return None
    return op_transform(config.augment_ops[0], config.image_size)


def describe_augment_ops(config: TrialConfig, *, in_memory: bool) -> str | None:
    """The one line saying how ``config``'s operations run (None with a preset)."""
    pipeline = build_augment_pipeline(config, sized_in_workers=not in_memory)
    return pipeline.describe() if pipeline is not None else None


def random_erasing(
    x: torch.Tensor, p: float, gen: torch.Generator, *,
    scale: tuple[float, float] = ERASE_SCALE, ratio: tuple[float, float] = ERASE_RATIO, value: float = 0.0,
) -> torch.Tensor:
    """Set one random rectangle (a ``scale`` fraction of the area, aspect in ``ratio``) per image
    to ``value`` with probability p, as torchvision's RandomErasing does (the presets erase the
    normalised batch to 0; augment_ops erases uint8 pixels to its ``value``)."""
    b, _, h, w = x.shape
    dev = x.device
    area = h * w * (scale[0] + (scale[1] - scale[0]) * torch.rand(b, generator=gen, device=dev))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(b, generator=gen, device=dev))
    eh = torch.sqrt(area * aspect).round().clamp(1, h)
    ew = torch.sqrt(area / aspect).round().clamp(1, w)
    top = (torch.rand(b, generator=gen, device=dev) * (h - eh + 1)).floor()
    left = (torch.rand(b, generator=gen, device=dev) * (w - ew + 1)).floor()
    apply = torch.rand(b, generator=gen, device=dev) < p
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    inside = (
        (rows >= top.view(b, 1, 1)) & (rows < (top + eh).view(b, 1, 1))
        & (cols >= left.view(b, 1, 1)) & (cols < (left + ew).view(b, 1, 1))
        & apply.view(b, 1, 1)
    )
    return x.masked_fill(inside.unsqueeze(1), value)
