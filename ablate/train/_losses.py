"""The training loss: cross-entropy or focal on the logits, plus an optional margin head.

``loss="focal"`` is the multiclass focal loss of Lin et al. (2017) written from the log-softmax:
``-sum_c q_c alpha_c (1 - p_c)^gamma log p_c`` with ``q`` the target distribution (one-hot,
smoothed by ``label_smoothing``, or MixUp/CutMix's mixed targets); at ``gamma = 0`` and no
``alpha`` it is ``F.cross_entropy`` exactly. (``torchvision.ops.sigmoid_focal_loss`` is the
binary, per-logit form, not this one.)

``margin_loss`` adds a head of class centres on the embedding (the input of the model's
classifier, :func:`~ablate.train._models.classifier_name`, as verification's embedding is, taken
with a forward hook in the same forward pass as the logits): cosine logits ``s cos(theta_j)`` with the target class's
changed to ``s cos(theta_y + m)`` (ArcFace, Deng et al. 2019; past ``theta + m > pi`` the
monotone extension ``cos(theta) - m sin(m)`` of insightface's implementation) or
``s (cos(theta_y) - m)`` (CosFace, Wang et al. 2018). Its cross-entropy, times ``margin_weight``,
is added to the classifier's loss; its parameters are their own optimizer group ("margin") at
``margin_lr``. The classifier stays what is evaluated; the head shapes the embedding that
verification compares.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F

from ablate.errors import StudyError
from ablate.study import TrialConfig
from ablate.train._models import classifier_name

# (1 - p)^gamma is cut at this from below: its gradient at p = 1 is infinite for gamma < 1.
_FOCAL_FLOOR = 1e-12
# sin(theta) from cos(theta): 1 - cos^2 is cut at this from below (the root's gradient at 0).
_SIN2_FLOOR = 1e-7


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float,
    alpha: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean multiclass focal loss of (B, K) ``logits`` against class indices (B,) or a target
    distribution (B, K); ``alpha`` (K,) weights each class's term."""
    log_p = F.log_softmax(logits.float(), dim=1)
    k = logits.shape[1]
    q = F.one_hot(target, k).to(log_p.dtype) if target.ndim == 1 else target.to(log_p.dtype)
    if label_smoothing:
        q = q * (1.0 - label_smoothing) + label_smoothing / k
    focus = (1.0 - log_p.exp()).clamp(min=_FOCAL_FLOOR).pow(gamma)
    terms = -q * focus * log_p
    if alpha is not None:
        terms = terms * alpha.to(terms)
    return terms.sum(dim=1).mean()


class MarginHead(torch.nn.Module):
    """Class centres on the unit sphere and the margin logits of ArcFace or CosFace."""

    def __init__(self, kind: str, dim: int, num_classes: int, *, scale: float, margin: float) -> None:
        super().__init__()
        if kind not in ("arcface", "cosface"):
            raise StudyError(f"field 'margin_loss' is {kind!r}; allowed: none, arcface, cosface")
        self.kind, self.scale, self.margin = kind, scale, margin
        self.weight = torch.nn.Parameter(torch.empty(num_classes, dim))
        torch.nn.init.xavier_uniform_(self.weight)

    def cosines(self, embedding: torch.Tensor) -> torch.Tensor:
        """cos(theta_j) between each embedding and each class centre: (B, K)."""
        return F.linear(F.normalize(embedding.float(), dim=1), F.normalize(self.weight.float(), dim=1)).clamp(-1.0, 1.0)

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The margin logits (B, K): ``scale * cos(theta_j)``, the target's with its margin."""
        cos = self.cosines(embedding)
        m = self.margin
        if self.kind == "arcface":
            sin = (1.0 - cos * cos).clamp(min=_SIN2_FLOOR).sqrt()
            shifted = cos * math.cos(m) - sin * math.sin(m)  # cos(theta + m)
            target = torch.where(cos > math.cos(math.pi - m), shifted, cos - math.sin(math.pi - m) * m)
        else:
            target = cos - m
        is_target = F.one_hot(labels, cos.shape[1]).bool()
        return self.scale * torch.where(is_target, target, cos)


