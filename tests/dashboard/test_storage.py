"""AblateStorage on real SQLite and PostgreSQL databases filled through the store, as workers do:
every status, every kind of factor value, the refused writes, the contract's KeyErrors."""

from __future__ import annotations

from collections.abc import Iterator

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from ablate import Study, StudyError
from ablate.dashboard import AblateStorage, ReadOnlyStorageError, optuna_study
from ablate.dashboard._storage import _distributions
from ablate.store import ResultStore, load_epochs, load_trials

# 2 x 2 x 2 levels of an int, a float and a bool factor, one seed: 8 trials.
STUDY = Study(
    name="kinds",
    base=dict(dataset="digits", epochs=3, augment="basic"),
    factors=dict(image_size=[8, 16], lr=[0.05, 0.1], hflip=[False, True]),
    seeds=[3],
)
ERROR = "RuntimeError: CUDA out of memory\nTraceback: ..."


@pytest.fixture
def filled(db_url: str) -> Iterator[str]:
    """``kinds`` with one trial of each outcome: completed (3 epochs), failed, pruned, completed
    without its metric, running (1 epoch so far); the other three queued."""
    with ResultStore(db_url) as store:
        store.register_study(STUDY)
        store.add_trials(STUDY, STUDY.validate())
        outcomes = [
            ("completed", {"val_acc": 0.9, "val_loss": 0.3, "n_params": 1234, "steps": 7}, None),
            ("failed", {}, ERROR),
            ("pruned", {"val_acc": 0.2}, None),
            ("completed", {"val_loss": 0.5}, None),  # no val_acc: no objective value
        ]
        for status, metrics, error in outcomes:
            claimed = store.claim_next_trial("kinds", worker="w1", host="h", device="cpu", lease_s=600)
            assert claimed is not None
            for epoch in (1, 2, 3) if status == "completed" else (1,):
                store.record_epoch(claimed.trial_id, {"epoch": epoch, "val_acc": 0.3 * epoch, "val_loss": 1 / epoch})
            assert store.finish_trial(claimed.trial_id, "w1", status=status, metrics=metrics, error=error)
        running = store.claim_next_trial("kinds", worker="w2", lease_s=600)
        assert running is not None
        store.record_epoch(running.trial_id, {"epoch": 1, "val_acc": 0.25})
    yield db_url


def test_trials_as_optuna_sees_them(filled: str) -> None:
    storage = AblateStorage(filled)
    [study] = storage.get_all_studies()
    assert study.study_name == "kinds" and study.directions == [optuna.study.StudyDirection.MAXIMIZE]
    assert study.system_attrs["study:metric_names"] == ["val_acc"]
    assert study.user_attrs["design"] == "grid" and study.user_attrs["seeds"] == [3]
    trials = storage.get_all_trials(study._study_id)
    frame = load_trials("kinds", db=filled)
    assert [t.number for t in trials] == frame["number"].tolist() == list(range(8))
    assert [t._trial_id for t in trials] == frame["trial_id"].tolist()
    states = [t.state for t in trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED, TrialState.FAIL,
                      TrialState.RUNNING, TrialState.WAITING, TrialState.WAITING, TrialState.WAITING]  # fmt: skip
    done, failed, pruned, no_metric, running, queued = trials[:6]
    assert done.value == 0.9 and pruned.value == 0.2
    assert failed.value is None and no_metric.value is None and running.value is None
    assert no_metric.user_attrs["status"] == "completed"  # shown as FAIL, the status kept
    assert done.intermediate_values == {1: 0.3, 2: pytest.approx(0.6), 3: pytest.approx(0.9)}
    assert running.intermediate_values == {1: 0.25} and queued.intermediate_values == {}
    # Factor values in their real types, categorical over the declared levels.
    for trial, (_, row) in zip(trials, frame.iterrows(), strict=True):
        assert trial.params == {"image_size": row["image_size"], "lr": row["lr"], "hflip": row["hflip"]}
        assert type(trial.params["image_size"]) is int and type(trial.params["hflip"]) is bool
        assert type(trial.params["lr"]) is float
        assert trial.distributions == {
            "image_size": CategoricalDistribution([8, 16]),
            "lr": CategoricalDistribution([0.05, 0.1]),
            "hflip": CategoricalDistribution([False, True]),
        }
        trial._validate()  # what optuna.trial.create_trial checks
        assert trial.user_attrs["seed"] == 3 and trial.user_attrs["replicate"] == 0
        assert trial.user_attrs["config_hash"] == row["config_hash"]
    assert done.user_attrs["worker"] == "w1" and running.user_attrs["worker"] == "w2"
    assert "worker" not in queued.user_attrs
    assert done.user_attrs["n_params"] == 1234 and done.user_attrs["steps"] == 7
    assert done.user_attrs["val_loss"] == 0.3 and "error" not in done.user_attrs
    assert failed.user_attrs["error"] == ERROR
    # Times: started and finished for finished trials, started only while running.
    assert done.datetime_start is not None and done.datetime_complete is not None
    assert done.datetime_start <= done.datetime_complete
    assert running.datetime_start is not None and running.datetime_complete is None
    assert queued.datetime_start is None and queued.datetime_complete is None
    assert storage.get_best_trial(study._study_id) == done  # its curve too


