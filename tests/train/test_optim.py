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


# ---------------------------------------------------------------- the recipe fields (issue 20)


def _ours_per_step(cfg: Any, steps: int) -> list[float]:
    return _ours(cfg, steps=steps)


def _torch_fractional(make: Any, steps: int, epochs: int = EPOCHS) -> list[float]:
    """CosineAnnealingWarmRestarts stepped per batch as torch documents: step(epoch + i / iters)."""
    opt = _optimizer()
    sched = make(opt)
    out = []
    for e in range(epochs):
        for i in range(steps):
            sched.step(e + i / steps)
            out.append(opt.param_groups[0]["lr"])
            opt.step()
    return out


def test_per_batch_cosine_matches_torch_over_all_steps() -> None:
    steps = 7
    cfg = tiny(scheduler="cosine", schedule_step="batch", lr=0.1, min_lr=0.001, epochs=EPOCHS)
    expected = _torch(lambda o: S.CosineAnnealingLR(o, T_max=EPOCHS * steps, eta_min=0.001), steps=steps, per_step=True)
    ours = _ours_per_step(cfg, steps)
    assert ours == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert len(set(ours[:steps])) == steps  # it changes within an epoch
    per_epoch = _ours_per_step(tiny(scheduler="cosine", lr=0.1, min_lr=0.001, epochs=EPOCHS), steps)
    assert len(set(per_epoch[:steps])) == 1 and per_epoch != pytest.approx(ours)


def test_cosine_period_matches_torch_t_max() -> None:
    cfg = tiny(scheduler="cosine", cosine_period=5, lr=0.1, min_lr=0.01, epochs=EPOCHS)
    expected = _torch(lambda o: S.CosineAnnealingLR(o, T_max=5, eta_min=0.01))
    assert _ours(cfg) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert _ours(cfg)[5] == pytest.approx(0.01)  # the period's end, then it rises again as torch's
    steps = 3
    batch = tiny(scheduler="cosine", cosine_period=5, schedule_step="batch", lr=0.1, epochs=EPOCHS)
    expected = _torch(lambda o: S.CosineAnnealingLR(o, T_max=5 * steps), steps=steps, per_step=True)
    assert _ours_per_step(batch, steps) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("t_mult", [1, 2])
def test_per_batch_restarts_match_torch_fractional_epochs(t_mult: int) -> None:
    steps = 4
    cfg = tiny(scheduler="cosine_restarts", schedule_step="batch", t_0=2, t_mult=t_mult, min_lr=0.01, lr=0.1, epochs=EPOCHS)
    expected = _torch_fractional(lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=t_mult, eta_min=0.01), steps)
    assert _ours_per_step(cfg, steps) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_warmup_in_steps_matches_torch_linear_lr_then_the_schedule() -> None:
    steps, warm = 5, 13
    cfg = tiny(scheduler="cosine", schedule_step="batch", warmup_steps=warm, lr=0.1, epochs=EPOCHS)
    ours = _ours_per_step(cfg, steps)
    ramp = _torch(lambda o: S.LinearLR(o, start_factor=1 / warm, end_factor=1.0, total_iters=warm - 1), steps=steps, per_step=True)
    assert ours[:warm] == pytest.approx(ramp[:warm], rel=1e-9)
    cosine = _torch(lambda o: S.CosineAnnealingLR(o, T_max=EPOCHS * steps), steps=steps, per_step=True)
    assert ours[warm:] == pytest.approx(cosine[warm:], rel=1e-9)  # absolute steps, as warmup_epochs


def test_plateau_ignores_epochs_that_end_inside_a_warmup_in_steps() -> None:
    cfg = tiny(scheduler="plateau", plateau_patience=0, plateau_factor=0.5, warmup_steps=7, lr=0.1, epochs=4)
    opt = _optimizer()
    sched = LRSchedule(cfg, opt, steps_per_epoch=4, maximize=True)
    sched.end_epoch(0, 0.5)  # ends at step 4, inside the warm-up: not watched
    assert sched.plateau_best == -math.inf
    sched.end_epoch(1, 0.5)
    sched.end_epoch(2, 0.4)
    assert sched.plateau_scale == 0.5


def test_adam_is_coupled_l2_and_adamw_decoupled() -> None:
    def one_step(name: str) -> float:
        p = torch.nn.Parameter(torch.ones(1))
        opt = build_optimizer(tiny(optimizer=name, lr=0.1, weight_decay=0.5, betas=[0.8, 0.99]), [{"params": [p], "lr": 0.1}])
        p.grad = torch.zeros(1)
        opt.step()
        assert opt.defaults["betas"] == (0.8, 0.99)
        return float(p.detach())

    adam, adamw = one_step("adam"), one_step("adamw")
    assert adam == pytest.approx(0.9, rel=1e-4)  # the decay went through the moments: a full lr step
    assert adamw == pytest.approx(1 - 0.1 * 0.5)  # decoupled: p * (1 - lr * wd)
    trial = _Trial(tiny(optimizer="adam", lr=1e-3), metric="val_acc", maximize=True, checkpoint_dir=None)
    assert type(trial.optimizer) is torch.optim.Adam


