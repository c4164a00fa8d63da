"""Test-time augmentation: the model's softmax averaged over views of each evaluation image.

``tta="flip"``: the image and its mirror image. ``tta="crops"``: torchvision's five crops (four
corners and the centre) or ten (and their mirror images) of side ``tta_crop_size``, each resized
back to the model's input side (``image_size``, bilinear with antialiasing) so that any model,
the small CNN's fixed-size dense layer included, takes them.

It applies to the validation split as well as the test split: the epoch that is selected (and
early stopping, plateau scheduling, pruning) then sees the same predictions that are reported.
The scores returned are log-probabilities, log of the mean softmax: their arg-max is the TTA
prediction and ``F.cross_entropy`` of them is the negative log of the averaged probability of
the true class, so the val/test loss is that of the averaged prediction.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ablate.study import TrialConfig, tta_crop_side


def tta_views(x: torch.Tensor, config: TrialConfig) -> list[torch.Tensor]:
    """The views of a normalised (B, C, H, W) batch that ``config.tta`` averages over."""
    if config.tta == "flip":
        return [x, x.flip(-1)]
    if config.tta == "crops":
        from torchvision.transforms.v2 import functional as TF

        side = tta_crop_side(config)
        crops = TF.ten_crop(x, [side, side]) if config.tta_crops == 10 else TF.five_crop(x, [side, side])
        size = (x.shape[-2], x.shape[-1])
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1 else torch.contiguous_format
        return [
            F.interpolate(c, size=size, mode="bilinear", antialias=True, align_corners=False).contiguous(memory_format=fmt)
            for c in crops
        ]
    return [x]


def tta_scores(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, config: TrialConfig) -> torch.Tensor:
    """(B, K) scores of a normalised batch: the model's logits without TTA, else the
    log of its softmax probabilities averaged over :func:`tta_views`."""
    if config.tta == "none":
        return forward(x).float()
    views = tta_views(x, config)
    log_probs = torch.stack([F.log_softmax(forward(v).float(), dim=1) for v in views])
    return torch.logsumexp(log_probs, dim=0) - math.log(len(views))
