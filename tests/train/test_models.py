"""Models by name, their stages, freezing, per-stage learning rates, local pretrained weights."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from ablate.errors import DataNotFoundError, StudyError
from ablate.study import TrialConfig
from ablate.train import (
    MODELS,
    check_model_name,
    check_trial_config,
    list_model_names,
    model_family,
    train_trial,
)
from ablate.train._checks import _STAGES, EVERY_FAMILY_FIELDS
from ablate.train._models import build_model
from ablate.train._stages import apply_freeze, parameter_groups, resolve_stages

from .helpers import tiny

FAMILIES = [
    ("cnn", 12, ["block1", "block2", "head"]),
    ("resnet18", 16, ["stem", "layer1", "layer2", "layer3", "layer4", "head"]),
    ("efficientnet_b0", 16, ["stem", *[f"blocks.{i}" for i in range(7)], "head"]),
    ("mobilenetv3_small_100", 16, ["stem", *[f"blocks.{i}" for i in range(6)], "head"]),
    ("vit_tiny_patch16_224", 32, ["stem", *[f"blocks.{i}" for i in range(12)], "head"]),
    ("swin_tiny_patch4_window7_224", 32, ["stem", *[f"layers.{i}" for i in range(4)], "head"]),
    ("tv:resnet18", 16, ["stem", "layer1", "layer2", "layer3", "layer4", "head"]),
    ("tv:mobilenet_v3_small", 16, [*[f"features.{i}" for i in range(13)], "head"]),
]


@pytest.mark.parametrize(("model", "size", "stages"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_each_family_builds_resolves_its_stages_and_steps(model: str, size: int, stages: list[str]) -> None:
    cfg = tiny(model=model, image_size=size)
    net = build_model(cfg, in_chans=3, num_classes=4)
    assert resolve_stages(net).names == stages
    check_trial_config(cfg)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]
    out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, 4)
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 3])).backward()
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["resnet18", "tv:resnet18"])
def test_timm_and_torchvision_models_train_in_a_trial(model: str) -> None:
    result = train_trial(tiny(model=model, image_size=8, synthetic_samples=32, epochs=1, cifar_stem=True))
    assert result.status == "completed" and result.n_params > 100_000


def test_cifar_stem_keeps_32px_resolution_through_the_stem() -> None:
    plain = build_model(tiny(model="resnet18", image_size=32), in_chans=3, num_classes=4)
    cifar = build_model(tiny(model="resnet18", image_size=32, cifar_stem=True), in_chans=3, num_classes=4)
    x = torch.randn(1, 3, 32, 32)
    stem = lambda m: m.maxpool(m.act1(m.bn1(m.conv1(x))))  # noqa: E731
    assert stem(plain).shape[-1] == 8 and stem(cifar).shape[-1] == 32
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    with pytest.raises(StudyError, match="cifar_stem"):
        build_model(tiny(model="efficientnet_b0", cifar_stem=True), in_chans=3, num_classes=4)


def test_cnn_knobs_shape_the_network() -> None:
    net = build_model(
        tiny(model="cnn", image_size=32, cnn_blocks=3, cnn_filters=16, cnn_organisation="half",
             cnn_activation="mish", cnn_batch_norm=False, cnn_dropout=0.3, cnn_dense=20),
        in_chans=1, num_classes=7,
    )
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 8, 4] and convs[0].in_channels == 1
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert isinstance(net.block1.act, torch.nn.Mish)
    assert net.head.dense.in_features == 4 * 4 * 4 and net.head.dense.out_features == 20
    assert net.head.dropout.p == 0.3 and net.head.classifier.out_features == 7


def _pretrained(**kw: object) -> dict[str, object]:
    return {"model": "resnet18", "image_size": 16, "pretrained": True, **kw}


def test_freeze_up_to_a_stage_and_head_only() -> None:
    net = build_model(tiny(model="resnet18"), in_chans=3, num_classes=4)
    stages = resolve_stages(net)
    frozen_bn = apply_freeze(net, stages, "layer3")
    grads = {n: p.requires_grad for n, p in net.named_parameters()}
    for name, trainable in grads.items():
        later = name.startswith(("layer4.", "fc."))
        assert trainable == later, name
    assert frozen_bn and all(not any(p.requires_grad for p in bn.parameters()) for bn in frozen_bn)

    net = build_model(tiny(model="resnet18"), in_chans=3, num_classes=4)
    apply_freeze(net, resolve_stages(net), "head_only")
    assert [n for n, p in net.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]


@pytest.mark.slow
def test_frozen_stages_keep_their_batchnorm_statistics(tmp_path: Path) -> None:
    weights = tmp_path / "r18.pth"
    torch.save(build_model(tiny(model="resnet18"), in_chans=3, num_classes=1000).state_dict(), weights)
    cfg = tiny(**_pretrained(weights_path=str(weights), freeze="layer3", epochs=1))
    result = train_trial(cfg, checkpoint_dir=tmp_path / "ck")
    trained = torch.load(tmp_path / "ck" / "last.pt", weights_only=True)["model"]
    original = torch.load(weights, weights_only=True)
    for key in ("layer3.1.bn2.running_mean", "layer3.1.conv2.weight", "conv1.weight"):
        assert torch.equal(trained[key], original[key]), key
    assert not torch.equal(trained["layer4.1.bn2.running_mean"], original["layer4.1.bn2.running_mean"])
    assert result.n_trainable_params < result.n_params


def test_lr_groups_from_the_head_backwards() -> None:
    net = build_model(tiny(model="resnet18"), in_chans=3, num_classes=4)
    groups = parameter_groups(net, resolve_stages(net), 0.1, [1.0, 0.5, 0.25])
    assert [g["lr"] for g in groups] == pytest.approx([0.1, 0.05, 0.025])
    assert [g["name"] for g in groups] == ["layer4+head", "layer3", "stem+layer1+layer2"]
    ids = {id(p): n for n, p in net.named_parameters()}
    owners = [{ids[id(p)].split(".")[0] for p in g["params"]} for g in groups]  # type: ignore[attr-defined]
    assert owners == [{"layer4", "fc"}, {"layer3"}, {"conv1", "bn1", "layer1", "layer2"}]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))  # type: ignore[arg-type]


def test_lr_groups_reach_the_optimizer_and_skip_frozen_parameters(tmp_path: Path) -> None:
    weights = tmp_path / "r18.pth"
    torch.save(build_model(tiny(model="resnet18"), in_chans=3, num_classes=1000).state_dict(), weights)
    from ablate.train._trainer import _Trial

    cfg = tiny(**_pretrained(weights_path=str(weights), freeze="layer1", lr_groups=[1, 0.5, 0.25], lr=0.2))
    trial = _Trial(cfg, metric="val_acc", maximize=True, checkpoint_dir=None)
    lrs = [g["lr"] for g in trial.optimizer.param_groups]
    assert lrs == pytest.approx([0.2, 0.1, 0.05])
    last = trial.optimizer.param_groups[2]["params"]
    names = {id(p): n for n, p in trial.model.named_parameters()}
    assert {names[id(p)].split(".")[0] for p in last} == {"layer2"}  # stem and layer1 are frozen


def test_check_trial_config_errors_name_the_stages() -> None:
    check_trial_config(tiny(**_pretrained(freeze="layer3", lr_groups=[1, 0.5, 0.25])))
    with pytest.raises(StudyError) as err:
        check_trial_config(tiny(**_pretrained(freeze="layer5")))
    assert "stem, layer1..layer4, head" in str(err.value) and "'layer5'" in str(err.value)
    with pytest.raises(StudyError, match=r"blocks\.0\.\.blocks\.6"):
        check_trial_config(tiny(**_pretrained(model="efficientnet_b0", freeze="layer3")))
    with pytest.raises(StudyError, match="lr_groups"):
        check_trial_config(tiny(lr_groups=[1.0] * 7, model="resnet18"))
    with pytest.raises(StudyError, match="cifar_stem"):
        check_trial_config(tiny(model="vit_tiny_patch16_224", image_size=32, cifar_stem=True))


def test_missing_pretrained_weights_name_where_they_were_looked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(DataNotFoundError) as err:
        train_trial(tiny(**_pretrained()))
    assert "resnet18_a1_0-d63eafa0.pth" in str(err.value) and "weights_path" in str(err.value)
    with pytest.raises(DataNotFoundError, match=r"resnet18-f37072fd\.pth"):
        train_trial(tiny(**_pretrained(model="tv:resnet18")))
    with pytest.raises(DataNotFoundError, match=r"nope\.pth does not exist"):
        train_trial(tiny(**_pretrained(weights_path=str(tmp_path / "nope.pth"))))


@pytest.mark.parametrize("model", ["resnet18", "tv:resnet18"])
def test_pretrained_weights_from_the_local_torch_cache(model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    source = build_model(tiny(model=model), in_chans=3, num_classes=1000)
    name = "resnet18_a1_0-d63eafa0.pth" if model == "resnet18" else "resnet18-f37072fd.pth"
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(source.state_dict(), cache / name)
    cfg = tiny(**_pretrained(model=model))
    net = build_model(cfg, in_chans=3, num_classes=4)
    assert torch.equal(net.conv1.weight, source.conv1.weight)
    assert net.fc.out_features == 4  # a fresh classifier for our classes


def test_weights_that_do_not_fit_the_model_are_a_study_error(tmp_path: Path) -> None:
    weights = tmp_path / "wrong.pth"
    torch.save(build_model(tiny(model="tv:resnet18"), in_chans=3, num_classes=10).state_dict(), weights)
    cfg = dataclasses.replace(tiny(**_pretrained(model="tv:mobilenet_v3_small")), weights_path=str(weights))
    with pytest.raises(StudyError, match="does not fit"):
        build_model(cfg, in_chans=3, num_classes=4)


# --- the model registry: every family builds a tiny representative, refuses near misses, lists.

# Per registered family: a tiny model of it, a near miss and its expected close match, a wildcard.
REPRESENTATIVES = {
    "cnn": ("cnn", "cnm", "cnn", "cn*"),
    "<timm name>": ("resnet10t", "resnet_18", "resnet18", "resnet1*"),
    "tv:<torchvision name>": ("tv:mobilenet_v3_small", "tv:resnet500", "tv:resnet50", "tv:resnet*"),
}


def test_every_family_has_a_representative() -> None:
    assert sorted(MODELS) == sorted(REPRESENTATIVES)


@pytest.mark.parametrize("family", REPRESENTATIVES)
def test_each_registered_family_builds_on_the_meta_device_and_checks(family: str) -> None:
    model = REPRESENTATIVES[family][0]
    cfg = tiny(model=model, image_size=32)
    assert check_model_name(model) is MODELS.get(family, where="test")
    with torch.device("meta"):
        net = build_model(cfg, in_chans=3, num_classes=5, load_weights=False)
    assert next(net.parameters()).is_meta
    assert len(resolve_stages(net).names) >= 2
    check_trial_config(cfg)


@pytest.mark.parametrize("family", REPRESENTATIVES)
def test_an_unknown_name_of_each_family_names_its_close_matches(family: str) -> None:
    _, wrong, close, _ = REPRESENTATIVES[family]
    for check in (check_model_name, lambda name: check_trial_config(tiny(model=name))):
        with pytest.raises(StudyError) as err:
            check(wrong)
        msg = str(err.value)
        assert msg.startswith(f"field 'model' is {wrong!r}, which is not a known model; did you mean ")
        assert repr(close) in msg and "list them with `ablate models`" in msg


@pytest.mark.parametrize("family", REPRESENTATIVES)
def test_wildcards_list_each_familys_names(family: str) -> None:
    _, _, close, pattern = REPRESENTATIVES[family]
    names = list_model_names(pattern)
    assert close in names
    assert names == sorted(names) and all(n.startswith(pattern.rstrip("*")) for n in names)
    assert set(names) <= set(list_model_names())


def test_names_are_checked_against_the_libraries_not_a_cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import timm
    import torchvision

    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    assert set(list_model_names("tv:*")) == {"tv:" + n for n in torchvision.models.list_models(module=torchvision.models)}
    assert set(timm.list_models()) <= set(list_model_names())
    check_model_name(timm.list_models()[-1])
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_a_users_family_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS.items()))  # registered for this test only

    @model_family("toy<width>", describe="toy<width>", shape_fields=())
    def toy(config: TrialConfig, in_chans: int, num_classes: int, load_weights: bool) -> torch.nn.Module:
        width = int(config.model.removeprefix("toy"))
        return torch.nn.Sequential(OrderedDict(
            stem=torch.nn.Conv2d(in_chans, width, 3), layer1=torch.nn.Conv2d(width, width, 3),
            pool=torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()),
            fc=torch.nn.Linear(width, num_classes),
        ))

    check_trial_config(tiny(model="toy8", lr_groups=[1.0, 0.5]))
    net = build_model(tiny(model="toy8"), in_chans=3, num_classes=4)
    assert resolve_stages(net).names == ["stem", "layer1", "head"]
    assert "toy<width>" in list_model_names("toy*")
    with pytest.raises(StudyError, match="lr_groups"):
        check_trial_config(tiny(model="toy8", lr_groups=[1.0] * 4))
    with pytest.raises(StudyError, match=r"allowed: cnn, any timm name, tv:<torchvision name>, or toy<width>"):
        check_model_name("")
    assert check_model_name("resnet18") is MODELS.get("<timm name>", where="test")  # timm still answers the rest


def test_the_cnn_family_has_no_pretrained_weights() -> None:
    with pytest.raises(StudyError, match="field 'pretrained' is true but model 'cnn' has no pretrained weights"):
        check_trial_config(tiny(model="cnn", pretrained=True))


class _Reads:
    """A config that records which fields are read."""

    def __init__(self, config: object) -> None:
        self.config = config
        self.read: set[str] = set()

    def __getattr__(self, name: str) -> object:
        self.read.add(name)
        return getattr(self.config, name)


@pytest.mark.parametrize("family", REPRESENTATIVES)
def test_the_stage_cache_is_keyed_on_every_field_a_family_reads(family: str) -> None:
    model = REPRESENTATIVES[family][0]
    reads = _Reads(tiny(model=model, image_size=32))
    with torch.device("meta"):
        build_model(reads, in_chans=3, num_classes=5, load_weights=False)  # type: ignore[arg-type]
    shape_fields = MODELS.get(family, where="test").shape_fields
    # build_model reads the fine-tuning fields of every family (rates, head), keyed on too.
    assert shape_fields is not None and reads.read <= {"model", *shape_fields, *EVERY_FAMILY_FIELDS}


def test_configs_of_one_shape_are_checked_from_the_cache() -> None:
    check_trial_config(tiny(model="cnn", cnn_blocks=3))
    before = len(_STAGES)
    for lr in (0.1, 0.2, 0.3):  # fields that do not shape the model: no new build
        check_trial_config(tiny(model="cnn", cnn_blocks=3, lr=lr, epochs=3))
    assert len(_STAGES) == before
    check_trial_config(tiny(model="cnn", cnn_blocks=4, lr_groups=[1.0] * 4))  # a new shape is built
    assert len(_STAGES) == before + 1
    with pytest.raises(StudyError, match="lr_groups"):
        check_trial_config(tiny(model="cnn", cnn_blocks=3, lr_groups=[1.0] * 4))  # 3 blocks: 3 groups at most
