"""The warm_start fields without training: their form, identity, listing and what they refuse."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ablate.cli import app
from ablate.errors import StudyError
from ablate.study import Study, TrialConfig, make_config, parse_warm_start
from ablate.study._config import _HASHED_WHEN_SET

BASE = dict(dataset="digits", image_size=8, model="cnn", cnn_blocks=1, cnn_filters=4, device="cpu")


def test_the_form_is_study_colon_number() -> None:
    assert parse_warm_start("digits_quick:3") == ("digits_quick", 3)
    assert parse_warm_start(" stage_1:12 ") == ("stage_1", 12)
    for bad in ("digits_quick", "digits_quick:", ":3", "Digits:3", "a:-1", "a:1:2", "a#3"):
        with pytest.raises(StudyError, match="expected 'STUDY:NUMBER'"):
            make_config(dict(BASE, warm_start=bad), where="x.py")


def test_trials_without_a_warm_start_keep_their_identity_and_one_with_it_has_another() -> None:
    assert {"warm_start", "warm_start_from"} <= set(_HASHED_WHEN_SET)
    plain = TrialConfig(**BASE)  # type: ignore[arg-type]
    warm = make_config(dict(BASE, warm_start="a:0"), where="x")
    last = make_config(dict(BASE, warm_start="a:0", warm_start_from="last"), where="x")
    assert len({plain.config_hash, warm.config_hash, last.config_hash}) == 3
    assert make_config(dict(BASE, warm_start=None, warm_start_from="best"), where="x").config_hash == plain.config_hash


def test_what_a_warm_start_refuses_and_allows() -> None:
    with pytest.raises(StudyError, match=r"'warm_start' .* and 'pretrained' are both set"):
        make_config(dict(BASE, warm_start="a:0", pretrained=True), where="x")
    # freezing trained layers is what a warm start is for; without one it is still refused
    make_config(dict(BASE, warm_start="a:0", freeze="head_only"), where="x")
    with pytest.raises(StudyError, match="'pretrained' is false"):
        make_config(dict(BASE, freeze="head_only"), where="x")
    study = Study(name="s", base=dict(BASE, warm_start_from="last"), factors=dict(lr=[0.1]))
    with pytest.raises(StudyError, match="'warm_start_from' is set but no trial uses it"):
        study.validate()


def test_a_train_function_study_refuses_warm_start() -> None:
    from ablate.run import plan_warm_starts
    from ablate.run._prepare import plan_trials

    study = Study(name="s", base=dict(warm_start="a:0"), factors=dict(lr=[0.1]), train=lambda c, r: {"val_acc": 1})
    with pytest.raises(StudyError, match="built-in trainer's; a train= function loads its own"):
        plan_warm_starts([plan_trials(study)], db=None, runs_dir=None, smoke=False)  # type: ignore[arg-type]


def test_ablate_fields_lists_both() -> None:
    result = CliRunner().invoke(app, ["fields"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    rows = [line for line in result.output.splitlines() if line.count("│") > 2 and "warm_start" in line.split("│")[1]]
    assert [r.split("│")[1].strip() for r in rows] == ["warm_start", "warm_start_from"]
    assert "'best'" in rows[1] and "STUDY:NUMBER" in rows[0]
