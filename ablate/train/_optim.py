"""Optimizers and learning-rate schedules (with optional linear warm-up).

The schedules are written in closed form of (epoch, step) instead of chaining torch's scheduler
objects: a warm-up in front of any schedule, per-group base rates and an exact resume then need no
special cases, and the whole state is three numbers (ReduceLROnPlateau's). Each formula matches
the torch scheduler of the same name stepped once per epoch (OneCycle: once per batch); the tests
compare them.

Like timm's schedulers, the schedule runs on absolute epochs: warm-up ramps the rate linearly
(per optimizer step) from ~0 to the base rate over ``warmup_epochs`` (or ``warmup_steps``) and
then hands over to the schedule at that point, so milestones and step sizes mean the same with
and without warm-up. ``schedule_step="batch"`` evaluates cosine and cosine_restarts at every
optimizer step (torch's schedulers stepped per batch) instead of at each epoch's start. A "step"
is an optimizer step: with ``accumulate_steps`` k, one per k batches.
"""

from __future__ import annotations

import bisect
import math
from typing import TYPE_CHECKING, Any

import torch

from ablate.errors import StudyError

if TYPE_CHECKING:
    from ablate.study import TrialConfig

# torch's ReduceLROnPlateau defaults: relative threshold, and OneCycleLR's shape.
PLATEAU_THRESHOLD = 1e-4
ONECYCLE_PCT_START = 0.3
ONECYCLE_DIV = 25.0
ONECYCLE_FINAL_DIV = 1e4


