"""Optimizers and schedules: the closed forms agree with torch's schedulers, warm-up ramps."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from ablate.errors import StudyError
from ablate.train import train_trial
from ablate.train._optim import LRSchedule, build_optimizer
from ablate.train._trainer import _Trial

from .helpers import tiny

EPOCHS = 12


def _optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


def _ours(cfg: Any, metrics: list[float] | None = None, steps: int = 1) -> list[float]:
    opt = _optimizer(cfg.lr)
    sched = LRSchedule(cfg, opt, steps_per_epoch=steps, maximize=True)
    out = []
    for e in range(cfg.epochs):
        for s in range(steps):
            sched.apply(e, s)
            out.append(opt.param_groups[0]["lr"])
        sched.end_epoch(e, metrics[e] if metrics else None)
    return out


def _torch(make: Any, metrics: list[float] | None = None, steps: int = 1, per_step: bool = False) -> list[float]:
    opt = _optimizer()
    sched = make(opt)
    out = []
    for e in range(EPOCHS):
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            if per_step:
                sched.step()
        if not per_step:
            sched.step(metrics[e]) if metrics else sched.step()
    return out


S = torch.optim.lr_scheduler
CASES = [
    ("step", dict(step_size=3, gamma=0.5), lambda o: S.StepLR(o, step_size=3, gamma=0.5)),
    ("multistep", dict(milestones=[2, 5, 9], gamma=0.1), lambda o: S.MultiStepLR(o, [2, 5, 9], gamma=0.1)),
    ("cosine", dict(min_lr=0.001), lambda o: S.CosineAnnealingLR(o, T_max=EPOCHS, eta_min=0.001)),
    ("cosine_restarts", dict(t_0=3, t_mult=1), lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=1)),
    ("cosine_restarts", dict(t_0=2, t_mult=2, min_lr=0.01), lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2, eta_min=0.01)),
]


@pytest.mark.parametrize(("name", "knobs", "make"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_epoch_schedules_match_torch(name: str, knobs: dict[str, Any], make: Any) -> None:
    cfg = tiny(scheduler=name, lr=0.1, epochs=EPOCHS, **knobs)
    assert _ours(cfg) == pytest.approx(_torch(make), rel=1e-9, abs=1e-12)


def test_plateau_matches_torch() -> None:
    metrics = [0.1, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.3, 0.31, 0.31, 0.31, 0.31]
    cfg = tiny(scheduler="plateau", lr=0.1, epochs=EPOCHS, plateau_patience=1, plateau_factor=0.5)
    expected = _torch(lambda o: S.ReduceLROnPlateau(o, mode="max", factor=0.5, patience=1), metrics)
    assert _ours(cfg, metrics) == pytest.approx(expected)
    assert min(expected) < 0.1  # the sequence does trigger decays


def test_onecycle_matches_torch_per_step() -> None:
    steps = 5
    cfg = tiny(scheduler="onecycle", lr=0.1, epochs=EPOCHS)
    expected = _torch(lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=EPOCHS * steps, cycle_momentum=False), steps=steps, per_step=True)
    assert _ours(cfg, steps=steps) == pytest.approx(expected, rel=1e-9)


def test_warmup_ramps_linearly_then_hands_over_to_the_schedule() -> None:
    cfg = tiny(scheduler="step", step_size=3, gamma=0.5, lr=0.1, epochs=6, warmup_epochs=2)
    lrs = _ours(cfg, steps=5)
    assert lrs[:10] == pytest.approx([0.1 * (t + 1) / 10 for t in range(10)])
    assert lrs[10:15] == pytest.approx([0.1] * 5)  # epoch 2: the step schedule's own value
    assert lrs[15:] == pytest.approx([0.05] * 15)


def test_optimizers_and_their_knobs() -> None:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1}]
    sgd = build_optimizer(tiny(optimizer="sgd", momentum=0.8, nesterov=True, weight_decay=1e-4), groups)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.8 and sgd.defaults["weight_decay"] == 1e-4
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1}]
    adamw = build_optimizer(tiny(optimizer="adamw", weight_decay=0.05), groups)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 0.05
    with pytest.raises(StudyError, match="Nesterov"):
        build_optimizer(tiny(nesterov=True, momentum=0.0), groups)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_each_optimizer_trains(optimizer: str) -> None:
    lr = 0.05 if optimizer == "sgd" else 3e-3
    trial = _Trial(tiny(optimizer=optimizer, lr=lr), metric="val_acc", maximize=True, checkpoint_dir=None)
    assert type(trial.optimizer).__name__ == {"sgd": "SGD", "adamw": "AdamW"}[optimizer]
    result = train_trial(tiny(optimizer=optimizer, lr=lr, epochs=3))
    assert result.train_loss is not None and result.train_loss < math.log(4)  # below chance


SCHEDULE_KNOBS: dict[str, dict[str, Any]] = {
    "none": {},
    "step": dict(step_size=1, gamma=0.5),
    "multistep": dict(milestones=[1], gamma=0.1),
    "plateau": dict(plateau_patience=0),
    "cosine": {},
    "cosine_restarts": dict(t_0=2),
    "onecycle": {},
}


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", list(SCHEDULE_KNOBS))
def test_each_schedule_drives_the_trainer(scheduler: str) -> None:
    cfg = tiny(scheduler=scheduler, epochs=3, warmup_epochs=1, lr=0.1, **SCHEDULE_KNOBS[scheduler])
    result = train_trial(cfg)
    assert result.status == "completed" and result.epochs_run == 3
    # The rate each epoch reports is the schedule's at that epoch's last batch.
    steps = 4  # 64 synthetic images, batch 16
    trial = _Trial(cfg, metric="val_acc", maximize=True, checkpoint_dir=None)
    sched = trial.schedule
    for m in result.history:
        if scheduler == "plateau":
            break  # depends on the validation metric, compared against torch above
        assert m.lr == pytest.approx(sched.lr(0.1, m.epoch - 1, steps - 1))
    assert result.history[0].lr == pytest.approx(0.1)  # end of warm-up