def test_no_weight_decay_on_norm_and_bias_splits_each_group() -> None:
    cfg = tiny(decay_norm_bias=False, weight_decay=1e-3, lr_groups=[1.0, 0.5], cnn_blocks=2)
    trial = _Trial(cfg, metric="val_acc", maximize=True, checkpoint_dir=None)
    names = {id(p): n for n, p in trial.model.named_parameters()}
    groups = {g["name"]: g for g in trial.optimizer.param_groups}
    assert list(groups) == ["block2+head", "block2+head.no_decay", "block1", "block1.no_decay"]
    for name, g in groups.items():
        params = [names[id(p)] for p in g["params"]]
        if name.endswith(".no_decay"):
            assert g["weight_decay"] == 0.0 and all(n.endswith(".bias") or ".bn." in n for n in params)
            assert all(trial.model.get_parameter(n).ndim <= 1 for n in params)
        else:
            assert g["weight_decay"] == 1e-3 and all(trial.model.get_parameter(n).ndim > 1 for n in params)
    assert groups["block1"]["lr"] == groups["block1.no_decay"]["lr"] == pytest.approx(cfg.lr * 0.5)
    assert sum(len(g["params"]) for g in groups.values()) == len(list(trial.model.parameters()))
    default = _Trial(tiny(lr_groups=[1.0, 0.5]), metric="val_acc", maximize=True, checkpoint_dir=None)
    assert [g["name"] for g in default.optimizer.param_groups] == ["block2+head", "block1"]


def _one_epoch(**kw: Any) -> dict[str, torch.Tensor]:
    base: dict[str, Any] = dict(augment="none", cnn_batch_norm=False, optimizer="sgd", momentum=0.0, weight_decay=0.0, scheduler="none", lr=0.1)
    trial = _Trial(tiny(**{**base, **kw}), metric="val_acc", maximize=True, checkpoint_dir=None)
    trial._train_epoch(1, None, 0.0)
    return {k: v.detach().clone() for k, v in trial.model.state_dict().items()}


def test_accumulation_steps_on_the_mean_of_the_batches_it_sums() -> None:
    # 51 training images (64 less the 20 % hold-out): batch 16 -> 4 steps, the last of 3 images;
    # batch 8 x 2 -> the same images in each step (one shuffle order), the same mean gradient.
    full = _one_epoch(batch_size=16, max_train_samples=48)
    accumulated = _one_epoch(batch_size=8, accumulate_steps=2, max_train_samples=48)
    plain = _one_epoch(batch_size=8, max_train_samples=48)
    for k in full:
        torch.testing.assert_close(accumulated[k], full[k], rtol=1e-4, atol=1e-6)
    assert any(not torch.allclose(plain[k], full[k], atol=1e-4) for k in full)
    trial = _Trial(tiny(batch_size=8, accumulate_steps=3, max_train_samples=45), metric="val_acc", maximize=True, checkpoint_dir=None)
    assert trial.steps == 6 and trial.opt_steps == 2
    sizes = [trial._group_images(i) for i in range(trial.steps)]
    assert sizes == [24, 24, 24, 21, 21, 21] and len(trial.train_src) == 45


def test_accumulation_longer_than_an_epoch_and_warmup_longer_than_training_are_refused() -> None:
    with pytest.raises(StudyError, match="field 'accumulate_steps' is 9 but an epoch has 4 batches of 16"):
        _Trial(tiny(accumulate_steps=9), metric="val_acc", maximize=True, checkpoint_dir=None)
    with pytest.raises(StudyError, match="field 'warmup_steps' is 8; it must be < the trial's 8 optimizer steps"):
        _Trial(tiny(warmup_steps=8, epochs=2), metric="val_acc", maximize=True, checkpoint_dir=None)
    with pytest.raises(StudyError, match=r"one optimizer step of batch_size x accumulate_steps = 64 images needs more than max_train_samples \(40\)"):
        tiny(accumulate_steps=4, max_train_samples=40)


def test_clipping_bounds_each_step() -> None:
    start = _one_epoch(lr=1e-9)
    clipped = _one_epoch(lr=1.0, clip_grad_norm=1e-3)
    free = _one_epoch(lr=1.0)

    def moved(state: dict[str, torch.Tensor]) -> float:
        return float(torch.sqrt(sum(((state[k] - start[k]) ** 2).sum() for k in start)))

    assert moved(clipped) <= 4 * 1.0 * 1e-3 * 1.001  # 4 steps of lr x at most the clip norm
    assert moved(free) > 100 * moved(clipped)


