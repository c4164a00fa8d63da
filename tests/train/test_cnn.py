"""The small CNN as sweeps shape it: every cnn_* field changes the network, defaults do not."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from ablate import Study
from ablate.errors import StudyError
from ablate.run import plan_trials
from ablate.study import make_config
from ablate.study._config import _HASHED_WHEN_SET, FIELD_UNITS, FIELDS, unused_settings
from ablate.train import check_trial_config, smoke_config, train_trial
from ablate.train._models import build_model

from .helpers import tiny

NEW_CNN_FIELDS = [
    "cnn_kernel_sizes", "cnn_padding", "cnn_pool", "cnn_pool_size", "cnn_pool_stride", "cnn_block_filters",
    "cnn_dense_widths", "cnn_dropout_position", "cnn_conv_dropout", "cnn_bn_position", "cnn_leaky_relu_slope",
    "cnn_dense_activation", "cnn_init", "cnn_init_std", "cnn_conv_bias",
]  # fmt: skip


def _net(**kw: Any) -> nn.Module:
    base: dict[str, Any] = dict(model="cnn", image_size=32, cnn_blocks=3, cnn_filters=8, cnn_dense=16)
    return build_model(tiny(**{**base, **kw}), in_chans=3, num_classes=5)


def _structure(net: nn.Module) -> list[tuple[str, str]]:
    return [(n, type(m).__name__) for n, m in net.named_modules() if n and not list(m.children())]


def test_defaults_build_todays_network() -> None:
    # The layout (and so the state-dict keys of existing checkpoints) before the recipe fields.
    block = [("conv", "Conv2d"), ("bn", "BatchNorm2d"), ("act", "ReLU"), ("pool", "MaxPool2d")]
    head = [("flatten", "Flatten"), ("dropout", "Dropout"), ("dense", "Linear"), ("act", "ReLU"), ("classifier", "Linear")]
    expected = [(f"block{i}.{n}", t) for i in (1, 2, 3) for n, t in block] + [(f"head.{n}", t) for n, t in head]
    net = _net()
    assert _structure(net) == expected
    assert net.block1.conv.bias is None and net.block1.conv.padding == (1, 1)
    assert net.block1.pool.kernel_size == 2 and net.block1.pool.stride == 2


def test_new_fields_at_their_default_keep_the_config_hash() -> None:
    # Hashes computed on main before these fields existed: existing databases keep their trials.
    assert make_config({}, where="t").config_hash == "c10b8c31c80ff6d9"
    assert tiny().config_hash == "71b50c54380b4690"
    assert set(NEW_CNN_FIELDS) <= set(_HASHED_WHEN_SET)
    assert tiny(cnn_kernel_sizes=[5]).config_hash != tiny().config_hash
    assert all(FIELD_UNITS.get(n) for n in ("cnn_kernel_sizes", "cnn_pool_size", "cnn_block_filters", "cnn_dense_widths"))


CASES: list[dict[str, Any]] = [
    dict(cnn_kernel_sizes=[5, 3, 7]),
    dict(cnn_kernel_sizes=[4], cnn_padding="same"),
    dict(cnn_kernel_sizes=[3, 3, 5], cnn_padding="valid"),
    dict(cnn_pool="avg", cnn_pool_size=3, cnn_pool_stride=2),
    dict(cnn_pool="max", cnn_pool_size=3, cnn_pool_stride=1),
    dict(cnn_pool="none"),
    dict(cnn_pool="none", cnn_padding="valid", cnn_kernel_sizes=[5]),
    dict(cnn_blocks=6, cnn_pool_size=3),
    dict(cnn_block_filters=[4, 12, 6], cnn_dense_widths=[32, 16, 8]),
    dict(cnn_dropout=0.3, cnn_dropout_position="after_dense", cnn_conv_dropout=0.1, cnn_dense_widths=[9, 7]),
]


@pytest.mark.parametrize("kw", CASES, ids=[str(i) for i in range(len(CASES))])
def test_geometry_fields_build_a_network_that_runs(kw: dict[str, Any]) -> None:
    net = _net(**kw)
    net.eval()
    out = net(torch.randn(2, 3, 32, 32))  # the dense layer's input size is computed right
    assert out.shape == (2, 5)


def test_kernels_padding_and_pooling_are_what_the_fields_say() -> None:
    net = _net(cnn_kernel_sizes=[5, 3, 7], cnn_padding="valid", cnn_pool="avg", cnn_pool_size=3, cnn_pool_stride=1)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5), (3, 3), (7, 7)] and all(c.padding == (0, 0) for c in convs)
    assert isinstance(net.block2.pool, nn.AvgPool2d) and net.block2.pool.kernel_size == 3 and net.block2.pool.stride == 1
    # 32 -5+1 = 28, pool 3/1 -> 26; -3+1 = 24 -> 22; -7+1 = 16 -> 14
    assert net.head.dense.in_features == 32 * 14 * 14
    flat = _net(cnn_pool="none")
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in flat.modules())
    assert flat.head.dense.in_features == 32 * 32 * 32  # no downsampling


def test_filters_dense_layers_and_dropout_positions() -> None:
    net = _net(cnn_block_filters=[4, 12, 6], cnn_dense_widths=[32, 16], cnn_dropout=0.25)
    assert [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)] == [4, 12, 6]
    assert [n for n, _ in _structure(net) if n.startswith("head.")] == [
        "head.flatten", "head.dropout", "head.dense", "head.act", "head.dropout2", "head.dense2", "head.act2",
        "head.classifier",
    ]  # fmt: skip
    assert net.head.dense2.in_features == 32 and net.head.classifier.in_features == 16
    after = _net(cnn_dense_widths=[32, 16], cnn_dropout=0.25, cnn_dropout_position="after_dense", cnn_conv_dropout=0.1)
    assert [n for n, _ in _structure(after) if n.startswith("head.")] == [
        "head.flatten", "head.dense", "head.act", "head.dropout", "head.dense2", "head.act2", "head.dropout2",
        "head.classifier",
    ]  # fmt: skip
    assert after.head.dropout2.p == 0.25 and after.block3.dropout.p == 0.1
    assert [n for n, _ in _structure(after) if n.startswith("block1.")][-2:] == ["block1.pool", "block1.dropout"]


def test_batch_norm_position_and_conv_bias() -> None:
    after = _net(cnn_bn_position="after_act")
    assert [n for n, _ in _structure(after) if n.startswith("block1.")] == ["block1.conv", "block1.act", "block1.bn", "block1.pool"]
    assert after.block1.conv.bias is not None  # auto: the activation sits between conv and norm
    assert _net(cnn_conv_bias=True).block1.conv.bias is not None
    assert _net(cnn_batch_norm=False, cnn_conv_bias=False).block1.conv.bias is None
    assert _net(cnn_batch_norm=False).block1.conv.bias is not None


@pytest.mark.parametrize(
    ("name", "cls"),
    [("tanh", nn.Tanh), ("leaky_relu", nn.LeakyReLU), ("selu", nn.SELU), ("elu", nn.ELU), ("gelu", nn.GELU)],
)
def test_activations_and_the_dense_activation(name: str, cls: type) -> None:
    net = _net(cnn_activation=name, cnn_leaky_relu_slope=0.3)
    assert isinstance(net.block2.act, cls) and isinstance(net.head.act, cls)
    if name == "leaky_relu":
        assert net.block2.act.negative_slope == 0.3
    own = _net(cnn_activation=name, cnn_dense_activation="relu")
    assert isinstance(own.block1.act, cls) and isinstance(own.head.act, nn.ReLU)
    linear = _net(cnn_activation=name, cnn_dense_activation="none")
    assert not hasattr(linear.head, "act")
    x = torch.randn(3, 3, 32, 32, requires_grad=True)
    net.train()
    net(x).sum().backward()  # in-place activations keep a valid backward pass
    assert x.grad is not None and torch.isfinite(x.grad).all()


def _weights(net: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def test_weight_init_schemes() -> None:
    torch.manual_seed(0)
    kw: dict[str, Any] = dict(cnn_filters=32, cnn_dense=256, cnn_batch_norm=False)
    default = _net(**kw)
    assert any(float(m.bias.detach().abs().sum()) > 0 for m in default.modules() if isinstance(m, nn.Linear))
    dense_in = default.head.dense.in_features
    std = {w.shape: float(w.std()) for w in _weights(default)}
    for scheme, expect in (
        ("kaiming_normal", math.sqrt(2 / dense_in)),
        ("kaiming_uniform", math.sqrt(2 / dense_in)),
        ("xavier_normal", math.sqrt(2 / (dense_in + 256))),
        ("xavier_uniform", math.sqrt(2 / (dense_in + 256))),
    ):
        net = _net(**kw, cnn_init=scheme)
        assert float(net.head.dense.weight.std()) == pytest.approx(expect, rel=0.05), scheme
        assert float(net.head.dense.weight.std()) != pytest.approx(std[net.head.dense.weight.shape], rel=0.05)
        assert all(float(m.bias.detach().abs().sum()) == 0 for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    trunc = _net(**kw, cnn_init="trunc_normal", cnn_init_std=0.05)
    w = trunc.head.dense.weight
    assert float(w.abs().max()) <= 2 * 0.05 and float(w.std()) == pytest.approx(0.05 * 0.88, rel=0.05)
    leaky = _net(**kw, cnn_init="kaiming_normal", cnn_activation="leaky_relu", cnn_leaky_relu_slope=0.5)
    assert float(leaky.head.dense.weight.std()) == pytest.approx(math.sqrt(2 / (1 + 0.25) / dense_in), rel=0.05)


def test_lists_that_do_not_fit_cnn_blocks_are_refused() -> None:
    with pytest.raises(StudyError, match=r"field 'cnn_kernel_sizes' is \[3, 5\] but cnn_blocks is 3; allowed: one"):
        tiny(model="cnn", cnn_blocks=3, cnn_kernel_sizes=[3, 5])
    with pytest.raises(StudyError, match=r"field 'cnn_block_filters' is \[8, 8\] but cnn_blocks is 3"):
        tiny(model="cnn", cnn_blocks=3, cnn_block_filters=[8, 8])
    with pytest.raises(StudyError, match=r"field 'cnn_dense_widths' is \[0\]"):
        tiny(cnn_dense_widths=[0])
    # Another model: the cnn lists are unused, not checked against cnn_blocks.
    tiny(model="resnet18", cnn_kernel_sizes=[3, 5])
    with pytest.raises(StudyError, match="block 3 of 3 leaves no pixel of the 12 px input"):
        check_trial_config(tiny(cnn_blocks=3, cnn_padding="valid", cnn_kernel_sizes=[5], cnn_pool="none"))


def test_plan_refuses_a_misfit_list_with_the_reason() -> None:
    study = Study(
        name="kernels", base=dict(dataset="synthetic", num_classes=4, model="cnn", cnn_blocks=3, epochs=1),
        factors=dict(cnn_kernel_sizes=[[3], [3, 5, 7], [3, 5]]),
    )
    with pytest.raises(StudyError, match=r"study 'kernels'.*field 'cnn_kernel_sizes' is \[3, 5\] but cnn_blocks is 3"):
        plan_trials(study)
    ok = dataclasses_replace(study, factors=dict(cnn_kernel_sizes=[[3], [3, 5, 7]], cnn_pool=["max", "none"]))
    assert len(plan_trials(ok).specs) == 4


def dataclasses_replace(study: Study, **kw: Any) -> Study:
    import dataclasses

    return dataclasses.replace(study, **kw)


def test_unused_cnn_settings() -> None:
    for name in NEW_CNN_FIELDS:
        assert name in unused_settings(tiny(model="resnet18")), name
    cnn = unused_settings(tiny())
    assert {"cnn_pool_size", "cnn_block_filters", "cnn_kernel_sizes"}.isdisjoint(cnn)
    assert {"cnn_leaky_relu_slope", "cnn_init_std", "cnn_dropout_position"} <= set(cnn)
    assert {"cnn_filters", "cnn_organisation"} <= set(unused_settings(tiny(cnn_block_filters=[4, 4])))
    assert "cnn_dense" in unused_settings(tiny(cnn_dense_widths=[8]))
    assert {"cnn_pool_size", "cnn_pool_stride"} <= set(unused_settings(tiny(cnn_pool="none")))
    assert "cnn_bn_position" in unused_settings(tiny(cnn_batch_norm=False))
    assert "cnn_leaky_relu_slope" not in unused_settings(tiny(cnn_dense_activation="leaky_relu"))
    assert "cnn_init_std" not in unused_settings(tiny(cnn_init="trunc_normal"))
    assert "cnn_dropout_position" not in unused_settings(tiny(cnn_dropout=0.2))
    for name in NEW_CNN_FIELDS:
        assert FIELDS[name].metadata["doc"].startswith("cnn: ")


RECIPE = dict(
    cnn_kernel_sizes=[5, 3], cnn_pool="avg", cnn_block_filters=[6, 4], cnn_dense_widths=[12, 8],
    cnn_dropout=0.2, cnn_dropout_position="after_dense", cnn_conv_dropout=0.1, cnn_bn_position="after_act",
    cnn_activation="leaky_relu", cnn_dense_activation="tanh", cnn_init="kaiming_uniform", cnn_conv_bias=False,
)


@pytest.mark.slow
def test_a_swept_recipe_trains_and_smoke_runs_it() -> None:
    result = train_trial(tiny(**RECIPE, epochs=2))
    assert result.status == "completed" and result.train_loss is not None and math.isfinite(result.train_loss)
    smoke = train_trial(smoke_config(tiny(**RECIPE)))
    assert smoke.status == "completed" and smoke.epochs_run == 1
