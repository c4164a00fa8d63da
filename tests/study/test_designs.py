"""Expansion of each design: counts, OFAT rows, constraints, seed order, coupled levels; and the
contract every registered design keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from optuna.samplers import BaseSampler
from typer.testing import CliRunner

from ablate import Study, StudyError, choice, intrange, loguniform, uniform
from ablate.cli import app
from ablate.study import DESIGNS, Design, iter_level_counts


def test_grid_is_the_full_factorial_seed_major() -> None:
    study = Study(
        name="g",
        factors=dict(image_size=[8, 16, 32], augment=["none", "basic"], lr=[0.1, 0.01]),
        seeds=[0, 1],
    )
    specs = study.validate()
    assert len(specs) == 3 * 2 * 2 * 2
    assert [s.number for s in specs] == list(range(24))
    # every configuration's first seed comes before any second seed
    assert [s.seed for s in specs] == [0] * 12 + [1] * 12
    assert len({s.config_hash for s in specs}) == 12
    assert {(s.params["image_size"], s.params["augment"], s.params["lr"]) for s in specs[:12]} == {
        (i, a, lr) for i in (8, 16, 32) for a in ("none", "basic") for lr in (0.1, 0.01)
    }
    counts = iter_level_counts(specs)
    assert counts["image_size"] == {8: 8, 16: 8, 32: 8}


def test_replicates_share_a_config_hash_and_differ_only_by_seed() -> None:
    specs = Study(name="g", factors=dict(image_size=[8]), seeds=[3, 7]).validate()
    assert specs[0].config_hash == specs[1].config_hash
    assert (specs[0].config.seed, specs[1].config.seed) == (3, 7)


def test_config_merges_base_levels_and_seed() -> None:
    (spec,) = Study(name="g", base=dict(lr=0.3, epochs=4), factors=dict(image_size=[16])).validate()
    assert spec.config.lr == 0.3 and spec.config.epochs == 4 and spec.config.image_size == 16


def test_ofat_is_baseline_then_one_change_at_a_time() -> None:
    study = Study(
        name="o",
        factors=dict(image_size=[64, 128], augment=["none", "basic"]),
        baseline=dict(image_size=128, augment="none"),
        design="ofat",
    )
    rows = [(s.params["image_size"], s.params["augment"]) for s in study.validate()]
    # the EfficientNet table of SEEDS.md: baseline, then 64 px, then augmentation
    assert rows == [(128, "none"), (64, "none"), (128, "basic")]


def test_ofat_baseline_defaults_to_first_levels_and_counts() -> None:
    study = Study(
        name="o", factors=dict(lr=[0.1, 0.05, 0.01], epochs=[5, 10]), design="ofat", seeds=[0, 1]
    )
    specs = study.validate()
    assert len(specs) == (1 + 2 + 1) * 2
    assert specs[0].params == {"lr": 0.1, "epochs": 5}


def test_constraints_drop_combinations() -> None:
    study = Study(
        name="c",
        base=dict(model="resnet18"),
        factors=dict(pretrained=[False, True], freeze=["none", "head_only", "layer3"]),
        constraints=[lambda c: c.pretrained or c.freeze == "none"],
    )
    combos = [(s.params["pretrained"], s.params["freeze"]) for s in study.validate()]
    assert combos == [(False, "none"), (True, "none"), (True, "head_only"), (True, "layer3")]


def test_constraint_dropping_everything_is_an_error() -> None:
    study = Study(name="c", factors=dict(image_size=[8]), constraints=[lambda c: False])
    with pytest.raises(StudyError, match="drop every trial"):
        study.validate()


def test_coupled_levels_set_several_fields_and_stand_for_their_key() -> None:
    study = Study(
        name="c",
        factors=dict(model=[dict(model="resnet18", batch_size=128), dict(model="resnet50", batch_size=64)]),
    )
    specs = study.validate()
    assert [s.params["model"] for s in specs] == ["resnet18", "resnet50"]
    assert [s.config.batch_size for s in specs] == [128, 64]


def test_adaptive_designs_validate_the_space_and_plan_nothing_up_front() -> None:
    study = Study(
        name="t",
        factors=dict(lr=loguniform(1e-4, 1e-1), cnn_filters=choice(32, 64), epochs=intrange(2, 5),
                     momentum=uniform(0.8, 0.99)),
        design="tpe",
        n_trials=10,
    )
    assert study.validate() == []
    spaces = study.spaces
    dist = spaces["lr"].optuna_distribution("lr")
    assert dist.log and dist.low == 1e-4
    assert spaces["cnn_filters"].optuna_distribution("cnn_filters").choices == (32, 64)


def test_custom_train_function_accepts_extra_fields() -> None:
    def my_train(config, reporter):  # pragma: no cover - not called here
        return {"val_acc": 0.0}

    study = Study(name="u", base=dict(width=64), factors=dict(depth=[1, 2]), train=my_train)
    specs = study.validate()
    assert [s.config.extra for s in specs] == [{"width": 64, "depth": 1}, {"width": 64, "depth": 2}]
    assert specs[0].config_hash != specs[1].config_hash


def test_definition_and_base_hash_detect_edits_of_base_only() -> None:
    a = Study(name="d", base=dict(lr=0.1), factors=dict(image_size=[8]))
    b = Study(name="d", base=dict(lr=0.1), factors=dict(image_size=[8, 16]))
    c = Study(name="d", base=dict(lr=0.2), factors=dict(image_size=[8]))
    assert a.base_hash() == b.base_hash() != c.base_hash()
    assert a.definition()["factors"]["image_size"] == {"levels": [8]}
    assert b.definition()["factors"]["image_size"] == {"levels": [8, 16]}


def test_study_rebuilds_from_its_stored_definition() -> None:
    import json

    from ablate.study import study_from_definition

    study = Study(
        name="r", base=dict(epochs=3), factors=dict(lr=loguniform(1e-3, 1e-1), cnn_filters=[16, 32],
                                                   epochs=intrange(2, 4)),
        design="random", n_trials=4, seeds=[0, 1], pruner="median",
    )
    rebuilt = study_from_definition(json.loads(json.dumps(study.definition())))
    assert rebuilt.definition() == study.definition()
    assert rebuilt.spaces == study.spaces


# ----------------------------------------------------------------- contract of every registered design
def _tiny(design: str, **kw: object) -> Study:
    return Study(
        name="tiny", factors=dict(lr=[0.1, 0.01], image_size=[8, 16]), seeds=[0, 1], design=design,
        n_trials=3, **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("name", DESIGNS.names())
def test_every_design_plans_what_it_counts(name: str) -> None:
    study = _tiny(name)
    design = study.strategy
    assert isinstance(design, Design) and type(design) is DESIGNS.get(name, where="test")
    specs = study.validate()
    assert design.plan(study) == specs
    planned = design.planned_trials(study, specs)
    assert planned == design.planned_trials(study) > 0
    if design.adaptive:
        assert specs == [] and planned == 3 * 2
        assert isinstance(design.sampler(study, 7), BaseSampler)
        with pytest.raises(StudyError, match="has no fixed plan"):
            study.level_combinations()
    else:
        assert planned == len(specs) == len(study.level_combinations()) * 2
        assert [s.number for s in specs] == list(range(planned))
        with pytest.raises(StudyError, match="proposes none"):
            design.sampler(study, 7)


@pytest.mark.parametrize("name", DESIGNS.names())
def test_every_design_is_counted_alike_by_ablate_plan(name: str, tmp_path: Path) -> None:
    path = tmp_path / "tiny.py"
    path.write_text(
        "from ablate import Study\n"
        f"study = Study(name='tiny', factors=dict(lr=[0.1, 0.01], image_size=[8, 16]), seeds=[0, 1], "
        f"design={name!r}, n_trials=3)\n"
    )
    result = CliRunner().invoke(app, ["plan", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["n_trials"] == _tiny(name).strategy.planned_trials(_tiny(name))


@pytest.mark.parametrize("name", DESIGNS.names())
def test_a_design_that_selects_on_the_metric_refuses_a_test_metric(name: str) -> None:
    study = _tiny(name, metric="test_acc", base=dict(test_split=0.2))
    if study.strategy.selects_on_metric:
        with pytest.raises(StudyError, match="would select them on test images"):
            study.validate()
    else:
        study.validate()


def test_an_unknown_design_names_the_close_matches() -> None:
    with pytest.raises(StudyError, match=r"design 'tpee', which is not a known design; did you mean 'tpe'\?") as e:
        _tiny("tpee").validate()
    assert "allowed: grid, ofat, random, tpe" in str(e.value)