def test_times_are_local_and_naive_as_optunas_own(filled: str) -> None:
    storage = AblateStorage(filled)
    [trial] = storage.get_all_trials(storage.get_study_id_from_name("kinds"), states=[TrialState.COMPLETE])
    started = load_trials("kinds", db=filled)["started_at"][0].to_pydatetime()
    assert trial.datetime_start is not None and trial.datetime_start.tzinfo is None
    assert trial.datetime_start == started.astimezone().replace(tzinfo=None)


def test_every_read_sees_what_workers_wrote_since(filled: str) -> None:
    storage = AblateStorage(filled)
    study_id = storage.get_study_id_from_name("kinds")
    running = storage.get_all_trials(study_id, states=[TrialState.RUNNING])[0]
    with ResultStore(filled) as store:
        store.record_epoch(running._trial_id, {"epoch": 2, "val_acc": 0.5})
        assert store.finish_trial(running._trial_id, "w2", status="completed", metrics={"val_acc": 0.5})
    again = storage.get_trial(running._trial_id)
    assert again.state == TrialState.COMPLETE and again.value == 0.5
    assert again.intermediate_values == {1: 0.25, 2: 0.5}
    assert running.state == TrialState.RUNNING  # what was handed out before is not changed
    assert storage.get_n_trials(study_id, state=TrialState.COMPLETE) == 2


def test_optuna_study_reads_like_load_trials(filled: str) -> None:
    study = optuna_study("kinds", db=filled)
    assert study.study_name == "kinds" and study.metric_names == ["val_acc"]
    assert study.best_trial.number == 0 and study.best_value == 0.9
    frame = study.trials_dataframe()
    trials = load_trials("kinds", db=filled)
    assert frame["number"].tolist() == trials["number"].tolist()
    assert frame["params_image_size"].tolist() == trials["image_size"].tolist()
    assert frame["user_attrs_seed"].tolist() == trials["seed"].tolist()
    epochs = load_epochs("kinds", db=filled)
    curves = {t.number: t.intermediate_values for t in study.trials}
    for _, row in epochs.iterrows():
        assert curves[row["number"]][row["epoch"]] == row["val_acc"]
    assert sum(len(c) for c in curves.values()) == len(epochs)


def test_writes_are_refused_and_nothing_changes(filled: str) -> None:
    storage = AblateStorage(filled)
    study_id = storage.get_study_id_from_name("kinds")
    trial_id = storage.get_all_trials(study_id)[5]._trial_id
    writes = [
        lambda: storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "other"),
        lambda: storage.delete_study(study_id),
        lambda: storage.set_study_user_attr(study_id, "k", 1),
        lambda: storage.set_study_system_attr(study_id, "k", 1),
        lambda: storage.create_new_trial(study_id),
        lambda: storage.set_trial_param(trial_id, "lr", 0, CategoricalDistribution([0.05, 0.1])),
        lambda: storage.set_trial_state_values(trial_id, TrialState.RUNNING),
        lambda: storage.set_trial_intermediate_value(trial_id, 1, 0.5),
        lambda: storage.set_trial_user_attr(trial_id, "k", 1),
        lambda: storage.set_trial_system_attr(trial_id, "k", 1),
        lambda: optuna.create_study(storage=storage, study_name="other"),
        lambda: optuna.load_study(study_name="kinds", storage=storage).ask(),
    ]
    for write in writes:
        with pytest.raises(ReadOnlyStorageError, match="read-only through Optuna"):
            write()
    assert load_trials("kinds", db=filled)["status"].tolist().count("queued") == 3


