"""Building a model by name: the registry of model families and how each builds its models.

A family is an entry of :data:`MODELS`: ``cnn`` (the small configurable CNN), ``tv:<torchvision
name>`` and ``<timm name>`` (every other name); a user's own models are one more registration
(:func:`model_family`). Names are listed with wildcards (:func:`list_model_names`) and checked
against the libraries' own name lists (:func:`check_model_name`), never against a file on disk.

Pretrained weights are only ever read from local files: ``weights_path``, else the Hugging Face
cache (timm) or torch hub's checkpoint folder (torchvision). Nothing is downloaded; a missing file
is a :class:`~ablate.errors.DataNotFoundError` naming where it was expected.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ablate.errors import DataNotFoundError, StudyError
from ablate.registry import Registry
from ablate.study import TrialConfig
from ablate.train._finetune import (
    ReplacementHead,
    build_with_rates,
    check_regularisation,
    replace_head,
)

# (config, in_chans, num_classes, load_weights) -> the model with a num_classes classifier.
Builder = Callable[["TrialConfig", int, int, bool], nn.Module]


@dataclass(frozen=True)
class ModelFamily:
    """One registered family of models: how to build one, and every name it knows."""

    build: Builder
    # Every model name of the family as a study writes it (None: the registered name only).
    names: Callable[[], frozenset[str]] | None = None
    describe: str = ""  # how the error's "allowed" list names the family ("any timm name")
    in_chans: int | None = None  # fixed input channels (grey images repeated); None: the data's
    pretrained: bool = True  # False: the family has no pretrained weights (pretrained=True refused)
    # The config fields (besides the model name) the built model's layout depends on; None: any.
    # check_trial_config caches stage layouts on them.
    shape_fields: tuple[str, ...] | None = None
    # A study's own model (Study(models=...)): its logits' shape is checked at plan time.
    own: bool = False


MODELS: Registry[ModelFamily] = Registry("model", field="model")


def model_family(
    name: str,
    *,
    names: Callable[[], frozenset[str]] | None = None,
    describe: str = "",
    in_chans: int | None = None,
    pretrained: bool = True,
    shape_fields: tuple[str, ...] | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder as model family ``name`` (an exact name such as ``cnn``,
    or a pattern with one ``<placeholder>``: ``tv:<torchvision name>``)."""

    def add(build: Builder) -> Builder:
        MODELS.add(name, ModelFamily(build, names, describe or name, in_chans, pretrained, shape_fields))
        return build

    return add


# A study's own models by name (Study(models=...)), registered by use_models. Apart from MODELS
# because a study file is loaded again (by each worker, by each `ablate plan`): its models
# replace those of the last study that declared the same name.
_OWN: dict[str, ModelFamily] = {}

# A model of a study's own: an nn.Module class or a function, called with those of ``config``,
# ``in_chans`` and ``num_classes`` it takes.
ModelFactory = Callable[..., nn.Module]
_FACTORY_ARGS = ("config", "in_chans", "num_classes")


def use_models(models: Mapping[str, ModelFactory]) -> None:
    """Make a study's own models buildable by name (``Study(models={"my_net": MyNet})``).

    Pretrained weights of such a model come from ``weights_path`` (a classifier of another
    class count is left fresh). A StudyError when a name is that of a built-in model (``cnn``, a timm or ``tv:`` name) or a
    factory takes an argument other than config, in_chans and num_classes without a default."""
    for name, factory in models.items():
        if ":" in name:  # the form of a library's names (tv:resnet18)
            raise StudyError(f"models: {name!r} has a ':', which built-in model names use; give your model another name")
        builtin = _lookup_builtin(name)
        if builtin is not None and (builtin[1].names is None or name in builtin[1].names()):
            raise StudyError(
                f"models: {name!r} is already the name of a built-in model ({builtin[1].describe}); "
                "give your model another name"
            )
        _check_factory_args(name, factory)
        _OWN[name] = ModelFamily(functools.partial(_build_own, name, factory), describe=name, own=True)


