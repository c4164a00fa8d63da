"""Losses and evaluation settings: focal loss, the ArcFace/CosFace margin head, the test split's
checkpoint (best or last epoch) and test-time augmentation, each against a direct computation
and through the trainer, refused at plan time where it cannot work."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from ablate.cli import app
from ablate.errors import StudyError
from ablate.study import tta_crop_side
from ablate.study._config import _HASHED_WHEN_SET, FIELD_UNITS, check_settings_used, unused_settings
from ablate.train import check_trial_config, embeddings, smoke_config, train_trial, use_models
from ablate.train._losses import MarginHead, focal_loss
from ablate.train._trainer import _Trial
from ablate.train._tta import tta_scores, tta_views

from .helpers import tiny

NEW_FIELDS = ("loss", "focal_gamma", "focal_alpha", "margin_loss", "margin_scale", "margin_m", "margin_weight",
              "margin_lr", "test_checkpoint", "tta", "tta_crops", "tta_crop_size")  # fmt: skip


class ProjectedLogits(torch.nn.Module):
    """A dense layer of 16 units and logits from a plain matrix: its last nn.Linear is not the
    classifier, so it has no classifier input to take as the embedding."""

    def __init__(self, config: object, in_chans: int, num_classes: int) -> None:
        super().__init__()
        self.dense = torch.nn.Linear(in_chans, 16)
        self.project = torch.nn.Parameter(torch.randn(16, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x.mean(dim=(2, 3))) @ self.project


def _trial(**overrides: object) -> _Trial:
    return _Trial(tiny(**overrides), metric="val_acc", maximize=True, checkpoint_dir=None)


# ---------------------------------------------------------------------------- fields


def test_new_fields_keep_the_hash_at_their_default_and_have_units() -> None:
    assert set(NEW_FIELDS) <= set(_HASHED_WHEN_SET)
    assert tiny().config_hash == "71b50c54380b4690"  # as on main before these fields
    assert tiny(loss="focal").config_hash != tiny().config_hash
    units = ("focal_gamma", "focal_alpha", "margin_scale", "margin_m", "margin_weight", "margin_lr", "tta_crops", "tta_crop_size")
    assert all(FIELD_UNITS.get(n) for n in units)


def test_ablate_fields_lists_the_new_settings() -> None:
    out = CliRunner().invoke(app, ["fields"], terminal_width=1000, env={"COLUMNS": "1000"}).output
    for name in NEW_FIELDS:
        assert name in out


def test_settings_of_an_option_that_is_off_are_unused() -> None:
    assert {"focal_gamma", "focal_alpha"} <= set(unused_settings(tiny()))
    assert "focal_gamma" not in unused_settings(tiny(loss="focal"))
    assert {"margin_scale", "margin_m", "margin_weight", "margin_lr"} <= set(unused_settings(tiny()))
    assert "margin_lr" not in unused_settings(tiny(margin_loss="cosface"))
    assert {"tta_crops", "tta_crop_size"} <= set(unused_settings(tiny(tta="flip")))
    assert "test_checkpoint" in unused_settings(tiny(test_split=None))
    assert "test_checkpoint" in unused_settings(tiny(val_split=None))
    assert "test_checkpoint" not in unused_settings(tiny())
    with pytest.raises(StudyError, match="field 'focal_gamma' is set but no trial uses it \\(loss is 'cross_entropy'"):
        check_settings_used(["focal_gamma"], [tiny(focal_gamma=1.0)], where="s")


def test_wrong_interactions_are_refused_with_the_reason() -> None:
    with pytest.raises(StudyError, match=r"field 'margin_loss' is 'arcface' but mixup_alpha is 0\.2: a margin head needs each image's one class"):
        tiny(margin_loss="arcface", mixup_alpha=0.2)
    with pytest.raises(StudyError, match="field 'tta_crop_size' is 12 but image_size is 12: a crop must be smaller"):
        tiny(tta="crops", tta_crop_size=12)
    with pytest.raises(StudyError, match=r"field 'tta_crops' is 7; allowed: 5 .*, 10"):
        tiny(tta="crops", tta_crops=7)
    with pytest.raises(StudyError, match="each class weight must be > 0"):
        tiny(loss="focal", focal_alpha=[1.0, 0.0, 1.0, 1.0])
    with pytest.raises(StudyError, match="field 'focal_alpha' has 3 class weights but dataset 'synthetic' has 4 classes"):
        check_trial_config(tiny(loss="focal", focal_alpha=[1.0, 2.0, 1.0]))
    use_models({"projected_logits": ProjectedLogits})
    with pytest.raises(StudyError, match=r"last nn\.Linear of model 'projected_logits' gives 16 features, not the 4 class logits"):
        check_trial_config(tiny(model="projected_logits", margin_loss="arcface"))
    check_trial_config(tiny(model="projected_logits"))
    check_trial_config(tiny(margin_loss="arcface", loss="focal", focal_alpha=[1.0, 2.0, 1.0, 1.0]))


def test_plan_refuses_a_margin_head_without_an_embedding_in_one_line(tmp_path: Path) -> None:
    study = tmp_path / "study.py"
    study.write_text(
        "from ablate import Study\n"
        "from tests.train.test_losses import ProjectedLogits\n"
        "study = Study(name='arc', base=dict(dataset='synthetic', num_classes=4, model='projected', "
        "image_size=12, margin_loss='arcface'), factors=dict(lr=[0.1]), models={'projected': ProjectedLogits})\n"
    )
    plan = CliRunner().invoke(app, ["plan", str(study)])
    assert plan.exit_code == 2, plan.output
    lines = plan.output.strip().splitlines()
    assert len(lines) == 1 and "gives 16 features, not the 4 class logits" in lines[0], lines


# ---------------------------------------------------------------------------- focal


def test_focal_loss_is_the_direct_formula() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(6, 5, generator=g) * 3, torch.tensor([0, 1, 4, 2, 2, 3])
    alpha = torch.tensor([0.5, 1.0, 2.0, 1.0, 0.25])
    expected = []
    for i in range(6):  # -alpha_y (1 - p_y)^gamma log p_y, one image at a time
        p = torch.exp(logits[i]) / torch.exp(logits[i]).sum()
        expected.append(-alpha[y[i]] * (1 - p[y[i]]) ** 2.0 * torch.log(p[y[i]]))
    assert focal_loss(logits, y, gamma=2.0, alpha=alpha).item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)
    # gamma 0: cross-entropy, label smoothing included; soft targets as MixUp gives them.
    assert focal_loss(logits, y, gamma=0.0, label_smoothing=0.1).item() == pytest.approx(
        F.cross_entropy(logits, y, label_smoothing=0.1).item(), rel=1e-6
    )
    soft = torch.softmax(torch.randn(6, 5, generator=g), 1)
    assert focal_loss(logits, soft, gamma=0.0).item() == pytest.approx(F.cross_entropy(logits, soft).item(), rel=1e-6)
    # Well-classified images weigh less: the focal loss is below cross-entropy.
    assert focal_loss(logits, y, gamma=2.0).item() < F.cross_entropy(logits, y).item()


@pytest.mark.slow
def test_focal_loss_changes_training_and_at_gamma_zero_is_cross_entropy() -> None:
    ce = train_trial(tiny(epochs=1))
    focal = train_trial(tiny(epochs=1, loss="focal", focal_gamma=2.0))
    zero = train_trial(tiny(epochs=1, loss="focal", focal_gamma=0.0))
    assert focal.train_loss is not None and ce.train_loss is not None and focal.train_loss < 0.8 * ce.train_loss
    assert zero.train_loss == pytest.approx(ce.train_loss, rel=1e-5)
    assert zero.val_loss == pytest.approx(ce.val_loss, rel=1e-5)


# ---------------------------------------------------------------------------- margin head


def test_margin_logits_follow_the_formulas() -> None:
    s, m = 30.0, 0.5
    arc = MarginHead("arcface", 3, 4, scale=s, margin=m)
    cos_head = MarginHead("cosface", 3, 4, scale=s, margin=0.35)
    with torch.no_grad():
        arc.weight.copy_(torch.randn(4, 3))
        cos_head.weight.copy_(arc.weight)
    emb, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 1])
    cos = F.normalize(emb) @ F.normalize(arc.weight).T
    target = torch.arange(4)[None, :] == y[:, None]
    out = arc(emb, y)
    theta = torch.acos(cos.clamp(-1, 1))
    expected_target = torch.where(theta + m <= math.pi, torch.cos(theta + m), cos - math.sin(math.pi - m) * m)
    assert torch.allclose(out[target], s * expected_target[target], atol=1e-4)
    assert torch.allclose(out[~target], s * cos[~target], atol=1e-5)
    out = cos_head(emb, y)
    assert torch.allclose(out[target], s * (cos[target] - 0.35), atol=1e-5)
    assert torch.allclose(out[~target], s * cos[~target], atol=1e-5)
    # An embedding opposite its class centre (theta + m > pi): the monotone extension.
    far = -arc.weight[:1].detach()
    assert arc(far, torch.tensor([0]))[0, 0].item() == pytest.approx(s * (-1 - math.sin(math.pi - m) * m), rel=1e-3)


@pytest.mark.slow
def test_margin_head_has_its_own_group_reads_the_embedding_and_trains() -> None:
    trial = _trial(margin_loss="arcface", margin_scale=16.0, margin_lr=0.01, lr=0.05, epochs=2)
    groups = {g["name"]: g for g in trial.optimizer.param_groups}
    assert groups["margin"]["lr"] == pytest.approx(0.01) and groups["all"]["lr"] == pytest.approx(0.05)
    head = trial.loss.head
    assert head is not None and groups["margin"]["params"] == [head.weight] and head.weight.shape == (4, 16)
    # The embedding the head reads is the one verification compares (the classifier's input).
    x = torch.randn(3, 3, 12, 12)
    trial.model.train()
    trial.model(x)
    assert trial.loss.tap is not None and torch.equal(trial.loss.tap.take(), embeddings(trial.model, x))
    before = head.weight.detach().clone()
    result = trial.run(None, time.perf_counter())
    assert result.status == "completed" and not torch.equal(before, head.weight.detach())
    lrs = result.history[0].group_lrs  # the cosine schedule scales both groups alike
    assert lrs["margin"] / lrs["all"] == pytest.approx(0.2)
    plain = train_trial(tiny(lr=0.05, epochs=2))
    assert result.history[0].train_loss != plain.history[0].train_loss  # the margin term is in the loss


def test_the_embedding_is_taken_from_a_compiled_model_too() -> None:
    from ablate.train._losses import TrainingLoss

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    loss = TrainingLoss(tiny(margin_loss="arcface", compile=True), model, num_classes=4, device=torch.device("cpu"))
    compiled = torch.compile(model, backend="aot_eager")  # the hook is traced by dynamo, whatever the backend
    x, y = torch.randn(6, 3, 2, 2), torch.tensor([0, 1, 2, 3, 0, 1])
    model.train()
    eager = loss(model(x), y, y, 0.0)
    assert torch.allclose(loss(compiled(x), y, y, 0.0), eager)
    eager.backward()
    assert loss.head is not None and loss.head.weight.grad is not None


@pytest.mark.slow
def test_margin_head_is_resumed_from_the_checkpoint(tmp_path: Path) -> None:
    from ablate.train import TrialPruned

    from .test_trainer import Recorder

    cfg = tiny(margin_loss="cosface", margin_scale=16.0, epochs=3)
    whole = train_trial(cfg, checkpoint_dir=tmp_path / "whole")
    with pytest.raises(TrialPruned):  # stopped after epoch 1; the second session resumes
        train_trial(cfg, reporter=Recorder(prune_at=1), checkpoint_dir=tmp_path / "parts")
    resumed = train_trial(cfg, checkpoint_dir=tmp_path / "parts")
    assert [m.train_loss for m in resumed.history] == [m.train_loss for m in whole.history]


# ---------------------------------------------------------------------------- test checkpoint


@pytest.mark.slow
def test_best_and_last_score_the_test_split_with_those_epochs(tmp_path: Path) -> None:
    # Selected on the highest train_loss, the best epoch is the first; the last is the third.
    results = {}
    for which in ("best", "last"):
        cfg = tiny(epochs=3, test_checkpoint=which)
        results[which] = train_trial(cfg, checkpoint_dir=tmp_path / which, metric="train_loss", direction="maximize")
    best, last = results["best"], results["last"]
    assert best.best_epoch == 1 and last.best_epoch == 1
    assert best.test_epoch == 1 and last.test_epoch == 3
    assert best.metrics_dict()["test_epoch"] == 1 and last.metrics_dict()["test_epoch"] == 3
    # Each is the test score of that epoch's saved weights.
    trial = _trial(epochs=3)
    for result, file in ((best, tmp_path / "best" / "best.pt"), (last, tmp_path / "last" / "last.pt")):
        trial.model.load_state_dict(torch.load(file, weights_only=True)["model"])
        test_loss, test_acc, _ = trial._evaluate(trial.test_src)
        assert (result.test_loss, result.test_acc) == (pytest.approx(test_loss), test_acc)
    assert best.test_loss != last.test_loss


# ---------------------------------------------------------------------------- TTA


def test_flip_tta_is_the_mean_softmax_of_the_image_and_its_mirror() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 10 * 10, 5)).eval()
    x = torch.randn(6, 3, 12, 12)
    with torch.no_grad():
        expected = (torch.softmax(model(x), 1) + torch.softmax(model(x.flip(-1)), 1)) / 2
        scores = tta_scores(model, x, tiny(tta="flip"))
        assert torch.allclose(scores.exp(), expected, atol=1e-6)
        # The val/test loss of TTA is that of the averaged prediction.
        y = torch.tensor([0, 1, 2, 3, 4, 0])
        assert F.cross_entropy(scores, y).item() == pytest.approx(-expected[torch.arange(6), y].log().mean().item(), rel=1e-5)
        assert torch.equal(tta_scores(model, x, tiny()), model(x))


def test_crops_are_torchvisions_five_and_ten_crops_resized_to_the_input() -> None:
    cfg = tiny(tta="crops", tta_crop_size=8)
    x = torch.randn(2, 3, 12, 12)
    views = tta_views(x, cfg)
    assert len(views) == 5 and all(v.shape == x.shape for v in views)
    top_left = F.interpolate(x[..., :8, :8], size=(12, 12), mode="bilinear", antialias=True, align_corners=False)
    centre = F.interpolate(x[..., 2:10, 2:10], size=(12, 12), mode="bilinear", antialias=True, align_corners=False)
    assert torch.allclose(views[0], top_left) and torch.allclose(views[4], centre)
    ten = tta_views(x, tiny(tta="crops", tta_crops=10, tta_crop_size=8))
    mirrored = F.interpolate(x.flip(-1)[..., :8, :8], size=(12, 12), mode="bilinear", antialias=True, align_corners=False)
    assert len(ten) == 10 and torch.allclose(ten[0], top_left) and torch.allclose(ten[5], mirrored)
    assert tta_crop_side(tiny(tta="crops")) == 10  # 7/8 of 12


@pytest.mark.slow
def test_tta_changes_val_and_test_scores_not_training() -> None:
    plain = train_trial(tiny())
    flip = train_trial(tiny(tta="flip"))
    assert [m.train_loss for m in flip.history] == [m.train_loss for m in plain.history]
    assert flip.history[-1].val_loss != plain.history[-1].val_loss and flip.test_loss != plain.test_loss
    # The trainer's val scores are tta_scores of the model.
    trial = _trial(tta="crops", tta_crops=10)
    trial.run(None, time.perf_counter())
    loss, acc, _ = trial._evaluate(trial.val_src)
    trial.forward.eval()
    outs, ys = [], []
    with torch.no_grad():
        for x, y in trial.val_src.eval_batches(trial.eval_batch_size):
            outs.append(tta_scores(trial.forward, trial.augment.eval(x), trial.config))
            ys.append(y)
    out, y = torch.cat(outs), torch.cat(ys)
    assert loss == pytest.approx(F.cross_entropy(out, y).item(), rel=1e-5)
    assert acc == pytest.approx((out.argmax(1) == y).float().mean().item())


# ---------------------------------------------------------------------------- smoke


@pytest.mark.slow
def test_every_new_setting_runs_with_smoke() -> None:
    cfg = tiny(
        loss="focal", focal_gamma=1.5, focal_alpha=[1.0, 2.0, 1.0, 0.5], margin_loss="arcface", margin_lr=0.01,
        margin_weight=0.5, test_checkpoint="last", tta="crops", tta_crops=10, epochs=3,
    )
    result = train_trial(smoke_config(cfg))
    assert result.status == "completed" and result.test_epoch == 1 and result.history[0].group_lrs["margin"] > 0


@pytest.mark.slow
def test_a_study_of_the_new_settings_runs_with_smoke_from_the_cli(tmp_path: Path) -> None:
    from ablate.store import load_trials

    study = tmp_path / "study.py"
    study.write_text(
        "from ablate import Study\n"
        "study = Study(name='losses', design='ofat', base=dict(dataset='synthetic', num_classes=4, image_size=12, "
        "cnn_blocks=2, cnn_filters=4, cnn_dense=16, epochs=3, device='cpu'), factors=dict(\n"
        "    loss=['cross_entropy', dict(loss='focal', focal_gamma=1.0)],\n"
        "    margin_loss=['none', dict(margin_loss='arcface', margin_lr=0.01)],\n"
        "    test_checkpoint=['best', 'last'], tta=['none', 'flip', dict(tta='crops', tta_crops=10)]))\n"
    )
    db = f"sqlite:///{tmp_path / 'r.db'}"
    plan = CliRunner().invoke(app, ["plan", str(study)])
    assert plan.exit_code == 0, plan.output
    done = CliRunner().invoke(app, ["run", str(study), "--smoke", "--db", db, "--runs-dir", str(tmp_path / "runs")])
    assert done.exit_code == 0, done.output
    trials = load_trials("losses_smoke", db=db)
    assert len(trials) == 6 and set(trials["status"]) == {"completed"}
    assert {m["test_epoch"] for m in trials["extra_metrics"]} == {1}