def test_early_stopping_watches_its_own_metric_in_its_direction() -> None:
    from ablate.trial import EpochMetrics

    def run(**kw: Any) -> tuple[str | None, int | None, int]:
        trial = _Trial(tiny(early_stopping=2, epochs=10, **kw), metric="val_acc", maximize=True, checkpoint_dir=None)
        # val_acc keeps improving while val_loss rises after epoch 1.
        for e in range(1, 7):
            m = EpochMetrics(
                epoch=e, train_loss=1.0, train_acc=0.5, val_loss=1.0 + e, val_acc=0.1 * e, val_top5=None,
                lr=0.1, seconds=1.0, images_per_s=1.0, peak_mem_mb=1.0,
            )
            trial._end_epoch(m, 0.0)
            if trial.stop_reason:
                break
        return trial.stop_reason, trial.best_epoch, trial.epoch

    assert run() == (None, 6, 6)
    assert run(early_stopping_metric="val_loss") == ("early_stopped", 3, 3)  # best still by val_acc
    assert run(early_stopping_metric="train_acc") == ("early_stopped", 3, 3)  # flat: no improvement


def test_recipe_interactions_are_refused_with_the_reason() -> None:
    with pytest.raises(StudyError, match="field 'schedule_step' is 'batch' but scheduler 'plateau' decays on an epoch's metric"):
        tiny(scheduler="plateau", schedule_step="batch")
    with pytest.raises(StudyError, match="fields 'warmup_epochs' \\(1\\) and 'warmup_steps' \\(5\\) are both set"):
        tiny(warmup_epochs=1, warmup_steps=5)
    with pytest.raises(StudyError, match=r"field 'betas' is \[0.9, 1.0\]; it must be \[beta1, beta2\], each in \[0, 1\)"):
        tiny(optimizer="adam", betas=[0.9, 1.0])
    with pytest.raises(StudyError, match="field 'early_stopping' is 3 but there is no validation split"):
        tiny(early_stopping=3, val_split=None)
    tiny(early_stopping=3, val_split=None, early_stopping_metric="train_loss")  # watches training images
    with pytest.raises(StudyError, match="allowed: study, train_loss"):
        tiny(early_stopping_metric="test_acc")


def test_recipe_settings_unused_when_their_option_is_off() -> None:
    from ablate.study._config import unused_settings

    assert "betas" in unused_settings(tiny(optimizer="sgd"))
    assert "betas" not in unused_settings(tiny(optimizer="adam"))
    assert {"schedule_step", "cosine_period"} <= set(unused_settings(tiny(scheduler="step")))
    assert "schedule_step" not in unused_settings(tiny(scheduler="cosine_restarts"))
    assert "cosine_period" in unused_settings(tiny(scheduler="cosine_restarts"))
    assert "decay_norm_bias" in unused_settings(tiny(weight_decay=0.0))
    assert "early_stopping_metric" in unused_settings(tiny())
    assert "early_stopping_metric" not in unused_settings(tiny(early_stopping=2))


def test_recipe_fields_keep_the_hash_at_their_default_and_have_units() -> None:
    from ablate.study._config import _HASHED_WHEN_SET, FIELD_UNITS

    new = ["betas", "decay_norm_bias", "accumulate_steps", "clip_grad_norm", "schedule_step", "cosine_period",
           "warmup_steps", "early_stopping_metric"]  # fmt: skip
    assert set(new) <= set(_HASHED_WHEN_SET)
    assert tiny().config_hash == "71b50c54380b4690"  # as on main before these fields
    assert all(FIELD_UNITS.get(n) for n in ("betas", "accumulate_steps", "clip_grad_norm", "cosine_period", "warmup_steps"))


@pytest.mark.slow
def test_a_full_recipe_trains_and_its_smoke_variant_runs() -> None:
    from ablate.train import smoke_config

    cfg = tiny(
        optimizer="adam", betas=[0.85, 0.98], lr=3e-3, weight_decay=1e-4, decay_norm_bias=False, accumulate_steps=2,
        clip_grad_norm=1.0, scheduler="cosine", schedule_step="batch", cosine_period=2, warmup_steps=2, epochs=3,
        early_stopping=2, early_stopping_metric="val_loss",
    )
    result = train_trial(cfg)
    # 4 batches of 16, 2 per optimizer step: epoch 2 ends at step 3 of a 4-step half cosine.
    assert result.status == "completed" and result.history[0].lr == pytest.approx(3e-3)  # warm-up's end
    assert result.history[1].lr == pytest.approx(3e-3 * (1 + math.cos(math.pi * 3 / 4)) / 2)
    assert set(result.history[0].group_lrs) == {"all", "all.no_decay"}
    smoke = smoke_config(tiny(accumulate_steps=8, warmup_steps=50, batch_size=16))
    assert smoke.accumulate_steps == 2 and smoke.warmup_steps == 0
    assert train_trial(smoke).status == "completed"
