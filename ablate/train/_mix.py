"""MixUp / CutMix with label smoothing, the semantics of timm's ``Mixup`` in batch mode.

One mixing weight per batch from Beta(alpha, alpha), each image paired with the batch reversed;
with both alphas set, CutMix is picked with probability 0.5 (timm's ``switch_prob``) and its
weight corrected to the pasted area. Written here rather than imported so the small-CNN path does
not import timm (seconds of start-up) and the draws come from the epoch's own generator (exact
resume), and odd batch sizes work.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SWITCH_PROB = 0.5


class MixUpCutMix:
    """Mixes a normalised batch and returns it with soft targets."""

    def __init__(self, *, mixup_alpha: float, cutmix_alpha: float, label_smoothing: float, num_classes: int) -> None:
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.smoothing = label_smoothing
        self.num_classes = num_classes

    @property
    def active(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def soft_targets(self, y: torch.Tensor) -> torch.Tensor:
        off = self.smoothing / self.num_classes
        return F.one_hot(y, self.num_classes).float() * (1 - self.smoothing) + off

    def __call__(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or rng.random() < SWITCH_PROB)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(rng.beta(alpha, alpha))
        other = x.flip(0)
        if use_cutmix:
            h, w = x.shape[-2:]
            cut = np.sqrt(1 - lam)
            ch, cw = int(h * cut), int(w * cut)
            cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
            y0, y1 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
            x0, x1 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
            x = x.clone()
            x[:, :, y0:y1, x0:x1] = other[:, :, y0:y1, x0:x1]
            lam = 1 - float((y1 - y0) * (x1 - x0)) / (h * w)
        else:
            x = x * lam + other * (1 - lam)
        t = self.soft_targets(y)
        return x, t * lam + t.flip(0) * (1 - lam)
