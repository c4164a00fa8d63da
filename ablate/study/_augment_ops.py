"""The operations ``augment_ops`` may list: their names, parameters, defaults and ranges.

This is the table validation reads (no torch here); ``ablate.data`` builds each operation as the
torchvision.transforms.v2 transform of the same name and meaning. A list item is a dict such as
``{"op": "color_jitter", "brightness": 0.4, "hue": 0.1, "p": 0.8}``: ``op`` names the operation,
``p`` is the probability that it is applied to an image (each image draws its own), every other
key is one of the operation's parameters. Keys left out take the defaults below (torchvision's).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ablate.errors import StudyError
from ablate.registry import Registry

INTERPOLATIONS = ("nearest", "bilinear")
PADDING_MODES = ("constant", "edge", "reflect", "symmetric")
AUTOAUGMENT_POLICIES = ("imagenet", "cifar10", "svhn")
# The operation that sizes training images itself: it must come first (see check_augment_ops).
RESIZED_CROP = "random_resized_crop"


@dataclass(frozen=True)
class OpParam:
    """One parameter of an operation. ``kind``: ``float``, ``int``, ``choice``, ``range`` (a
    [min, max] pair), ``pair`` (two values, each in [low, high]), ``degrees`` (a number d for
    [-d, d], or a [min, max] pair)."""

    kind: str
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class AugmentOp:
    """An operation of ``augment_ops``: what it does, its torchvision class, its parameters."""

    doc: str
    torchvision: str
    params: dict[str, OpParam] = field(default_factory=dict)
    p: float | None = 1.0  # default probability; None: the operation takes no ``p``


AUGMENT_OPS: Registry[AugmentOp] = Registry("augmentation op")

_FILL = OpParam("int", 0, "value of pixels from outside the image (0..255)", low=0, high=255)
_INTERP = OpParam("choice", "bilinear", "interpolation", choices=INTERPOLATIONS)

AUGMENT_OPS.add(RESIZED_CROP, AugmentOp(
    "a crop of random area and aspect ratio resized to image_size; sizes the training images itself, so it comes first",
    "RandomResizedCrop",
    {
        "scale": OpParam("range", [0.08, 1.0], "[min, max] fraction of the image area", low=0.0, high=1.0, low_open=True),
        "ratio": OpParam("range", [3 / 4, 4 / 3], "[min, max] aspect ratio (width / height)", low=0.0, low_open=True),
    },
    p=None,
))
AUGMENT_OPS.add("crop", AugmentOp(
    "a random image_size crop after padding each side", "RandomCrop",
    {
        "padding": OpParam("int", 4, "pixels added on each side", low=0, high=256),
        "padding_mode": OpParam("choice", "constant", "how the padding is filled", choices=PADDING_MODES),
        "fill": _FILL,
    },
))
AUGMENT_OPS.add("hflip", AugmentOp("horizontal flip", "RandomHorizontalFlip", p=0.5))
AUGMENT_OPS.add("vflip", AugmentOp("vertical flip", "RandomVerticalFlip", p=0.5))
AUGMENT_OPS.add("rotation", AugmentOp(
    "rotation by a random angle about the centre", "RandomRotation",
    {
        "degrees": OpParam("degrees", 15.0, "d for an angle in [-d, d], or [min, max], in degrees", low=-360, high=360),
        "interpolation": _INTERP, "fill": _FILL,
    },
))
AUGMENT_OPS.add("affine", AugmentOp(
    "random rotation, shift, scale and shear in one warp", "RandomAffine",
    {
        "degrees": OpParam("degrees", 0.0, "d for an angle in [-d, d], or [min, max], in degrees", low=-360, high=360),
        "translate": OpParam("pair", [0.0, 0.0], "[fx, fy]: largest shift as a fraction of width, height", low=0.0, high=1.0),
        "scale": OpParam("range", [1.0, 1.0], "[min, max] zoom factor", low=0.0, low_open=True),
        "shear": OpParam("degrees", 0.0, "d for a horizontal shear in [-d, d], or [min, max], in degrees", low=-180, high=180),
        "interpolation": _INTERP, "fill": _FILL,
    },
))
AUGMENT_OPS.add("color_jitter", AugmentOp(
    "random brightness, contrast, saturation (each a factor in [1-x, 1+x]) and hue (a shift in [-h, h] of the colour wheel), in random order",
    "ColorJitter",
    {
        "brightness": OpParam("float", 0.0, "x for a factor in [max(0, 1-x), 1+x]", low=0.0),
        "contrast": OpParam("float", 0.0, "x for a factor in [max(0, 1-x), 1+x]", low=0.0),
        "saturation": OpParam("float", 0.0, "x for a factor in [max(0, 1-x), 1+x]", low=0.0),
        "hue": OpParam("float", 0.0, "h for a hue shift in [-h, h] (fraction of the colour wheel)", low=0.0, high=0.5),
    },
))
AUGMENT_OPS.add("sharpness", AugmentOp(
    "sharpen (factor > 1) or blur (< 1) by a fixed factor", "RandomAdjustSharpness",
    {"factor": OpParam("float", 2.0, "sharpness factor: 0 blurred, 1 unchanged, 2 twice as sharp", low=0.0)},
    p=0.5,
))
AUGMENT_OPS.add("perspective", AugmentOp(
    "a random perspective warp", "RandomPerspective",
    {
        "distortion_scale": OpParam("float", 0.5, "how far the corners may move, as a fraction of the side", low=0.0, high=1.0),
        "interpolation": _INTERP, "fill": _FILL,
    },
    p=0.5,
))
AUGMENT_OPS.add("grayscale", AugmentOp("luminance in every channel", "RandomGrayscale", p=0.1))
AUGMENT_OPS.add("erasing", AugmentOp(
    "one random rectangle set to value (before normalisation)", "RandomErasing",
    {
        "scale": OpParam("range", [0.02, 0.33], "[min, max] fraction of the image area", low=0.0, high=1.0, low_open=True),
        "ratio": OpParam("range", [0.3, 3.3], "[min, max] aspect ratio of the rectangle", low=0.0, low_open=True),
        "value": OpParam("int", 0, "pixel value of the rectangle (0..255)", low=0, high=255),
    },
    p=0.5,
))
AUGMENT_OPS.add("autoaugment", AugmentOp(
    "AutoAugment with a learned policy", "AutoAugment",
    {"policy": OpParam("choice", "imagenet", "the policy, as torchvision names it", choices=AUTOAUGMENT_POLICIES),
     "interpolation": OpParam("choice", "nearest", "interpolation", choices=INTERPOLATIONS), "fill": _FILL},
))
AUGMENT_OPS.add("randaugment", AugmentOp(
    "RandAugment: num_ops operations drawn per image at one magnitude", "RandAugment",
    {
        "num_ops": OpParam("int", 2, "operations applied in a row", low=0, high=16),
        "magnitude": OpParam("int", 9, "magnitude, in bins of num_magnitude_bins", low=0),
        "num_magnitude_bins": OpParam("int", 31, "magnitude bins", low=2, high=1000),
        "interpolation": OpParam("choice", "nearest", "interpolation", choices=INTERPOLATIONS), "fill": _FILL,
    },
))
AUGMENT_OPS.add("trivialaugment", AugmentOp(
    "TrivialAugment Wide: one operation at a random magnitude per image", "TrivialAugmentWide",
    {
        "num_magnitude_bins": OpParam("int", 31, "magnitude bins", low=2, high=1000),
        "interpolation": OpParam("choice", "nearest", "interpolation", choices=INTERPOLATIONS), "fill": _FILL,
    },
))


def op_params(item: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of a validated ``augment_ops`` item, defaults filled in, with ``p``."""
    spec = AUGMENT_OPS.get(item["op"], where="augment_ops")
    out = {name: item.get(name, param.default) for name, param in spec.params.items()}
    if spec.p is not None:
        out["p"] = item.get("p", spec.p)
    return out