def _check_factory_args(name: str, factory: ModelFactory) -> None:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: taken at its word
        return
    for p in params:
        required = p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        if required and p.name not in _FACTORY_ARGS:
            raise StudyError(
                f"models: {name!r} ({_factory_name(factory)}) needs an argument {p.name!r}; a "
                f"model factory takes only {', '.join(_FACTORY_ARGS)} (give the others defaults)"
            )


def _factory_name(factory: ModelFactory) -> str:
    return getattr(factory, "__qualname__", None) or repr(factory)


def _build_own(
    name: str, factory: ModelFactory, config: TrialConfig, in_chans: int, num_classes: int, load_weights: bool
) -> nn.Module:
    given = {"config": config, "in_chans": in_chans, "num_classes": num_classes}
    try:
        params = inspect.signature(factory).parameters
        takes_all = any(p.kind == p.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in given.items() if takes_all or k in params}
    except (TypeError, ValueError):
        kwargs = given
    shown = _factory_name(factory)
    try:
        model = factory(**kwargs)
    except StudyError:
        raise
    except Exception as e:
        raise StudyError(
            f"field 'model' is {name!r}: {shown}({', '.join(kwargs)}) raised {type(e).__name__}: {_first_line(e)}"
        ) from e
    if not isinstance(model, nn.Module):
        raise StudyError(
            f"field 'model' is {name!r}: {shown}() returned {type(model).__name__}, not a torch nn.Module"
        )
    if load_weights and config.pretrained:  # its weights are the study's own file (check_trial_config)
        path = _existing_weights(config)
        load_backbone(model, read_state_dict(path), source=str(path))
    return model


def check_model_output(config: TrialConfig, model: nn.Module, *, in_chans: int, num_classes: int) -> None:
    """Raise a StudyError unless ``model`` maps a batch of two images of the config's size to
    logits of shape (2, num_classes); run on the meta device, so nothing is computed."""
    batch = (2, in_chans, config.image_size, config.image_size)
    shown = "x".join(map(str, batch))
    try:
        with torch.no_grad():
            out = model(torch.zeros(batch, device="meta"))
    except NotImplementedError:  # an operation the meta device lacks: found when training
        return
    except Exception as e:
        if "meta" in str(e):  # reads values (.item(), data-dependent shapes): found when training
            return
        raise StudyError(
            f"field 'model' is {config.model!r}: its forward on a {shown} batch raised "
            f"{type(e).__name__}: {_first_line(e)}"
        ) from e
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if got != (2, num_classes):
        what = f"a tensor of shape {got}" if got is not None else f"a {type(out).__name__}"
        raise StudyError(
            f"field 'model' is {config.model!r}: on a {shown} batch it returns {what}; expected "
            f"logits of shape (2, {num_classes}), (batch, num_classes)"
        )


def _lookup(name: str) -> tuple[str, ModelFamily] | None:
    """The registered key and family of ``name``: a study's own model of that name, else its
    exact name, else the pattern with the longest matching prefix (so a family registered later
    is not hidden by timm's catch-all)."""
    if name in _OWN:
        return name, _OWN[name]
    return _lookup_builtin(name)


def _lookup_builtin(name: str) -> tuple[str, ModelFamily] | None:
    entries = dict(MODELS.items())
    if name in entries:
        return name, entries[name]
    prefixes = [(key.split("<", 1)[0], key) for key in entries if "<" in key]
    for prefix, key in sorted(prefixes, key=lambda p: -len(p[0])):
        if name.startswith(prefix) and len(name) > len(prefix):
            return key, entries[key]
    return None


def family_of(name: str) -> ModelFamily:
    """The family ``name`` belongs to by its form (whether the family knows it or not)."""
    found = _lookup(name) if isinstance(name, str) else None
    if found is None:
        raise StudyError(_unknown_model(name, []))
    return found[1]


