"""torchvision's models as the trainer takes them: the image classifiers only (others refused by
name with the reason), googlenet and inception_v3 without the auxiliary heads that made every
trial fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from ablate.errors import StudyError
from ablate.train import check_trial_config, list_model_names, train_trial
from ablate.train._models import build_model

from .helpers import tiny

NOT_CLASSIFIERS = {
    "tv:fasterrcnn_resnet50_fpn": "detection",
    "tv:deeplabv3_resnet50": "segmentation",
    "tv:r3d_18": "video",
    "tv:mvit_v2_s": "video",
    "tv:raft_small": "optical-flow",
    "tv:quantized_resnet18": "quantized",
}


def test_only_image_classifiers_are_listed() -> None:
    listed = set(list_model_names("tv:*"))
    assert "tv:resnet18" in listed and "tv:googlenet" in listed and "tv:inception_v3" in listed
    assert not listed & set(NOT_CLASSIFIERS)
    for name in listed:  # each one's builder lives in torchvision.models itself
        module = torchvision.models.get_model_builder(name.removeprefix("tv:")).__module__
        assert module.rsplit(".", 1)[0] == "torchvision.models", name


@pytest.mark.parametrize(("model", "kind"), NOT_CLASSIFIERS.items(), ids=list(NOT_CLASSIFIERS))
def test_other_torchvision_models_are_refused_by_name_with_the_reason(model: str, kind: str) -> None:
    with pytest.raises(StudyError) as err:
        check_trial_config(tiny(model=model, image_size=32))
    assert str(err.value) == (
        f"field 'model' is {model!r}, a torchvision {kind} model; the trainer trains image "
        "classifiers only (list them with `ablate models 'tv:*'`)"
    )


@pytest.mark.parametrize(("model", "size"), [("tv:googlenet", 32), ("tv:inception_v3", 75)])
def test_models_with_auxiliary_heads_give_logits_in_train_mode(model: str, size: int) -> None:
    cfg = tiny(model=model, image_size=size)
    check_trial_config(cfg)
    net = build_model(cfg, in_chans=3, num_classes=4).train()
    out = net(torch.randn(2, 3, size, size))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4)


@pytest.mark.slow
def test_googlenet_trains_in_a_trial() -> None:
    result = train_trial(tiny(model="tv:googlenet", image_size=32, synthetic_samples=16, batch_size=8, epochs=1))
    assert result.status == "completed", result.error


def test_pretrained_weights_with_auxiliary_heads_load_into_the_model_without_them(tmp_path: Path) -> None:
    source = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True, num_classes=1000)
    assert any(k.startswith("aux1.") for k in source.state_dict())
    weights = tmp_path / "googlenet.pth"
    torch.save(source.state_dict(), weights)
    cfg = tiny(model="tv:googlenet", image_size=32, pretrained=True, weights_path=str(weights))
    net = build_model(cfg, in_chans=3, num_classes=4)
    assert torch.equal(net.conv1.conv.weight, source.conv1.conv.weight)
    assert net.aux1 is None and net.fc.out_features == 4
