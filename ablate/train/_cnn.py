"""The configurable small CNN of the iNaturalist study (``model="cnn"``, the ``cnn_*`` knobs).

``cnn_blocks`` blocks of conv -> [batch norm] -> activation -> pool [-> dropout], then flatten
and one or more dense layers (each with its activation, dropout before or after it), then the
classifier. By default: conv 3x3 "same", batch norm before the activation, max-pool 2x2, one
dense layer of ``cnn_dense`` units with dropout before it. Filters per block are
``cnn_block_filters`` or follow ``cnn_organisation``: ``same`` (f, f, f...), ``double`` (f, 2f,
4f...) or ``half`` (f, f/2...). Modules are named ``block1``..``blockN`` and ``head`` (with
``head.classifier``), the stage names ``freeze`` and ``lr_groups`` use; the first dense layer
is ``head.dense``, the next ``head.dense2``...
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
from torch import nn

from ablate.errors import StudyError

if TYPE_CHECKING:
    from ablate.study import TrialConfig

# cnn_init="trunc_normal" cuts the normal at this many standard deviations (Keras' TruncatedNormal).
TRUNC_NORMAL_CUT = 2.0


def _activation(name: str, slope: float) -> nn.Module:
    # In place where torch offers it: one memory pass less per activation (measured ~+20 %
    # images/s for the default CNN on CPU). Safe here: conv, batch norm, pooling and linear layers
    # keep their inputs, not their outputs, for the backward pass; the activations that run in
    # place compute their gradient from their output (leaky ReLU: only with a slope > 0, which
    # the field requires).
    if name == "gelu":
        return nn.GELU()
    if name == "tanh":
        return nn.Tanh()
    if name == "leaky_relu":
        return nn.LeakyReLU(slope, inplace=True)
    return {"relu": nn.ReLU, "silu": nn.SiLU, "mish": nn.Mish, "selu": nn.SELU, "elu": nn.ELU}[name](inplace=True)


def cnn_widths(blocks: int, filters: int, organisation: str) -> list[int]:
    """Filters of each block."""
    if organisation == "same":
        return [filters] * blocks
    if organisation == "double":
        return [filters * 2**i for i in range(blocks)]
    return [max(1, filters // 2**i) for i in range(blocks)]


def _pool_side(side: int, size: int, stride: int) -> int:
    """Output side of torch's pooling with ceil_mode and no padding (``pooling_output_shape``)."""
    out = (side - size + stride - 1) // stride + 1
    if (out - 1) * stride >= side:
        out -= 1
    return out


class SmallCNN(nn.Module):
    """Conv blocks, dense layers, a classifier; see the module docstring."""

    def __init__(self, config: TrialConfig, *, in_chans: int, num_classes: int) -> None:
        super().__init__()
        c = config
        side = c.image_size
        channels = in_chans
        widths = c.cnn_block_filters or cnn_widths(c.cnn_blocks, c.cnn_filters, c.cnn_organisation)
        kernels = c.cnn_kernel_sizes * c.cnn_blocks if len(c.cnn_kernel_sizes) == 1 else c.cnn_kernel_sizes
        bn_first = c.cnn_batch_norm and c.cnn_bn_position == "before_act"
        bias = not bn_first if c.cnn_conv_bias is None else c.cnn_conv_bias
        pool_stride = c.cnn_pool_stride or c.cnn_pool_size
        for i, (width, k) in enumerate(zip(widths, kernels, strict=True), 1):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            if c.cnn_padding == "same":
                # An even kernel pads one pixel more on one side: torch's padding="same".
                layers["conv"] = nn.Conv2d(channels, width, k, padding=k // 2 if k % 2 else "same", bias=bias)
            else:
                layers["conv"] = nn.Conv2d(channels, width, k, padding=0, bias=bias)
                side -= k - 1
            act = _activation(c.cnn_activation, c.cnn_leaky_relu_slope)
            if c.cnn_batch_norm and bn_first:
                layers["bn"] = nn.BatchNorm2d(width)
                layers["act"] = act
            else:
                layers["act"] = act
                if c.cnn_batch_norm:
                    layers["bn"] = nn.BatchNorm2d(width)
            # ceil_mode keeps a 1x1 map at 1x1, so any number of blocks fits any image size.
            if c.cnn_pool == "max":
                layers["pool"] = nn.MaxPool2d(c.cnn_pool_size, stride=pool_stride, ceil_mode=True)
            elif c.cnn_pool == "avg":
                layers["pool"] = nn.AvgPool2d(c.cnn_pool_size, stride=pool_stride, ceil_mode=True)
            if c.cnn_pool != "none":
                side = _pool_side(side, c.cnn_pool_size, pool_stride)
            if c.cnn_conv_dropout > 0:
                layers["dropout"] = nn.Dropout(c.cnn_conv_dropout)
            if side < 1:
                raise StudyError(
                    f"model 'cnn': block {i} of {c.cnn_blocks} leaves no pixel of the {c.image_size} px "
                    f"input (kernel {k}, padding {c.cnn_padding!r}, pool {c.cnn_pool} {c.cnn_pool_size}); use "
                    "fewer blocks, smaller kernels or pools, cnn_padding='same', or a larger image_size"
                )
            self.add_module(f"block{i}", nn.Sequential(layers))
            channels = width
        self.head = nn.Sequential(self._head(c, channels * side * side, num_classes))
        if c.cnn_init != "default":
            init_weights(self, c)

    @staticmethod
    def _head(c: TrialConfig, features: int, num_classes: int) -> OrderedDict[str, nn.Module]:
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        dense_act = c.cnn_activation if c.cnn_dense_activation == "same" else c.cnn_dense_activation
        for j, width in enumerate(c.cnn_dense_widths or [c.cnn_dense], 1):
            n = "" if j == 1 else str(j)
            if c.cnn_dropout_position == "before_dense":
                layers[f"dropout{n}"] = nn.Dropout(c.cnn_dropout)
            layers[f"dense{n}"] = nn.Linear(features, width)
            if dense_act != "none":
                layers[f"act{n}"] = _activation(dense_act, c.cnn_leaky_relu_slope)
            if c.cnn_dropout_position == "after_dense":
                layers[f"dropout{n}"] = nn.Dropout(c.cnn_dropout)
            features = width
        layers["classifier"] = nn.Linear(features, num_classes)
        return layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x


def init_weights(model: nn.Module, config: TrialConfig) -> None:
    """``cnn_init`` on every conv and linear weight, biases to 0 (batch norm keeps 1 and 0)."""
    scheme = config.cnn_init
    leaky = config.cnn_activation == "leaky_relu"
    for module in model.modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        w = module.weight
        if scheme.startswith("kaiming"):
            a = config.cnn_leaky_relu_slope if leaky else 0.0
            init = nn.init.kaiming_normal_ if scheme == "kaiming_normal" else nn.init.kaiming_uniform_
            init(w, a=a, mode="fan_in", nonlinearity="leaky_relu" if leaky else "relu")
        elif scheme == "xavier_normal":
            nn.init.xavier_normal_(w)
        elif scheme == "xavier_uniform":
            nn.init.xavier_uniform_(w)
        else:
            std = config.cnn_init_std
            nn.init.trunc_normal_(w, std=std, a=-TRUNC_NORMAL_CUT * std, b=TRUNC_NORMAL_CUT * std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