def test_dashboard_notes_are_kept_in_memory_only(filled: str) -> None:
    storage = AblateStorage(filled)
    study_id = storage.get_study_id_from_name("kinds")
    storage.set_study_system_attr(study_id, "dashboard:note_ver", 1)
    storage.set_study_system_attr(study_id, "dashboard:note_str:0", "lr 0.1 diverges")
    assert storage.get_study_system_attrs(study_id)["dashboard:note_str:0"] == "lr 0.1 diverges"
    assert "dashboard:note_str:0" not in AblateStorage(filled).get_study_system_attrs(study_id)
    with pytest.raises(KeyError):
        storage.set_study_system_attr(study_id + 100, "dashboard:note_ver", 1)


def test_unknown_ids_and_names_are_key_errors_as_the_contract_says(filled: str) -> None:
    storage = AblateStorage(filled)
    study_id = storage.get_study_id_from_name("kinds")
    for read in (
        lambda: storage.get_study_id_from_name("nosuch"),
        lambda: storage.get_study_directions(study_id + 100),
        lambda: storage.get_all_trials(study_id + 100),
        lambda: storage.get_trial(10**9),
        lambda: storage.get_trial_id_from_study_id_trial_number(study_id, 99),
    ):
        with pytest.raises(KeyError):
            read()
    assert storage.get_trial_id_from_study_id_trial_number(study_id, 2) == storage.get_all_trials(study_id)[2]._trial_id
    with pytest.raises(StudyError, match=r"no study named 'nosuch' .*\(studies: kinds\)"):
        optuna_study("nosuch", db=filled)


def test_a_new_version_gets_a_new_id_and_the_old_one_is_gone(filled: str) -> None:
    storage = AblateStorage(filled)
    old = storage.get_study_id_from_name("kinds")
    with ResultStore(filled) as store:
        store.register_study(STUDY, new_version=True)
    new = storage.get_study_id_from_name("kinds")
    assert new != old and storage.get_all_trials(new) == []
    with pytest.raises(ValueError, match="No trials are completed"):
        storage.get_best_trial(new)
    with pytest.raises(KeyError, match="older version"):
        storage.get_all_trials(old)
    assert [s._study_id for s in storage.get_all_studies()] == [new]


def test_studies_limits_what_is_listed(filled: str) -> None:
    other = Study(name="other", base=dict(dataset="digits"), factors=dict(image_size=[8]), seeds=[0])
    with ResultStore(filled) as store:
        store.register_study(other)
    assert [s.study_name for s in AblateStorage(filled).get_all_studies()] == ["kinds", "other"]
    only = AblateStorage(filled, studies=["other"])
    assert [s.study_name for s in only.get_all_studies()] == ["other"]
    with pytest.raises(KeyError):
        only.get_study_id_from_name("kinds")


def test_distributions_widen_to_the_values_trials_hold() -> None:
    # A study whose bounds or levels changed under one version still reads: values outside the
    # declaration widen it; an int off the step grid or a float <= 0 under log falls back to
    # categorical over what was seen.
    declared = {
        "lr": FloatDistribution(0.01, 0.1, log=True),
        "width": IntDistribution(2, 8, step=2),
        "act": CategoricalDistribution(["relu", "gelu"]),
        "gone": CategoricalDistribution(["x"]),
        "new": None,
    }
    params = [
        {"lr": 0.2, "width": 10, "act": "silu", "gone": None, "new": 3},
        {"lr": 0.05, "width": 4, "act": "relu", "gone": None, "new": None},
    ]
    got = _distributions(declared, params)
    assert got["lr"] == FloatDistribution(0.01, 0.2, log=True)
    assert got["width"] == IntDistribution(2, 10, step=2)
    assert got["act"] == CategoricalDistribution(["relu", "gelu", "silu"])
    assert got["gone"] == CategoricalDistribution(["x"]) and got["new"] == CategoricalDistribution([3])
    off_grid = _distributions({"width": IntDistribution(2, 8, step=2)}, [{"width": 3}])
    assert off_grid["width"] == CategoricalDistribution([3])
    log_zero = _distributions({"lr": FloatDistribution(0.01, 0.1, log=True)}, [{"lr": 0.0}])
    assert log_zero["lr"] == CategoricalDistribution([0.0])
    assert _distributions({"unused": None}, [{"unused": None}]) == {}
