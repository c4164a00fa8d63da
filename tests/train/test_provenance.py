"""What each trial stores about itself: split sizes and sources, normalisation, trainable
parameters, stop_reason, and the learning rate of every parameter group per epoch (both engines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from ablate.run import run_study
from ablate.train import train_trial

from .helpers import tiny

pytestmark = pytest.mark.slow  # every test here trains


def test_stored_per_trial_and_per_epoch(db_url: str, tmp_path: Path) -> None:
    study = tmp_path / "freeze.py"
    study.write_text(
        "from ablate import Study\n"
        "study = Study(name='freeze', base=dict(dataset='cifar10', model='resnet18', pretrained=True,\n"
        "              image_size=16, lr_groups=[1, 0.5], scheduler='step', step_size=1),\n"
        "              factors=dict(freeze=['none', 'layer3']))\n"
    )
    (outcome,) = run_study(study, db=db_url, smoke=True, runs_dir=tmp_path / "runs")
    assert outcome.counts == {"completed": 2}
    engine = sa.create_engine(db_url)
    with engine.connect() as c:
        rows = c.execute(sa.text(
            "SELECT t.number, t.n_params, t.n_trainable_params, t.stop_reason, t.n_train, t.n_val, t.n_test, t.data "
            "FROM trials t ORDER BY t.number"
        )).all()
        lrs = c.execute(sa.text("SELECT group_lrs FROM epochs ORDER BY trial_id")).scalars().all()
    engine.dispose()
    (_, n_all, trainable_all, stop, n_train, n_val, n_test, data), (_, n_frozen, trainable_frozen, *_ ) = rows
    assert n_all == n_frozen and trainable_all == n_all and trainable_frozen < n_all
    assert stop == "completed" and (n_train, n_val, n_test) == (8, 8, 8)
    data = data if isinstance(data, dict) else json.loads(data)
    assert data["splits"]["val"]["source"].startswith("synthetic val set")
    assert data["normalization"]["how"].startswith("computed from the training split")
    groups = [g if isinstance(g, dict) else json.loads(g) for g in lrs]
    assert groups[0] == {"layer4+head": 0.05, "stem+layer1+layer2+layer3": 0.025}
    assert groups[1] == {"layer4+head": 0.05}  # frozen up to layer3: that group has nothing to train


def test_plateau_on_the_training_loss_without_a_validation_split() -> None:
    cfg = tiny(dataset="digits", num_classes=None, val_split=0, image_size=8, epochs=3, lr=1e-9,
               scheduler="plateau", plateau_metric="train_loss", plateau_patience=0)
    result = train_trial(cfg, metric="test_acc")
    lrs = [m.group_lrs["all"] for m in result.history]
    assert lrs[0] == 1e-9 and lrs[-1] < lrs[0]  # no improvement: decayed without any val image