def list_model_names(pattern: str = "*") -> list[str]:
    """All model names a study may use, filtered by a shell-style wildcard, sorted (a family
    without a list of names is listed by its registered name, ``toy<width>``)."""
    names = {
        n for key, family in [*MODELS.items(), *_OWN.items()]
        for n in (family.names() if family.names is not None else [key]) if fnmatch.fnmatch(n, pattern)
    }  # fmt: skip
    return sorted(names)


def check_model_name(name: str) -> ModelFamily:
    """The family of model ``name``; a StudyError naming close matches when its family does not
    know it (checked against the library's own list of names, in this process, not a file)."""
    found = _lookup(name) if isinstance(name, str) else None
    if found is None:
        raise StudyError(_unknown_model(name, []))
    family = found[1]
    if family.names is None:  # the family takes every name of its form
        return family
    if name not in family.names():
        refused = torchvision_refusal(name)
        if refused is not None:
            raise StudyError(refused)
        # Close matches from every family: "cnm" falls to timm's catch-all but means "cnn".
        raise StudyError(_unknown_model(name, list_model_names()))
    return family


def _unknown_model(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    allowed = [f.describe for _, f in MODELS.items()]
    return (
        f"field 'model' is {name!r}, which is not a known model{hint} "
        f"(allowed: {', '.join(allowed[:-1])}, or {allowed[-1]}, or the study's own, declared in "
        "models={...}; list them with `ablate models`)"
    )


def model_in_chans(config: TrialConfig, data_channels: int) -> int:
    """Input channels of the model: torchvision models are fixed at 3 (grey images are repeated),
    timm models and the CNN take the data's own channel count."""
    fixed = family_of(config.model).in_chans
    return data_channels if fixed is None else fixed


def build_model(config: TrialConfig, *, in_chans: int, num_classes: int, load_weights: bool = True) -> nn.Module:
    """The model of ``config`` with a ``num_classes`` classifier; pretrained weights loaded when
    ``config.pretrained`` and ``load_weights`` (pass False to build on the meta device)."""
    model = family_of(config.model).build(config, in_chans, num_classes, load_weights)
    check_regularisation(model, config)  # before the new head brings dropout layers of its own
    if config.cifar_stem:
        apply_cifar_stem(model, config.model)
    if config.head_widths is not None:
        replace_head(model, classifier_name(model), config, num_classes)
    return model


def native_input_size(config: TrialConfig) -> int:
    """The input side model ``config.model`` was made for: timm's ``pretrained_cfg['input_size']``,
    torchvision's default weights' crop size (Inception 299 px). A StudyError for a model without
    one (the small CNN, a study's own model)."""
    name = config.model
    family = family_of(name)
    side: int | None = None
    if family.names is _timm_names:
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
        side = int(cfg.input_size[-1]) if cfg is not None and cfg.input_size else None
    elif family.names is _torchvision_names:
        import torchvision

        weights = torchvision.models.get_model_weights(name[len(TORCHVISION_PREFIX) :]).DEFAULT
        crop = getattr(weights.transforms, "keywords", {}).get("crop_size")
        side = int(crop[0] if isinstance(crop, (list, tuple)) else crop) if crop else None
    if side is None:
        raise StudyError(
            f"field 'native_input_size' is true but model {name!r} has no input size of its own; "
            "set image_size instead"
        )
    return side


def with_input_size(config: TrialConfig) -> TrialConfig:
    """``config`` with ``image_size`` the model's own when ``native_input_size`` asks for it."""
    if not config.native_input_size:
        return config
    import dataclasses

    return dataclasses.replace(config, image_size=native_input_size(config))


# --- the built-in families, in the order the "allowed" list of an error names them. Name lists
# are read from the libraries once per process (timm.list_models takes ~5 ms once timm is
# imported; both are imported anyway to build the model on the meta device).

TORCHVISION_PREFIX = "tv:"
# Every cnn_* field shapes the small CNN.
_CNN_FIELDS = ("image_size", *(f.name for f in fields(TrialConfig) if f.name.startswith("cnn_")))


@functools.cache
def _timm_names() -> frozenset[str]:
    import timm

    return frozenset(timm.list_models())


@functools.cache
def _torchvision_names() -> frozenset[str]:
    """The image classifiers: ``module=torchvision.models`` leaves out the detection,
    segmentation, video, optical-flow and quantized models, which the trainer cannot train."""
    import torchvision

    return frozenset(TORCHVISION_PREFIX + n for n in torchvision.models.list_models(module=torchvision.models))


def torchvision_refusal(name: str) -> str | None:
    """Why ``name`` is refused when it is a torchvision model but not an image classifier
    (``tv:fasterrcnn_resnet50_fpn``: "a torchvision detection model ..."); None otherwise."""
    if not name.startswith(TORCHVISION_PREFIX):
        return None
    import torchvision

    bare = name[len(TORCHVISION_PREFIX) :]
    if bare not in torchvision.models.list_models():
        return None
    # torchvision.models.detection.faster_rcnn -> "detection"; quantization -> "quantized".
    kind = torchvision.models.get_model_builder(bare).__module__.split(".")[2]
    kind = {"quantization": "quantized", "optical_flow": "optical-flow"}.get(kind, kind)
    return (
        f"field 'model' is {name!r}, a torchvision {kind} model; the trainer trains image "
        "classifiers only (list them with `ablate models 'tv:*'`)"
    )


@model_family("cnn", pretrained=False, shape_fields=("cifar_stem", *_CNN_FIELDS))
def _cnn(config: TrialConfig, in_chans: int, num_classes: int, load_weights: bool) -> nn.Module:
    from ablate.train._cnn import SmallCNN

    return SmallCNN(config, in_chans=in_chans, num_classes=num_classes)


# Every name no other family claims.
@model_family("<timm name>", names=_timm_names, describe="any timm name", shape_fields=("image_size", "cifar_stem"))
def _timm(config: TrialConfig, in_chans: int, num_classes: int, load_weights: bool) -> nn.Module:
    return _timm_model(config, in_chans, num_classes, load_weights)


@model_family(
    TORCHVISION_PREFIX + "<torchvision name>", names=_torchvision_names, describe="tv:<torchvision name>",
    in_chans=3, shape_fields=("cifar_stem",),
)
def _torchvision(config: TrialConfig, in_chans: int, num_classes: int, load_weights: bool) -> nn.Module:
    return _torchvision_model(config, num_classes, load_weights)


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
    if load_weights and config.pretrained:
        weights = _timm_weights_file(config)
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
    try:
        return build_with_rates(timm.create_model, config, "timm", model_name=name, **kwargs)
    except (RuntimeError, ValueError, AssertionError, TypeError) as e:
        if load_weights and config.pretrained:
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
    aux = _AUX_HEADS.get(bare)
    pretrained = load_weights and config.pretrained
    # Without their auxiliary heads googlenet and inception_v3 return the logits in train mode
    # too (with them, a named tuple); init_weights=True is their default, without the warning.
    # Their pretrained weights expect inputs scaled as Google's (transform_input maps ImageNet
    # normalisation to it), as torchvision's own builders set whenever weights are given.
    kwargs: dict[str, Any] = {"aux_logits": False, "init_weights": True, "transform_input": pretrained} if aux else {}
    model = build_with_rates(
        torchvision.models.get_model, config, "torchvision", name=bare, weights=None, num_classes=num_classes, **kwargs
    )
    if not pretrained:
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
    state = read_state_dict(path)
    if aux:  # the weights of the auxiliary heads the model is built without
        state = {k: v for k, v in state.items() if k.split(".", 1)[0] not in aux}
    load_backbone(model, state, source=str(path))
    return model


# torchvision models with auxiliary classifiers (used only by their own training recipe):
# the module names of those heads.
_AUX_HEADS = {"googlenet": ("aux1", "aux2"), "inception_v3": ("AuxLogits",)}


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
    """Qualified name of the final classification layer (a replacement head, else timm's
    get_classifier, else the last Linear)."""
    for name, module in model.named_modules():
        if isinstance(module, ReplacementHead):
            return name
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
