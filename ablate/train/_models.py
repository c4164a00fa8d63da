"""Building a model by name: the small CNN, any timm model, any torchvision model (``tv:<name>``).

Pretrained weights are only ever read from local files: ``weights_path``, else the Hugging Face
cache (timm) or torch hub's checkpoint folder (torchvision). Nothing is downloaded; a missing file
is a :class:`~ablate.errors.DataNotFoundError` naming where it was expected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ablate.errors import DataNotFoundError, StudyError
from ablate.study._models import TORCHVISION_PREFIX

if TYPE_CHECKING:
    from ablate.study import TrialConfig


def model_in_chans(config: TrialConfig, data_channels: int) -> int:
    """Input channels of the model: torchvision models are fixed at 3 (grey images are repeated),
    timm models and the CNN take the data's own channel count."""
    return 3 if config.model.startswith(TORCHVISION_PREFIX) else data_channels


def build_model(config: TrialConfig, *, in_chans: int, num_classes: int, load_weights: bool = True) -> nn.Module:
    """The model of ``config`` with a ``num_classes`` classifier; pretrained weights loaded when
    ``config.pretrained`` and ``load_weights`` (pass False to build on the meta device)."""
    name = config.model
    if name == "cnn":
        from ablate.train._cnn import SmallCNN

        model: nn.Module = SmallCNN(config, in_chans=in_chans, num_classes=num_classes)
    elif name.startswith(TORCHVISION_PREFIX):
        model = _torchvision_model(config, num_classes, load_weights)
    else:
        model = _timm_model(config, in_chans, num_classes, load_weights)
    if config.cifar_stem:
        apply_cifar_stem(model, name)
    return model


def _timm_model(config: TrialConfig, in_chans: int, num_classes: int, load_weights: bool) -> nn.Module:
    import timm
    from timm.models import get_pretrained_cfg

    name = config.model
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_chans}
    cfg = get_pretrained_cfg(name)
    # Transformers are built for one input size; give them ours (timm resamples position
    # embeddings of pretrained weights to it).
    if cfg is not None and cfg.fixed_input_size and cfg.input_size[-1] != config.image_size:
        kwargs["img_size"] = config.image_size
    if config.pretrained and load_weights:
        weights = _timm_weights_file(config)
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
    try:
        return timm.create_model(name, **kwargs)
    except (RuntimeError, ValueError, AssertionError, TypeError) as e:
        if config.pretrained and load_weights:
            raise StudyError(
                f"field 'weights_path': weights for model {name!r} could not be loaded ({_first_line(e)})"
            ) from e
        raise StudyError(
            f"field 'model' is {name!r}: it does not build with image_size={config.image_size}, "
            f"in_chans={in_chans}, num_classes={num_classes} ({_first_line(e)})"
        ) from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _timm_weights_file(config: TrialConfig) -> Path:
    if config.weights_path:
        return _existing_weights(config)
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(config.model)
    candidates: list[Path] = []
    if cfg is not None and cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin"):
            if filename:
                hit = try_to_load_from_cache(cfg.hf_hub_id, filename)
                if isinstance(hit, str):
                    return Path(hit)
        from huggingface_hub import constants

        candidates.append(Path(constants.HF_HUB_CACHE) / ("models--" + cfg.hf_hub_id.replace("/", "--")))
    if cfg is not None and isinstance(cfg.url, str) and cfg.url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
        if path.exists():
            return path
        candidates.append(path)
    where = " or ".join(str(c) for c in candidates) or "a local file"
    raise DataNotFoundError(
        f"pretrained weights for model {config.model!r} not found offline: expected {where}; "
        "set weights_path to a local .pth/.safetensors file"
    )


def _existing_weights(config: TrialConfig) -> Path:
    assert config.weights_path is not None
    path = Path(config.weights_path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(
            f"field 'weights_path': {path} does not exist; point it at a local .pth/.safetensors file "
            f"with weights for {config.model!r}"
        )
    return path


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Weights from a .safetensors or torch file, unwrapped from {'state_dict': ...} and the
    'module.' prefix DataParallel adds."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: Any = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise StudyError(f"field 'weights_path': {path} holds no state dict")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _torchvision_model(config: TrialConfig, num_classes: int, load_weights: bool) -> nn.Module:
    import torchvision

    bare = config.model[len(TORCHVISION_PREFIX) :]
    model = torchvision.models.get_model(bare, weights=None, num_classes=num_classes)
    if not (config.pretrained and load_weights):
        return model
    if config.weights_path:
        path = _existing_weights(config)
    else:
        url = torchvision.models.get_model_weights(bare).DEFAULT.url
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if not path.is_file():
            raise DataNotFoundError(
                f"pretrained weights for model {config.model!r} not found offline: expected {path}; "
                "set weights_path to a local .pth file"
            )
    load_backbone(model, read_state_dict(path), source=str(path))
    return model


def load_backbone(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Load ``state`` into ``model`` except a classifier of another class count (left fresh)."""
    head = classifier_name(model)
    own = model.state_dict()
    state = {
        k: v for k, v in state.items()
        if not (k.startswith(head + ".") and k in own and own[k].shape != v.shape)
    }
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(head + ".")]
    if missing or result.unexpected_keys:
        bad = (missing or result.unexpected_keys)[:3]
        raise StudyError(
            f"field 'weights_path': {source} does not fit model; "
            f"{'missing' if missing else 'unexpected'} keys such as {', '.join(bad)}"
        )


def classifier_name(model: nn.Module) -> str:
    """Qualified name of the final classification layer (timm's get_classifier, else the last
    Linear)."""
    get = getattr(model, "get_classifier", None)
    if callable(get):
        target = get()
        for name, module in model.named_modules():
            if module is target and name:
                return name
    last = ""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if not last:
        raise StudyError(f"model {type(model).__name__} has no Linear classifier to replace")
    return last


def apply_cifar_stem(model: nn.Module, name: str) -> None:
    """3x3 stride-1 first convolution and no max-pool (ResNet-style models on 32 px inputs)."""
    conv1 = getattr(model, "conv1", None)
    if not isinstance(getattr(model, "maxpool", None), nn.Module) or conv1 is None:
        raise StudyError(
            f"field 'cifar_stem' is true but model {name!r} has no conv1/maxpool stem; "
            "allowed: ResNet-style models (resnet*, tv:resnet*, resnext*, wide_resnet*)"
        )
    if isinstance(conv1, nn.Conv2d):
        model.conv1 = nn.Conv2d(conv1.in_channels, conv1.out_channels, 3, 1, 1, bias=False)
    else:  # a deep stem (resnet*d): keep its convs, take the stride out of the first one
        first = next(m for m in conv1.modules() if isinstance(m, nn.Conv2d))
        first.stride = (1, 1)
    model.maxpool = nn.Identity()


def is_conv_model(model: nn.Module) -> bool:
    """True for convolutional networks (channels_last helps them): some convolution overlaps its
    windows. A transformer's only convolution is its patch embedding, kernel == stride."""
    return any(
        isinstance(m, nn.Conv2d) and any(k > s for k, s in zip(m.kernel_size, m.stride, strict=True))
        for m in model.modules()
    )
