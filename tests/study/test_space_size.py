"""An adaptive study plans no more configurations than its space holds: ``n_trials`` points of a
space of two would leave the sampler with nothing to propose after the second."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ablate import Study, intrange, uniform
from ablate.cli import app
from ablate.run import plan_trials
from ablate.study import space_size

BASE = dict(dataset="synthetic", num_classes=3, image_size=12, cnn_blocks=2, cnn_filters=4, cnn_dense=8)


def test_the_space_size_counts_levels_and_integer_steps() -> None:
    study = Study(name="s", factors=dict(lr=[0.1, 0.2, 0.3], cnn_filters=intrange(1, 10, step=3)))
    assert space_size(study.spaces) == 3 * 4  # 1, 4, 7, 10 (Optuna's IntDistribution)
    assert space_size(Study(name="s", factors=dict(a=intrange(2, 9, log=True))).spaces) == 8
    assert space_size(Study(name="s", factors=dict(lr=uniform(0.1, 0.2), b=[1, 2])).spaces) is None


def test_an_adaptive_plan_is_capped_at_a_finite_space_and_says_so() -> None:
    study = Study(name="s", base=BASE, factors=dict(lr=[0.01, 0.02]), design="random", n_trials=5, seeds=[0, 1])
    planned = plan_trials(study)
    assert study.strategy.configurations(study) == 2 and planned.planned == 4
    assert planned.notes == ["s: the space holds 2 configurations, fewer than n_trials=5: 2 points x 2 seed(s) = 4 trials"]


def test_a_continuous_or_larger_space_keeps_n_trials() -> None:
    for factors in (dict(lr=uniform(0.01, 0.1)), dict(lr=[0.01, 0.02], cnn_filters=intrange(4, 6))):
        study = Study(name="s", base=BASE, factors=factors, design="tpe", n_trials=5)
        planned = plan_trials(study)
        assert planned.planned == 5 and planned.notes == []


def test_plan_shows_the_capped_count_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "small.py"
    path.write_text(
        "from ablate import Study\n"
        f"study = Study(name='small', base={BASE!r}, factors=dict(lr=[0.01, 0.02]), design='random', n_trials=5)\n"
    )
    result = CliRunner().invoke(app, ["plan", str(path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "2 points sampled by Optuna (random) x 1 seed(s) = 2 trials" in result.output
    assert "small: the space holds 2 configurations, fewer than n_trials=5" in result.output
