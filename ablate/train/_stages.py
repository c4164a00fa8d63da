"""A model's stages, by name, for ``freeze`` and ``lr_groups``.

Every architecture is read the same way, from its top-level modules in order:

* stages are modules named like ``layer3`` / ``stage2`` / ``s1`` / ``block4``, or the members of a
  ``blocks`` / ``layers`` / ``stages`` / ``features`` container (``blocks.3``, ``layers.2``,
  ``features.5``); a container of plain layers (VGG's ``features``) is one stage;
* ``stem`` is everything before the first stage (plus loose parameters such as ViT's cls token);
* ``head`` is everything after the last stage (final norm, pooling, classifier).

So resnet has stem, layer1..layer4, head; efficientnet/mobilenet stem, blocks.0..blocks.N, head;
ViT stem, blocks.0..blocks.11, head; swin stem, layers.0..layers.3, head; VGG features, head; the
small CNN block1..blockN, head.

A model may instead declare its stages: a ``stages`` attribute (or method) listing its
submodules' names from input to output, the last one the head holding the classifier, e.g.
``stages = ("stem", "layer1", "layer2", "head")``. Its parts are then those names (``freeze=
"layer1"``), and every parameter must belong to one of them.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from ablate.errors import StudyError
from ablate.train._models import classifier_name

if TYPE_CHECKING:
    from ablate.study import TrialConfig

_STAGE_NAME = re.compile(r"^(layer|stage|s|block)\d+$")
_CONTAINERS = ("blocks", "layers", "stages", "features")


@dataclass(frozen=True)
class Stages:
    """The ordered parts of a model: ``parts`` (stem and stages, input side first) and the head."""

    parts: tuple[tuple[str, tuple[str, ...]], ...]  # (name, module prefixes)
    head: tuple[str, ...]  # module prefixes after the last stage
    classifier: str

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.parts] + ["head"]

    def describe(self) -> str:
        """Stage names for messages, runs abbreviated: stem, blocks.0..blocks.6, head."""
        names = self.names
        out: list[str] = []
        i = 0
        while i < len(names):
            j = i
            while j + 1 < len(names) and _family(names[j + 1]) == _family(names[i]) != names[i]:
                j += 1
            out.append(names[i] if j - i < 2 else f"{names[i]}..{names[j]}")
            if j - i == 1:
                out.append(names[j])
            i = j + 1
        return ", ".join(out)


def _family(name: str) -> str:
    return re.sub(r"\d+$", "", name)


def _entries(model: nn.Module, prefix: str = "") -> list[tuple[str, bool]]:
    """(qualified name, is_stage) for each top-level part of ``model``, containers expanded."""
    out: list[tuple[str, bool]] = []
    for name, child in model.named_children():
        full = prefix + name
        if _STAGE_NAME.match(name):
            out.append((full, True))
        elif name in _CONTAINERS and isinstance(child, (nn.Sequential, nn.ModuleList)):
            members = list(child.named_children())
            if any(len(list(m.children())) > 0 for _, m in members):
                out += [(f"{full}.{sub}", len(list(m.children())) > 0) for sub, m in members]
            else:
                out.append((full, True))
        else:
            out.append((full, False))
    return out


def declared_stages(model: nn.Module) -> Stages | None:
    """The stages ``model`` declares with a ``stages`` attribute or method (a sequence of its
    submodules' names, input side first, the head last); None when it declares none. A
    StudyError when the declaration does not describe the model."""
    if "stages" in model._modules:  # a container named stages (timm's convnext): not a declaration
        return None
    declared = getattr(model, "stages", None)
    if inspect.ismethod(declared):
        declared = declared()
    elif not isinstance(declared, (list, tuple)):
        return None
    kind = type(model).__name__
    if (isinstance(declared, str) or not isinstance(declared, Sequence) or len(declared) < 2
            or not all(isinstance(n, str) for n in declared)):
        raise StudyError(
            f"model {kind}: stages is {declared!r}; declare a list of its submodules' names, input "
            "side first and the head last, such as ('stem', 'layer1', 'head')"
        )
    modules = dict(model.named_modules())
    for i, name in enumerate(declared):
        if name not in modules or not name:
            raise StudyError(
                f"model {kind}: declared stage {name!r} is not one of its submodules (its "
                f"children: {', '.join(n for n, _ in model.named_children())})"
            )
        for other in declared[:i]:
            if _owns((other,), name) or _owns((name,), other):
                raise StudyError(f"model {kind}: declared stages {other!r} and {name!r} overlap")
    loose = [n for n, _ in model.named_parameters() if not _owns(tuple(declared), n)]
    if loose:
        raise StudyError(
            f"model {kind}: parameter {loose[0]!r} belongs to none of its declared stages "
            f"({', '.join(declared)}); every parameter must be in one"
        )
    classifier = classifier_name(model)
    head = (declared[-1],)
    if not _owns(head, classifier):
        raise StudyError(
            f"model {kind}: its classifier {classifier!r} is not in {declared[-1]!r}, the last "
            "declared stage (the head)"
        )
    return Stages(parts=tuple((n, (n,)) for n in declared[:-1]), head=head, classifier=classifier)


def resolve_stages(model: nn.Module) -> Stages:
    """Split ``model`` into stem, stages and head: the stages it declares, else found by the
    names of its modules (see the module docstring)."""
    declared = declared_stages(model)
    if declared is not None:
        return declared
    entries = _entries(model)
    if not any(is_stage for _, is_stage in entries):
        # e.g. torchvision's ViT keeps its layers one level down, in ``encoder``.
        largest = max(
            model.named_children(), key=lambda nc: sum(p.numel() for p in nc[1].parameters()), default=None
        )
        if largest is not None:
            inner = _entries(largest[1], prefix=largest[0] + ".")
            if any(is_stage for _, is_stage in inner):
                i = next(k for k, (n, _) in enumerate(entries) if n == largest[0])
                entries = entries[:i] + inner + entries[i + 1 :]
    stage_idx = [i for i, (_, is_stage) in enumerate(entries) if is_stage]
    classifier = classifier_name(model)
    if not stage_idx:
        body = tuple(n for n, _ in entries if not classifier.startswith(n))
        head = tuple(n for n, _ in entries if classifier.startswith(n))
        return Stages(parts=(("stem", body),) if body else (), head=head, classifier=classifier)
    first, last = stage_idx[0], stage_idx[-1]
    parts: list[tuple[str, list[str]]] = []
    stem = [n for n, _ in entries[:first]]
    if stem or any(True for _ in model.named_parameters(recurse=False)):
        parts.append(("stem", stem))
    for i in range(first, last + 1):
        name, is_stage = entries[i]
        if is_stage:
            parts.append((name, [name]))
        else:  # a plain layer between stages belongs to the stage before it
            parts[-1][1].append(name)
    head = tuple(n for n, _ in entries[last + 1 :])
    return Stages(parts=tuple((n, tuple(p)) for n, p in parts), head=head, classifier=classifier)


def _owns(prefixes: tuple[str, ...], param: str) -> bool:
    return any(param == p or param.startswith(p + ".") for p in prefixes)


def param_part(stages: Stages, param: str) -> str:
    """Name of the part (stem, a stage, or head) a parameter belongs to."""
    for name, prefixes in stages.parts:
        if _owns(prefixes, param):
            return name
    if _owns(stages.head, param):
        return "head"
    # Parameters registered on the model itself (cls_token, pos_embed) sit with the stem.
    return stages.parts[0][0] if stages.parts else "head"


def freeze_choices(stages: Stages) -> list[str]:
    return ["none", "head_only", *[n for n, _ in stages.parts]]


def check_freeze(stages: Stages, freeze: str, *, model: str) -> None:
    """Raise a StudyError when ``freeze`` names no stage of this model."""
    if freeze in ("none", "head_only") or freeze in dict(stages.parts):
        return
    raise StudyError(
        f"field 'freeze' is {freeze!r}, not a stage of model {model!r} (its stages: "
        f"{stages.describe()}); allowed: none, head_only, or a stage before head"
    )


def check_lr_groups(stages: Stages, lr_groups: list[float], *, model: str) -> None:
    """Raise a StudyError when there are more multipliers than stem and stages."""
    if len(lr_groups) > max(len(stages.parts), 1):
        raise StudyError(
            f"field 'lr_groups' has {len(lr_groups)} multipliers but model {model!r} has "
            f"{len(stages.parts)} stages before the head ({stages.describe()}); allowed: at most "
            f"{max(len(stages.parts), 1)} multipliers"
        )


def frozen_params(model: nn.Module, stages: Stages, freeze: str) -> set[str]:
    """Names of the parameters ``freeze`` turns off (none / head_only / up to and including a stage)."""
    names = [n for n, _ in model.named_parameters()]
    if freeze == "none":
        return set()
    if freeze == "head_only":
        return {n for n in names if not _owns((stages.classifier,), n)}
    order = [n for n, _ in stages.parts]
    upto = set(order[: order.index(freeze) + 1])
    return {n for n in names if param_part(stages, n) in upto}


def check_stage_settings(stages: Stages, config: TrialConfig) -> None:
    """Raise a StudyError when ``train_last_stages`` counts more stages than the model has, or
    says otherwise than ``freeze`` what is frozen (both set to the same split is accepted)."""
    k, model = config.train_last_stages, config.model
    if not k:
        return
    names = stages.names
    if k > len(names):
        raise StudyError(
            f"field 'train_last_stages' is {k} but model {model!r} has {len(names)} stages counting "
            f"the head ({stages.describe()}); allowed: 1 to {len(names)}"
        )
    if config.freeze == "none":
        return
    order = [n for n, _ in stages.parts]
    same = config.freeze in order and len(names) - 1 - order.index(config.freeze) == k
    if not same:
        raise StudyError(
            f"fields 'freeze' ({config.freeze!r}) and 'train_last_stages' ({k}) both say what is "
            f"frozen and disagree for model {model!r} (its stages: {stages.describe()}); set one of them"
        )


def initially_frozen(model: nn.Module, stages: Stages, config: TrialConfig) -> set[str]:
    """Parameters frozen at the first epoch: by ``freeze``, else all but the last
    ``train_last_stages`` stages (the head counting as one)."""
    if config.freeze != "none" or not config.train_last_stages:
        return frozen_params(model, stages, config.freeze)
    trained = set(stages.names[-config.train_last_stages :])
    return {n for n, _ in model.named_parameters() if param_part(stages, n) not in trained}


def frozen_at(model: nn.Module, stages: Stages, config: TrialConfig, epoch: int) -> set[str]:
    """Parameters frozen during ``epoch`` (1-based): :func:`initially_frozen`, less one more stage
    every ``unfreeze_every`` epochs, from the head backwards (a stage counts once any of its
    parameters is frozen; ``head_only`` leaves the head's non-classifier layers as the first)."""
    frozen = initially_frozen(model, stages, config)
    if not config.unfreeze_every or not frozen:
        return frozen
    thawed = (epoch - 1) // config.unfreeze_every
    parts = {param_part(stages, n) for n in frozen}
    order = [n for n in reversed(stages.names) if n in parts][:thawed]
    return {n for n in frozen if param_part(stages, n) not in order}


def set_frozen(model: nn.Module, frozen: set[str], trainable: set[str], freeze_bn: str) -> list[nn.Module]:
    """Gradients on for the ``trainable`` parameters (those the model itself trains) not in
    ``frozen``, off for the rest; return the batch-norm layers to keep in eval mode: those left
    with no trainable parameter, unless ``freeze_bn`` is "train" (then their statistics follow
    each batch while their weights stay frozen)."""
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable and name not in frozen)
    if freeze_bn == "train":
        return []
    return _frozen_batch_norms(model)


def apply_freeze(model: nn.Module, stages: Stages, freeze: str) -> list[nn.Module]:
    """Turn off gradients of the frozen parameters; return the batch-norm layers left with no
    trainable parameter, which the trainer keeps in eval mode so their statistics stay frozen too."""
    frozen = frozen_params(model, stages, freeze)
    for name, p in model.named_parameters():
        if name in frozen:
            p.requires_grad_(False)
    return _frozen_batch_norms(model)


def _frozen_batch_norms(model: nn.Module) -> list[nn.Module]:
    frozen_bn: list[nn.Module] = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                frozen_bn.append(module)
    return frozen_bn


def parameter_groups(
    model: nn.Module, stages: Stages, lr: float, lr_groups: list[float], *, names: set[str] | None = None
) -> list[dict[str, object]]:
    """Optimizer groups of the trainable parameters (or of those ``names``: with gradual
    unfreezing, also the ones still frozen, which an optimizer skips while they have no
    gradient), head first.

    ``lr_groups`` are multipliers from the head backwards: [1, 0.5, 0.25] puts the last stage and
    the head at ``lr``, the stage before at lr/2 and everything earlier at lr/4. Empty groups (all
    frozen) are left out.
    """
    trainable = [(n, p) for n, p in model.named_parameters() if (p.requires_grad if names is None else n in names)]
    if not lr_groups:
        return [{"params": [p for _, p in trainable], "lr": lr, "name": "all"}]
    order = [n for n, _ in stages.parts]
    k = len(lr_groups)
    # Group g (0 = head side) owns these part names; the last group takes everything left.
    members: list[set[str]] = []
    for g in range(k):
        if g == k - 1:
            members.append(set(order[: len(order) - (k - 1)]) | ({"head"} if k == 1 else set()))
        elif g == 0:
            members.append({order[-1], "head"} if order else {"head"})
        else:
            members.append({order[-1 - g]})
    groups: list[dict[str, object]] = []
    for g, mult in enumerate(lr_groups):
        params = [p for n, p in trainable if param_part(stages, n) in members[g]]
        if params:
            label = "+".join(n for n in [*order, "head"] if n in members[g])
            groups.append({"params": params, "lr": lr * mult, "name": label})
    return groups
