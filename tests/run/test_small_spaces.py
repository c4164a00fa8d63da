"""Plans that hold fewer trials than asked say so: an adaptive space smaller than ``n_trials``,
and configurations that differ only in what --smoke sets (epochs, batch size), run once."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate import Study, intrange
from ablate.run import plan_trials, run_study

BASE = dict(dataset="synthetic", num_classes=3, image_size=12, cnn_blocks=2, cnn_filters=4, cnn_dense=8)


def test_smoke_runs_configurations_differing_only_in_epochs_and_batch_size_once() -> None:
    study = Study(name="g", base=BASE, factors=dict(epochs=[1, 2, 3], batch_size=[4, 8], lr=[0.1, 0.2]))
    planned = plan_trials(study, smoke=True)
    assert [s.params["lr"] for s in planned.specs] == [0.1, 0.2]
    assert [s.number for s in planned.specs] == [0, 1] and planned.planned == 2
    assert planned.notes == [
        "g_smoke: 12 configurations differ only in batch_size/epochs, which --smoke sets, and run as 2 smoke trial(s)"
    ]
    assert plan_trials(study).notes == []  # a real run runs all 12


def test_smoke_of_an_adaptive_study_samples_only_its_distinct_smoke_configurations() -> None:
    study = Study(name="t", base=BASE, factors=dict(epochs=[1, 2], cnn_filters=intrange(4, 5)), design="tpe", n_trials=5)
    planned = plan_trials(study, smoke=True)
    assert planned.study.n_trials == 2 and planned.planned == 2
    assert planned.notes == [
        "t: the space holds 4 configurations, fewer than n_trials=5: 4 points x 1 seed(s) = 4 trials",
        "t_smoke: 4 configurations differ only in epochs, which --smoke sets, and run as 2 smoke trial(s)",
    ]


@pytest.mark.slow
def test_an_adaptive_study_over_a_small_space_runs_it_all_and_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study_file = tmp_path / "small.py"
    study_file.write_text(
        "from ablate import Study, choice\n"
        "def train(config, reporter):\n"
        "    return {'val_acc': config.extra['x'] / 10, 'epochs_run': 1}\n"
        "study = Study(name='small', factors=dict(x=choice(1, 2)), design='random', n_trials=5,\n"
        "              seeds=[0, 1], train=train)\n"
    )
    (outcome,) = run_study(study_file, db=f"sqlite:///{tmp_path / 'r.db'}", runs_dir=tmp_path / "runs")
    assert outcome.planned == 4 and outcome.counts == {"completed": 4}
    out = capsys.readouterr().out
    assert "small: the space holds 2 configurations, fewer than n_trials=5: 2 points x 2 seed(s) = 4 trials" in out
    assert "small: 4 trials planned" in out


@pytest.mark.slow
def test_a_smoke_run_plans_what_it_runs(tmp_path: Path) -> None:
    study_file = tmp_path / "grid.py"
    study_file.write_text(f"from ablate import Study\nstudy = Study(name='g', base={BASE!r}, factors=dict(epochs=[1, 2], lr=[0.1, 0.2]))\n")
    (outcome,) = run_study(study_file, db=f"sqlite:///{tmp_path / 'r.db'}", smoke=True, runs_dir=tmp_path / "runs")
    assert outcome.planned == 2 and outcome.added == 2 and outcome.counts == {"completed": 2}