def build_optimizer(config: TrialConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), AdamW or Adam (coupled L2 weight decay) over ``groups`` (each
    with its own ``lr``, and its own ``weight_decay`` where :func:`split_weight_decay` set one)."""
    if config.optimizer == "sgd":
        if config.nesterov and config.momentum <= 0:
            raise StudyError("field 'nesterov' is true but 'momentum' is 0; Nesterov needs momentum > 0")
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    betas = (config.betas[0], config.betas[1])
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=betas, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=betas, weight_decay=config.weight_decay)
    raise StudyError(f"field 'optimizer' is {config.optimizer!r}; allowed: sgd, adamw, adam")


def is_no_decay(name: str, param: torch.nn.Parameter) -> bool:
    """Norm-layer weights and biases (every 1-d parameter) and biases: timm's and nanoGPT's rule."""
    return param.ndim <= 1 or name.endswith(".bias")


def split_weight_decay(
    model: torch.nn.Module, groups: list[dict[str, Any]], decay_norm_bias: bool
) -> list[dict[str, Any]]:
    """``groups`` unchanged, or (``decay_norm_bias`` false) each split in two: its decayed
    parameters, and its norm and bias parameters with ``weight_decay`` 0 (named ``<name>.no_decay``)."""
    if decay_norm_bias:
        return groups
    no_decay = {id(p) for n, p in model.named_parameters() if is_no_decay(n, p)}
    out: list[dict[str, Any]] = []
    for g in groups:
        decayed = [p for p in g["params"] if id(p) not in no_decay]
        kept = [p for p in g["params"] if id(p) in no_decay]
        if decayed:
            out.append({**g, "params": decayed})
        if kept:
            out.append({**g, "params": kept, "weight_decay": 0.0, "name": f"{g.get('name', 'all')}.no_decay"})
    return out


class LRSchedule:
    """Sets every parameter group's rate before each optimizer step; see the module docstring."""

    def __init__(self, config: TrialConfig, optimizer: torch.optim.Optimizer, *, steps_per_epoch: int, maximize: bool) -> None:
        self.config = config
        self.optimizer = optimizer
        self.base = [float(g["lr"]) for g in optimizer.param_groups]
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.maximize = maximize
        # ReduceLROnPlateau state.
        self.plateau_scale = 1.0
        self.plateau_best = -math.inf if maximize else math.inf
        self.plateau_bad = 0

    @property
    def warmup_steps(self) -> int:
        return self.config.warmup_steps or self.config.warmup_epochs * self.steps_per_epoch

    def lr(self, base: float, epoch: int, step: int) -> float:
        """Rate of a group with base rate ``base`` at optimizer ``step`` of 0-based ``epoch``."""
        c = self.config
        spe = self.steps_per_epoch
        warm = self.warmup_steps
        t = epoch * spe + step
        if t < warm:
            return base * (t + 1) / warm
        per_batch = c.schedule_step == "batch"
        name = c.scheduler
        if name == "none":
            return base
        if name == "step":
            return base * c.gamma ** (epoch // c.step_size)
        if name == "multistep":
            return base * c.gamma ** bisect.bisect_right(sorted(c.milestones), epoch)
        if name == "plateau":
            return base * self.plateau_scale
        if name == "cosine":
            period = c.cosine_period or c.epochs
            where = t / (period * spe) if per_batch else epoch / period
            return c.min_lr + (base - c.min_lr) * (1 + math.cos(math.pi * where)) / 2
        if name == "cosine_restarts":
            # Per batch as torch's documentation steps it: scheduler.step(epoch + i / iters).
            t_cur, t_i = _restart_position(epoch + step / spe if per_batch else epoch, c.t_0, c.t_mult)
            return c.min_lr + (base - c.min_lr) * (1 + math.cos(math.pi * t_cur / t_i)) / 2
        if name == "onecycle":
            return _onecycle(base, t, c.epochs * spe)
        raise StudyError(f"field 'scheduler' is {name!r}; allowed: none, step, multistep, plateau, cosine, cosine_restarts, onecycle")

    def apply(self, epoch: int, step: int) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base, strict=True):
            group["lr"] = self.lr(base, epoch, step)

    def end_epoch(self, epoch: int, value: float | None) -> None:
        """After 0-based ``epoch``: ReduceLROnPlateau's bookkeeping on the study metric."""
        # Epochs that end inside the warm-up are not watched.
        warming = (epoch + 1) * self.steps_per_epoch <= self.warmup_steps
        if self.config.scheduler != "plateau" or value is None or warming:
            return
        if self.maximize:  # torch's relative threshold, as written there
            better = value > self.plateau_best * (1 + PLATEAU_THRESHOLD)
        else:
            better = value < self.plateau_best * (1 - PLATEAU_THRESHOLD)
        if better:
            self.plateau_best = value
            self.plateau_bad = 0
        else:
            self.plateau_bad += 1
        if self.plateau_bad > self.config.plateau_patience:
            self.plateau_scale *= self.config.plateau_factor
            self.plateau_bad = 0

    def state_dict(self) -> dict[str, float]:
        return {"plateau_scale": self.plateau_scale, "plateau_best": self.plateau_best, "plateau_bad": self.plateau_bad}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.plateau_best = float(state["plateau_best"])
        self.plateau_bad = int(state["plateau_bad"])


def _restart_position(epoch: float, t_0: int, t_mult: int) -> tuple[float, float]:
    """(epochs into the current cycle, cycle length) of CosineAnnealingWarmRestarts."""
    if t_mult == 1:
        return epoch % t_0, t_0
    n = int(math.log(epoch / t_0 * (t_mult - 1) + 1, t_mult))
    return epoch - t_0 * (t_mult**n - 1) / (t_mult - 1), t_0 * t_mult**n


def _onecycle(max_lr: float, step: int, total: int) -> float:
    """torch's OneCycleLR (cosine annealing, two phases) at ``step`` of ``total``."""
    initial = max_lr / ONECYCLE_DIV
    final = initial / ONECYCLE_FINAL_DIV
    end_up = float(ONECYCLE_PCT_START * total) - 1
    end_down = float(total - 1)

    def anneal(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    if step <= end_up:
        return anneal(initial, max_lr, step / end_up if end_up > 0 else 1.0)
    return anneal(max_lr, final, (step - end_up) / (end_down - end_up) if end_down > end_up else 1.0)
