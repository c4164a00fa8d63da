"""Fine-tuning a library's model: its own dropout and drop-path rates, and a replacement head.

``drop_rate`` and ``drop_path_rate`` are handed to the library (timm's ``create_model`` keywords,
torchvision's builder ``dropout`` / ``stochastic_depth_prob``); :func:`check_regularisation` then
reads the built model to confirm the rate took effect, so a model that silently ignores one
(torchvision's convnext takes ``dropout`` and drops it) is refused by name instead of trained
without it. ``head_widths`` replaces the classifier by a :class:`ReplacementHead` MLP, which keeps
the classifier's qualified name, so it is the "head" stage of ``freeze`` and ``lr_groups``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import nn

from ablate.errors import StudyError
from ablate.train._cnn import _activation as activation

if TYPE_CHECKING:
    from ablate.study import TrialConfig

# The replacement head's leaky_relu slope: torch's default (cnn_leaky_relu_slope is the CNN's).
HEAD_LEAKY_SLOPE = 0.01

# What each library calls the two rates.
_KEYWORDS = {
    "timm": {"drop_rate": "drop_rate", "drop_path_rate": "drop_path_rate"},
    "torchvision": {"drop_rate": "dropout", "drop_path_rate": "stochastic_depth_prob"},
}


def library_kwargs(config: TrialConfig, library: str) -> dict[str, float]:
    """The keywords of the rates ``config`` sets, as ``library`` ("timm" / "torchvision") names them."""
    return {kw: getattr(config, field) for field, kw in _KEYWORDS[library].items() if getattr(config, field) is not None}


def build_with_rates(create: Callable[..., nn.Module], config: TrialConfig, library: str, **kwargs: Any) -> nn.Module:
    """``create(**kwargs)`` with the rates ``config`` sets. A rate the builder has no argument for
    is a StudyError naming the field, except a rate of 0, left out (the model trains without
    one either way); a drop-path rate the builder fixes is rescaled (:func:`_rescale_drop_path`);
    other errors propagate."""
    rates = library_kwargs(config, library)
    rescale: float | None = None
    while True:
        try:
            model = create(**kwargs, **rates)
        except TypeError as e:
            text = str(e)
            field = next((f for f, kw in _KEYWORDS[library].items() if kw in rates and f"'{kw}'" in text), None)
            if field is None:
                raise
            kw = _KEYWORDS[library][field]
            if rates[kw] == 0 and "unexpected keyword" in text:
                del rates[kw]
                continue
            if kw == "stochastic_depth_prob" and "multiple values" in text:
                rescale = rates.pop(kw)
                continue
            what = "drop-path (stochastic depth) rate" if field == "drop_path_rate" else "dropout rate"
            why = "its builder fixes it" if "multiple values" in text else f"it takes no {kw!r}"
            raise StudyError(
                f"field {field!r} is {rates[kw]} but the {what} of model {config.model!r} cannot be set "
                f"({why}); leave {field} None for this model"
            ) from e
        else:
            if rescale is not None:
                _rescale_drop_path(model, rescale, config.model)
            return model


def _rescale_drop_path(model: nn.Module, rate: float, name: str) -> None:
    """Set the drop-path rate of a torchvision model whose builder fixes it (swin_*, maxvit_t):
    their rate rises linearly over the blocks to the builder's value at the last one, so scaling
    every block's probability by rate / the largest gives what passing ``rate`` would."""
    layers: list[Any] = [m for m in model.modules() if type(m).__name__ == "StochasticDepth"]
    top = max((float(m.p) for m in layers), default=0.0)
    if top <= 0:
        raise StudyError(
            f"field 'drop_path_rate' is {rate} but model {name!r} has no drop-path (stochastic depth) "
            "layer; leave drop_path_rate None for this model"
        )
    for m in layers:
        m.p = float(m.p) * rate / top


def _is_drop_path(module: nn.Module) -> bool:
    # timm's DropPath (and its variants), torchvision's StochasticDepth.
    name = type(module).__name__
    return "DropPath" in name or name == "StochasticDepth"


def check_regularisation(model: nn.Module, config: TrialConfig) -> None:
    """Raise a StudyError when the built model does not hold the rate ``config`` set: no
    drop-path module for ``drop_path_rate`` > 0, no dropout of ``drop_rate`` (a ``drop_rate``
    attribute, timm's convention, or a Dropout layer of that probability)."""
    if config.drop_path_rate and not any(_is_drop_path(m) for m in model.modules()):
        raise StudyError(
            f"field 'drop_path_rate' is {config.drop_path_rate} but model {config.model!r} has no "
            "drop-path (stochastic depth) layer; leave drop_path_rate None for this model"
        )
    rate = config.drop_rate
    if rate:  # 0: no dropout, which a model without one has too
        attr = getattr(model, "drop_rate", None)
        found = (isinstance(attr, float) and math.isclose(attr, rate)) or any(
            isinstance(m, nn.Dropout) and math.isclose(m.p, rate) for m in model.modules()
        )
        if not found:
            raise StudyError(
                f"field 'drop_rate' is {rate} but model {config.model!r} has no dropout of that rate "
                "once built (its builder ignores it); leave drop_rate None, or add one with "
                "head_widths=[] and head_dropout"
            )


class ReplacementHead(nn.Sequential):
    """The MLP ``head_widths`` puts in place of a model's classifier: for each width Linear ->
    [norm] -> activation -> [dropout], then the classifier Linear (named ``classifier``). With no
    width, dropout (if any) and the classifier."""

    def __init__(
        self, in_features: int, num_classes: int, *, widths: list[int], dropout: float, norm: str, act: str
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        features = in_features
        for j, width in enumerate(widths, 1):
            n = "" if j == 1 else str(j)
            layers[f"dense{n}"] = nn.Linear(features, width)
            if norm == "batch":
                layers[f"norm{n}"] = nn.BatchNorm1d(width)
            elif norm == "layer":
                layers[f"norm{n}"] = nn.LayerNorm(width)
            layers[f"act{n}"] = activation(act, HEAD_LEAKY_SLOPE)
            if dropout > 0:
                layers[f"dropout{n}"] = nn.Dropout(dropout)
            features = width
        if not widths and dropout > 0:
            layers["dropout"] = nn.Dropout(dropout)
        layers["classifier"] = nn.Linear(features, num_classes)
        super().__init__(layers)


def replace_head(model: nn.Module, classifier: str, config: TrialConfig, num_classes: int) -> None:
    """Put a :class:`ReplacementHead` where the Linear ``classifier`` (a qualified name) is."""
    assert config.head_widths is not None
    modules = dict(model.named_modules())
    old = modules[classifier]
    if not isinstance(old, nn.Linear):
        raise StudyError(
            f"field 'head_widths' is {config.head_widths} but the classifier of model {config.model!r} "
            f"({classifier}) is a {type(old).__name__}, not a Linear; leave head_widths None"
        )
    parent_name, _, attr = classifier.rpartition(".")
    parent = modules[parent_name] if parent_name else model
    head = ReplacementHead(
        old.in_features, num_classes, widths=config.head_widths, dropout=config.head_dropout,
        norm=config.head_norm, act=config.head_activation,
    )
    setattr(parent, attr, head)