class _EmbeddingTap:
    """Keeps the input of the classifier layer from the last forward in training mode.

    A forward hook, so ``torch.compile`` traces it with the model (measured: a compiled trial's
    losses equal the eager trial's to 1e-7)."""

    def __init__(self, layer: torch.nn.Module) -> None:
        self.value: torch.Tensor | None = None
        layer.register_forward_hook(self._keep)

    def _keep(self, module: torch.nn.Module, args: tuple[Any, ...], _out: Any) -> None:
        if module.training:  # evaluation batches are not the margin head's
            self.value = args[0]

    def take(self) -> torch.Tensor:
        value, self.value = self.value, None
        if value is None:
            raise StudyError("margin_loss: the classifier layer was not called by the model's forward")
        return value.flatten(1)


def classifier_layer(model: torch.nn.Module) -> torch.nn.Linear:
    """The model's classifier layer (timm's ``get_classifier()``, else its last ``nn.Linear``)."""
    return cast(torch.nn.Linear, model.get_submodule(classifier_name(model)))


def margin_embedding_dim(model: torch.nn.Module, num_classes: int, *, model_name: str) -> int:
    """Width of the embedding the margin head reads; StudyError when the model has no classifier
    ``nn.Linear`` giving its ``num_classes`` logits (so no penultimate embedding to take)."""
    layer = classifier_layer(model)
    if layer.out_features != num_classes:
        raise StudyError(
            f"field 'margin_loss' needs the embedding the classifier reads, but the last nn.Linear of "
            f"model {model_name!r} gives {layer.out_features} features, not the {num_classes} class "
            "logits: it has no classifier layer to take the input of; set margin_loss='none'"
        )
    return int(layer.in_features)


def class_weights(config: TrialConfig, num_classes: int) -> list[float] | None:
    """``focal_alpha`` when set, checked against the class count; None without one."""
    if not config.focal_alpha:
        return None
    if len(config.focal_alpha) != num_classes:
        raise StudyError(
            f"field 'focal_alpha' has {len(config.focal_alpha)} class weights but dataset "
            f"{config.dataset!r} has {num_classes} classes; give one per class or []"
        )
    return list(config.focal_alpha)


class TrainingLoss:
    """The loss a trial trains on: its classifier's (cross-entropy or focal) plus the margin
    head's, when there is one. Build it on the model before ``torch.compile``."""

    def __init__(self, config: TrialConfig, model: torch.nn.Module, *, num_classes: int, device: torch.device) -> None:
        self.config = config
        alpha = class_weights(config, num_classes)
        self.alpha = torch.tensor(alpha, device=device) if alpha is not None else None
        self.head: MarginHead | None = None
        self.tap: _EmbeddingTap | None = None
        if config.margin_loss != "none":
            dim = margin_embedding_dim(model, num_classes, model_name=config.model)
            self.head = MarginHead(
                config.margin_loss, dim, num_classes, scale=config.margin_scale, margin=config.margin_m
            ).to(device)
            self.tap = _EmbeddingTap(classifier_layer(model))

    def param_groups(self) -> list[dict[str, Any]]:
        """The margin head's optimizer group (named "margin", at ``margin_lr``), or none."""
        if self.head is None:
            return []
        lr = self.config.margin_lr if self.config.margin_lr is not None else self.config.lr
        return [{"params": self.parameters(), "lr": lr, "name": "margin"}]

    def parameters(self) -> list[torch.nn.Parameter]:
        """The margin head's parameters (trained beside the model's), or none."""
        return list(self.head.parameters()) if self.head is not None else []

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
        """The batch's loss: ``target`` is what the classifier learns (class indices or mixed
        targets), ``labels`` each image's class (the margin head's target)."""
        c = self.config
        if c.loss == "focal":
            loss = focal_loss(logits, target, gamma=c.focal_gamma, alpha=self.alpha, label_smoothing=smoothing)
        else:
            loss = F.cross_entropy(logits.float(), target, label_smoothing=smoothing)
        if self.head is not None and self.tap is not None:
            with torch.autocast(logits.device.type, enabled=False):  # cosines in fp32
                margin_logits = self.head(self.tap.take(), labels)
                loss = loss + c.margin_weight * F.cross_entropy(margin_logits, labels)
        return loss

    def state_dict(self) -> dict[str, Any] | None:
        return self.head.state_dict() if self.head is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.head is not None and state is not None:
            self.head.load_state_dict(state)


def check_margin_model(model: torch.nn.Module, config: TrialConfig, num_classes: int) -> None:
    """Plan-time: the model (built on the meta device) has the embedding ``margin_loss`` reads."""
    if config.margin_loss != "none":
        margin_embedding_dim(model, num_classes, model_name=config.model)