def describe_op(item: Mapping[str, Any]) -> str:
    """``color_jitter(brightness=0.4, p=0.8)``: an item as a short label, its given parameters
    only, sorted (the same label whatever order the study or the database kept them in)."""
    given = ", ".join(f"{k}={item[k]}" for k in sorted(item) if k != "op")
    return f"{item['op']}({given})"


def describe_ops(value: Any) -> str | None:
    """An op list as ``crop(padding=4) > hflip()``; None for a value that is not one."""
    if not isinstance(value, list) or not value or not all(isinstance(i, Mapping) and "op" in i for i in value):
        return None
    return " > ".join(describe_op(i) for i in value)


def check_augment_ops(value: Any, *, where: str) -> list[dict[str, Any]]:
    """``augment_ops`` validated item by item: a list of dicts, each a known ``op`` with known
    parameters in range; numbers normalised (ints where ints are meant), pairs as lists."""
    name = "augment_ops"
    if not isinstance(value, (list, tuple)):
        raise StudyError(
            f"{where}: field {name!r} must be a list of dicts such as [{{'op': 'hflip', 'p': 0.5}}], "
            f"got {value!r} ({type(value).__name__})"
        )
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        at = f"{where}: field {name!r} item {i}"
        if not isinstance(item, Mapping) or "op" not in item:
            raise StudyError(f"{at} must be a dict naming its operation, such as {{'op': 'hflip'}}, got {item!r}")
        op = item["op"]
        if op not in AUGMENT_OPS or not isinstance(op, str):
            raise StudyError(f"{at}: {AUGMENT_OPS.unknown(op)}")
        spec = AUGMENT_OPS.get(op, where=at)
        clean: dict[str, Any] = {"op": op}
        allowed = [*spec.params, *(["p"] if spec.p is not None else [])]
        for key, v in item.items():
            if key == "op":
                continue
            if key not in allowed:
                takes = ", ".join(allowed) if allowed else "no parameters"
                extra = " (it always applies: it sizes the image)" if key == "p" and spec.p is None else ""
                raise StudyError(f"{at} ({op}): unknown parameter {key!r}{did_you_mean(str(key), allowed)}{extra}; {op} takes {takes}")
            if key == "p":
                clean["p"] = _number(v, OpParam("float", 1.0, "", low=0.0, high=1.0), f"{at} ({op}): 'p'")
            else:
                clean[key] = _param(v, spec.params[key], f"{at} ({op}): {key!r}")
        if op == "randaugment":
            bins = clean.get("num_magnitude_bins", spec.params["num_magnitude_bins"].default)
            if clean.get("magnitude", spec.params["magnitude"].default) >= bins:
                raise StudyError(f"{at} (randaugment): 'magnitude' must be < num_magnitude_bins ({bins})")
        out.append(clean)
    return out


