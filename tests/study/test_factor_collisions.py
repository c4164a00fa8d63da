"""A field is set by one factor at most: otherwise the factors' order decides which value trains,
and a trial is recorded with a level it did not train at."""

from __future__ import annotations

import pytest

from ablate import Study
from ablate.errors import StudyError

OPTIMIZER = [dict(optimizer="adamw"), dict(optimizer="sgd", lr=0.1)]


@pytest.mark.parametrize("design", ["ofat", "grid", "random"])
@pytest.mark.parametrize("reverse", [False, True])
def test_a_coupled_level_setting_another_factors_field_is_refused(design: str, reverse: bool) -> None:
    factors = {"lr": [1e-3, 2e-3], "optimizer": OPTIMIZER}
    if reverse:
        factors = dict(reversed(factors.items()))
    study = Study(name="s", factors=factors, design=design, n_trials=4 if design == "random" else None)
    with pytest.raises(StudyError, match=r"factors '(lr|optimizer)' and '(lr|optimizer)' both set field 'lr'"):
        study.validate()


def test_two_factors_coupling_the_same_field_are_refused() -> None:
    study = Study(name="s", factors=dict(
        optimizer=[dict(optimizer="sgd", batch_size=32), "adamw"], lr=[dict(lr=0.1, batch_size=64), 0.01],
    ))  # fmt: skip
    with pytest.raises(StudyError, match="factors 'optimizer' and 'lr' both set field 'batch_size'"):
        study.validate()


def test_a_factor_or_a_coupled_level_overriding_base_is_fine_and_trains_what_is_recorded() -> None:
    study = Study(
        name="s", base=dict(lr=0.5, batch_size=16),
        factors=dict(optimizer=OPTIMIZER, epochs=[dict(epochs=1, batch_size=8), 2]), design="ofat",
    )  # fmt: skip
    specs = study.validate()
    by_optimizer = {s.params["optimizer"]: s.config for s in specs if s.params["epochs"] == 1}
    assert by_optimizer["adamw"].lr == 0.5 and by_optimizer["sgd"].lr == 0.1
    assert {s.params["epochs"]: s.config.batch_size for s in specs if s.params["optimizer"] == "adamw"} == {1: 8, 2: 16}
