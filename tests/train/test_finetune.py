"""Fine-tuning controls: the library's dropout and drop-path rates, a replacement head, the last k
stages, gradual unfreezing, frozen batch norm's statistics, native input size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ablate.cli import app
from ablate.errors import StudyError
from ablate.study import TrialConfig, config_hash
from ablate.study._config import _HASHED_WHEN_SET, field_doc, unused_settings
from ablate.train import check_trial_config, smoke_config
from ablate.train._finetune import ReplacementHead
from ablate.train._models import build_model, classifier_name, native_input_size, with_input_size
from ablate.train._stages import frozen_at, initially_frozen, parameter_groups, resolve_stages

from .helpers import tiny

NEW_FIELDS = (
    "train_last_stages", "unfreeze_every", "freeze_bn", "drop_rate", "drop_path_rate", "head_widths",
    "head_dropout", "head_norm", "head_activation", "native_input_size",
)


def _meta(cfg: TrialConfig, classes: int = 4) -> nn.Module:
    with torch.device("meta"):
        return build_model(cfg, in_chans=3, num_classes=classes, load_weights=False)


def _weights(tmp_path: Path, model: str = "resnet18") -> str:
    path = tmp_path / "weights.pth"
    torch.manual_seed(0)
    torch.save(build_model(tiny(model=model, image_size=16), in_chans=3, num_classes=1000).state_dict(), path)
    return str(path)


def _pretrained(weights: str, **kw: Any) -> TrialConfig:
    return tiny(model="resnet18", image_size=16, pretrained=True, weights_path=weights, **kw)


def _tops(model: nn.Module) -> set[str]:
    """Top-level modules that have a parameter with a gradient on."""
    return {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}


# --- drop_rate / drop_path_rate


def test_drop_rates_reach_timm_and_torchvision_models() -> None:
    vit = _meta(tiny(model="test_vit", image_size=32, drop_rate=0.3, drop_path_rate=0.2))
    probs = [m.drop_prob for m in vit.modules() if type(m).__name__ == "DropPath"]
    assert probs and max(probs) == pytest.approx(0.2)  # timm spreads the rate over the blocks
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for m in vit.modules())
    assert not any(type(m).__name__ == "DropPath" for m in _meta(tiny(model="test_vit", image_size=32)).modules())

    eff = _meta(tiny(model="tv:efficientnet_b0", image_size=32, drop_rate=0.4, drop_path_rate=0.1))
    assert eff.classifier[0].p == 0.4  # type: ignore[index]
    depth = [m.p for m in eff.modules() if type(m).__name__ == "StochasticDepth"]
    default = [m.p for m in _meta(tiny(model="tv:efficientnet_b0", image_size=32)).modules()
               if type(m).__name__ == "StochasticDepth"]
    assert depth == pytest.approx([p / 2 for p in default])  # torchvision's default is 0.2


@pytest.mark.parametrize(
    ("model", "field", "why"),
    [
        ("tv:resnet18", "drop_path_rate", "it takes no 'stochastic_depth_prob'"),
        ("tv:resnet18", "drop_rate", "it takes no 'dropout'"),
        ("vgg11", "drop_path_rate", "it takes no 'drop_path_rate'"),
        ("tv:mobilenet_v3_small", "drop_path_rate", "no drop-path (stochastic depth) layer"),  # taken, ignored
        ("tv:convnext_tiny", "drop_rate", "its builder ignores it"),
    ],
)
def test_a_rate_the_model_has_not_is_refused_by_name(model: str, field: str, why: str) -> None:
    with pytest.raises(StudyError) as err:
        check_trial_config(tiny(model=model, image_size=32, **{field: 0.1}))
    text = str(err.value)
    assert text.startswith(f"field {field!r} is 0.1 but ") and repr(model) in text and why in text


def test_drop_path_of_a_builder_that_fixes_it_is_what_passing_the_rate_gives() -> None:
    from torchvision.models.swin_transformer import SwinTransformer

    swin = _meta(tiny(model="tv:swin_t", image_size=32, drop_path_rate=0.05))
    with torch.device("meta"):  # swin_t's own arguments, with the rate passed
        direct = SwinTransformer([4, 4], 96, [2, 2, 6, 2], [3, 6, 12, 24], [7, 7], stochastic_depth_prob=0.05)
    probs = [m.p for m in swin.modules() if type(m).__name__ == "StochasticDepth"]
    assert probs == pytest.approx([m.p for m in direct.modules() if type(m).__name__ == "StochasticDepth"])
    assert max(probs) == pytest.approx(0.05)


def test_a_rate_of_zero_is_accepted_on_a_model_without_one() -> None:
    check_trial_config(tiny(model="tv:resnet18", image_size=32, drop_path_rate=0.0, drop_rate=0.0))
    convnext = _meta(tiny(model="tv:convnext_tiny", image_size=32, drop_path_rate=0.0))
    assert {m.p for m in convnext.modules() if type(m).__name__ == "StochasticDepth"} == {0.0}  # default 0.1


def test_the_small_cnn_points_to_its_own_fields() -> None:
    for field, value, hint in (("drop_rate", 0.1, "cnn_dropout"), ("drop_path_rate", 0.1, "no drop-path"),
                               ("head_widths", [8], "cnn_dense_widths")):
        with pytest.raises(StudyError, match=hint):
            tiny(**{field: value})


def test_plan_refuses_drop_path_on_a_model_without_it(tmp_path: Path) -> None:
    study = tmp_path / "study.py"
    study.write_text(
        "from ablate import Study\n"
        "study = Study(name='dp', base=dict(dataset='synthetic', num_classes=4, model='tv:resnet18',"
        " image_size=32), factors=dict(drop_path_rate=[0.0, 0.1]))\n"
    )
    plan = CliRunner().invoke(app, ["plan", str(study)])
    assert plan.exit_code == 2, plan.output
    lines = plan.output.strip().splitlines()
    assert len(lines) == 1 and "field 'drop_path_rate' is 0.1" in lines[0] and "'tv:resnet18'" in lines[0]


# --- the replacement head


def test_a_replacement_head_takes_the_classifiers_place_and_is_the_head_stage() -> None:
    cfg = tiny(model="tv:resnet18", image_size=32, head_widths=[32, 16], head_dropout=0.2, head_norm="batch",
               head_activation="gelu")
    net = build_model(cfg, in_chans=3, num_classes=5)
    assert isinstance(net.fc, ReplacementHead) and classifier_name(net) == "fc"
    assert [type(m).__name__ for m in net.fc] == [
        "Linear", "BatchNorm1d", "GELU", "Dropout", "Linear", "BatchNorm1d", "GELU", "Dropout", "Linear",
    ]
    assert (net.fc.dense.in_features, net.fc.dense.out_features, net.fc.classifier.out_features) == (512, 32, 5)
    assert net.train()(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    stages = resolve_stages(net)
    assert stages.classifier == "fc" and stages.head == ("avgpool", "fc")
    # head_only trains the whole new head; lr_groups put it in the head's group.
    frozen = initially_frozen(net, stages, tiny(model="tv:resnet18", freeze="head_only", pretrained=True))
    assert {n for n, _ in net.named_parameters()} - frozen == {n for n, _ in net.fc.named_parameters(prefix="fc")}
    groups = parameter_groups(net, stages, 0.1, [1.0, 0.5])
    head_ids = {id(p) for p in net.fc.parameters()}
    assert head_ids <= {id(p) for p in groups[0]["params"]}  # type: ignore[attr-defined]

    timm_net = _meta(tiny(model="test_vit", image_size=32, head_widths=[]), classes=3)
    assert classifier_name(timm_net) == "head" and [type(m).__name__ for m in timm_net.head] == ["Linear"]
    assert timm_net.get_classifier() is timm_net.head  # type: ignore[operator]
    with_dropout = _meta(tiny(model="test_vit", image_size=32, head_widths=[], head_dropout=0.5))
    assert [type(m).__name__ for m in with_dropout.head] == ["Dropout", "Linear"]


def test_plan_counts_list_levels_of_a_head_factor(tmp_path: Path) -> None:
    study = tmp_path / "heads.py"
    study.write_text(
        "from ablate import Study\n"
        "study = Study(name='heads', base=dict(dataset='synthetic', num_classes=4, model='resnet18', image_size=16),"
        " factors=dict(head_widths=[None, [], [16, 8]]))\n"
    )
    plan = CliRunner().invoke(app, ["plan", str(study)])
    assert plan.exit_code == 0, plan.output
    assert "head_widths: None: 1, []: 1, [16, 8]: 1" in plan.output


def test_head_settings_without_a_head_are_unused() -> None:
    reasons = unused_settings(tiny(model="resnet18", head_dropout=0.3))
    assert "head_widths is None" in reasons["head_dropout"]
    assert "head_norm" in unused_settings(tiny(model="resnet18", head_widths=[]))
    assert "head_dropout" not in unused_settings(tiny(model="resnet18", head_widths=[]))


# --- which stages train


def test_train_last_stages_counts_the_head_as_one() -> None:
    net = build_model(tiny(model="resnet18", image_size=16), in_chans=3, num_classes=4)
    stages = resolve_stages(net)
    for k, trained in ((1, {"fc"}), (2, {"layer4", "fc"}), (5, {"layer1", "layer2", "layer3", "layer4", "fc"})):
        frozen = initially_frozen(net, stages, tiny(model="resnet18", pretrained=True, train_last_stages=k))
        assert {n.split(".")[0] for n, _ in net.named_parameters() if n not in frozen} == trained, k


def test_train_last_stages_and_freeze_must_agree() -> None:
    check_trial_config(tiny(model="resnet18", image_size=16, pretrained=True, train_last_stages=2, freeze="layer3"))
    with pytest.raises(StudyError, match=r"fields 'freeze' \('layer2'\) and 'train_last_stages' \(2\)"):
        check_trial_config(tiny(model="resnet18", image_size=16, pretrained=True, train_last_stages=2, freeze="layer2"))
    with pytest.raises(StudyError, match=r"has 6 stages counting the head \(stem, layer1..layer4, head\); allowed: 1 to 6"):
        check_trial_config(tiny(model="resnet18", image_size=16, pretrained=True, train_last_stages=7))
    with pytest.raises(StudyError, match="'pretrained' is false"):
        tiny(model="resnet18", train_last_stages=2)


def test_gradual_unfreezing_adds_one_stage_every_n_epochs() -> None:
    net = build_model(tiny(model="resnet18", image_size=16), in_chans=3, num_classes=4)
    stages = resolve_stages(net)
    cfg = tiny(model="resnet18", pretrained=True, freeze="head_only", unfreeze_every=2, epochs=12)
    added = ["fc", "layer4", "layer3", "layer2", "layer1", "conv1", "bn1"]
    for epoch in range(1, 13):
        frozen = frozen_at(net, stages, cfg, epoch)
        trained = {n.split(".")[0] for n, _ in net.named_parameters() if n not in frozen}
        steps = (epoch - 1) // 2  # one more stage every two epochs: layer4 at epoch 3, the stem at 11
        assert trained == set(added[: 1 + steps] + (["bn1"] if steps == 5 else [])), epoch
    assert frozen_at(net, stages, cfg, 12) == set()


def test_unfreeze_every_refusals() -> None:
    with pytest.raises(StudyError, match="nothing is frozen to start with"):
        tiny(model="resnet18", unfreeze_every=1)
    with pytest.raises(StudyError, match="the trial trains 2 epochs: no stage would be unfrozen"):
        tiny(model="resnet18", pretrained=True, freeze="head_only", unfreeze_every=2, epochs=2)


@pytest.mark.slow
def test_unfrozen_stages_get_gradients_and_the_optimizer_updates_them_only_then(tmp_path: Path) -> None:
    from ablate.train._trainer import _Trial

    cfg = _pretrained(_weights(tmp_path), freeze="layer3", unfreeze_every=1, epochs=3, lr_groups=[1.0, 0.5],
                      weight_decay=0.1, optimizer="adamw")
    trial = _Trial(cfg, metric="val_acc", maximize=True, checkpoint_dir=None)
    names = {id(p): n for n, p in trial.model.named_parameters()}
    in_optimizer = {names[id(p)].split(".")[0] for g in trial.optimizer.param_groups for p in g["params"]}
    # From the start: every parameter that trains by the last epoch (layer2 from epoch 3), not those
    # frozen throughout.
    assert in_optimizer == {"layer2", "layer3", "layer4", "fc"}
    assert [g["name"] for g in trial.optimizer.param_groups] == ["layer4+head", "stem+layer1+layer2+layer3"]
    seen: list[tuple[set[str], dict[str, bool]]] = []
    snapshot = {k: v.clone() for k, v in trial.model.state_dict().items()}

    class Reporter:
        def report_epoch(self, m: Any) -> None:
            state = trial.model.state_dict()
            moved = {k: not torch.equal(state[k], snapshot[k]) for k in ("layer3.0.conv1.weight", "layer2.0.conv1.weight")}
            seen.append((_tops(trial.model), moved))

    result = trial.run(Reporter(), 0.0)
    assert result.status == "completed", result.error
    assert [s[0] for s in seen] == [{"layer4", "fc"}, {"layer3", "layer4", "fc"}, {"layer2", "layer3", "layer4", "fc"}]
    # A frozen stage is not touched, weight decay included; it moves from its first epoch unfrozen.
    assert [s[1] for s in seen] == [
        {"layer3.0.conv1.weight": False, "layer2.0.conv1.weight": False},
        {"layer3.0.conv1.weight": True, "layer2.0.conv1.weight": False},
        {"layer3.0.conv1.weight": True, "layer2.0.conv1.weight": True},
    ]
    assert result.n_trainable_params == sum(
        p.numel() for n, p in trial.model.named_parameters() if n.split(".")[0] in {"layer2", "layer3", "layer4", "fc"}
    )


@pytest.mark.slow
def test_a_gradually_unfrozen_trial_resumes_exactly(tmp_path: Path) -> None:
    from ablate.train import TrialPruned, train_trial

    class StopAfter:
        def report_epoch(self, m: Any) -> None:
            if m.epoch == 2:
                raise TrialPruned()

    cfg = _pretrained(_weights(tmp_path), freeze="layer3", unfreeze_every=1, epochs=3, optimizer="adamw",
                      synthetic_samples=32, batch_size=8)
    whole = train_trial(cfg, checkpoint_dir=tmp_path / "whole")
    with pytest.raises(TrialPruned):  # stopped after epoch 2, layer3 just unfrozen
        train_trial(cfg, reporter=StopAfter(), checkpoint_dir=tmp_path / "parts")
    resumed = train_trial(cfg, checkpoint_dir=tmp_path / "parts")
    drop = {"seconds", "images_per_s", "peak_mem_mb"}
    assert [{k: v for k, v in m.as_dict().items() if k not in drop} for m in resumed.history] == [
        {k: v for k, v in m.as_dict().items() if k not in drop} for m in whole.history
    ]
    assert resumed.n_trainable_params == whole.n_trainable_params


# --- frozen batch norm


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_freeze_bn_chooses_whether_frozen_statistics_follow_the_batches(tmp_path: Path, mode: str) -> None:
    from ablate.train import train_trial

    weights = _weights(tmp_path)
    result = train_trial(_pretrained(weights, freeze="layer3", freeze_bn=mode, epochs=1), checkpoint_dir=tmp_path / "ck")
    assert result.status == "completed", result.error
    trained = torch.load(tmp_path / "ck" / "last.pt", weights_only=True)["model"]
    original = torch.load(weights, weights_only=True)
    assert torch.equal(trained["layer3.1.bn2.weight"], original["layer3.1.bn2.weight"])  # frozen either way
    moved = not torch.equal(trained["layer3.1.bn2.running_mean"], original["layer3.1.bn2.running_mean"])
    assert moved == (mode == "train")


def test_freeze_bn_is_unused_when_nothing_is_frozen() -> None:
    assert "freeze_bn" in unused_settings(tiny(freeze_bn="train"))
    assert "freeze_bn" not in unused_settings(tiny(model="resnet18", pretrained=True, train_last_stages=1))


# --- native input size


def test_native_input_size_follows_the_model() -> None:
    assert native_input_size(tiny(model="tv:inception_v3")) == 299
    assert native_input_size(tiny(model="test_vit")) == 160
    assert with_input_size(tiny(model="tv:resnet18", native_input_size=True)).image_size == 224
    cfg = tiny(model="tv:inception_v3", native_input_size=True)
    check_trial_config(cfg)
    assert unused_settings(cfg)["image_size"].startswith("native_input_size is true")
    with pytest.raises(StudyError, match="model 'cnn' has no input size of its own"):
        check_trial_config(tiny(native_input_size=True))
    # Inception at 299 px without its auxiliary heads: logits in train mode too.
    net = _meta(with_input_size(cfg)).train()
    out = net(torch.zeros(2, 3, 299, 299, device="meta"))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4)


@pytest.mark.slow
def test_a_trial_at_native_size_trains_there_and_records_it() -> None:
    from ablate.train import train_trial

    cfg = tiny(model="test_vit", native_input_size=True, image_size=32, synthetic_samples=16, batch_size=8, epochs=1)
    result = train_trial(cfg)
    assert result.status == "completed", result.error
    assert result.data is not None and result.data["image_size"] == 160  # test_vit's pretrained_cfg
    assert "image_size" not in (train_trial(tiny(synthetic_samples=16, epochs=1)).data or {})


def test_plan_refuses_an_image_size_that_native_input_size_overrides(tmp_path: Path) -> None:
    study = tmp_path / "native.py"
    study.write_text(
        "from ablate import Study\n"
        "study = Study(name='native', base=dict(dataset='synthetic', num_classes=4, model='test_vit',"
        " image_size=64, native_input_size=True), factors=dict(lr=[0.1]))\n"
    )
    plan = CliRunner().invoke(app, ["plan", str(study)])
    assert plan.exit_code == 2, plan.output
    assert "field 'image_size' is set but no trial uses it (native_input_size is true" in plan.output


def test_pretrained_inception_and_googlenet_scale_their_input_as_their_weights_expect(tmp_path: Path) -> None:
    import torchvision

    path = tmp_path / "googlenet.pth"
    torch.save(torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True).state_dict(), path)
    assert build_model(tiny(model="tv:googlenet", image_size=32, pretrained=True, weights_path=str(path)),
                       in_chans=3, num_classes=4).transform_input
    assert not build_model(tiny(model="tv:googlenet", image_size=32), in_chans=3, num_classes=4).transform_input


# --- identity, smoke


def test_new_fields_at_their_default_keep_old_trials_identity() -> None:
    base = tiny(model="resnet18")
    assert config_hash(base) == config_hash(tiny(model="resnet18", freeze_bn="eval", head_widths=None))
    for field, value in (("drop_rate", 0.1), ("head_widths", [8]), ("freeze_bn", "train"), ("native_input_size", True)):
        assert config_hash(tiny(model="resnet18", **{field: value})) != config_hash(base), field

    assert set(NEW_FIELDS) <= set(_HASHED_WHEN_SET)


def test_fields_lists_the_new_settings_with_units() -> None:
    from ablate.study import FIELD_UNITS

    out = CliRunner().invoke(app, ["fields"], env={"COLUMNS": "400"})
    assert out.exit_code == 0, out.output
    for name in NEW_FIELDS:
        assert name in out.output and field_doc(name)
    assert FIELD_UNITS["unfreeze_every"] == "epochs" and FIELD_UNITS["head_widths"] == "units"
    assert FIELD_UNITS["drop_path_rate"] == "probability" and FIELD_UNITS["train_last_stages"] == "stages"


def test_smoke_keeps_gradual_unfreezing_for_one_unfreeze() -> None:
    cfg = tiny(model="resnet18", pretrained=True, freeze="head_only", unfreeze_every=3, epochs=10)
    smoke = smoke_config(cfg)
    assert (smoke.epochs, smoke.unfreeze_every, smoke.freeze) == (2, 1, "head_only")


@pytest.mark.slow
def test_a_fine_tuning_study_runs_with_smoke(tmp_path: Path) -> None:
    from ablate.store import load_trials

    weights = _weights(tmp_path)
    study = tmp_path / "ft.py"
    base = dict(
        dataset="synthetic", num_classes=4, synthetic_samples=32, image_size=16, model="resnet18", pretrained=True,
        weights_path=weights, epochs=4, batch_size=8, device="cpu", drop_rate=0.2, drop_path_rate=0.1,
        head_widths=[16], head_dropout=0.1, head_norm="batch", train_last_stages=2, freeze_bn="train",
    )
    study.write_text(
        "from ablate import Study\n"
        f"study = Study(name='ft', base={base!r}, factors=dict(unfreeze_every=[0, 1]))\n"
    )
    db = tmp_path / "ft.db"
    run = CliRunner().invoke(app, ["run", str(study), "--smoke", "--db", str(db), "--runs-dir", str(tmp_path / "runs")])
    assert run.exit_code == 0, run.output
    trials = load_trials("ft_smoke", db=f"sqlite:///{db}")
    assert list(trials["status"]) == ["completed"] * 2
    assert sorted(trials["epochs_run"]) == [1, 2]  # the unfreezing trial trains two epochs