def did_you_mean(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _number(v: Any, param: OpParam, at: str) -> float | int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise StudyError(f"{at} must be a finite number, got {v!r}")
    if param.kind == "int":
        if not float(v).is_integer():
            raise StudyError(f"{at} must be an integer, got {v!r}")
        v = int(v)
    else:
        v = float(v)
    low, high = param.low, param.high
    if (low is not None and (v < low or (param.low_open and v == low))) or (high is not None and v > high):
        lo = "" if low is None else f"{'>' if param.low_open else '>='} {low:g}"
        hi = "" if high is None else f"<= {high:g}"
        raise StudyError(f"{at} is {v!r}; it must be {' and '.join(s for s in (lo, hi) if s)}")
    return v


def _pair(v: Any, param: OpParam, at: str) -> list[float]:
    if not isinstance(v, Sequence) or isinstance(v, str) or len(v) != 2:
        raise StudyError(f"{at} must be a pair [a, b], got {v!r}")
    return [float(_number(x, dataclasses.replace(param, kind="float"), at)) for x in v]


def _param(v: Any, param: OpParam, at: str) -> Any:
    if param.kind == "choice":
        if v not in param.choices:
            raise StudyError(f"{at} is {v!r}{did_you_mean(str(v), param.choices)}; allowed: {', '.join(param.choices)}")
        return v
    if param.kind in ("float", "int"):
        return _number(v, param, at)
    if param.kind == "degrees":
        if isinstance(v, (list, tuple)):
            lo, hi = _pair(v, param, at)
            if lo > hi:
                raise StudyError(f"{at} is {list(v)}; it must be [min, max] with min <= max")
            return [lo, hi]
        return float(_number(v, dataclasses.replace(param, low=0.0), at))
    pair = _pair(v, param, at)
    if param.kind == "range" and pair[0] > pair[1]:
        raise StudyError(f"{at} is {list(v)}; it must be [min, max] with min <= max")
    return pair


def sizes_training_images(ops: Sequence[Mapping[str, Any]]) -> bool:
    """True when the list starts with random_resized_crop, which sizes the images itself."""
    return bool(ops) and ops[0]["op"] == RESIZED_CROP
