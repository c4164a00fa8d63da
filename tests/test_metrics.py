"""The metric table: every metric is coherent, and every package's list of metrics is a query of it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BigInteger, Double, Integer, String, inspect
from typer.testing import CliRunner

from ablate.errors import StudyError
from ablate.metrics import METRICS, Metric, add_metric, default_direction, metric_names
from ablate.store import ResultStore
from ablate.store._models import Epoch, Trial
from ablate.study import Study

ALL = METRICS.names()
SQL_TYPES = {"float": Double, "int": Integer, "bigint": BigInteger, "text": String}


@pytest.mark.parametrize("name", ALL)
def test_each_metric_says_what_it_is(name: str) -> None:
    m = METRICS.get(name, where="test")
    assert m.name == name and m.label and m.label == m.label.strip() and "_" not in m.label
    assert m.low <= m.high and (m.per_epoch or m.per_trial)
    if name.endswith("loss"):
        assert (m.direction, m.unit, m.low, m.high) == ("minimize", "nats", 0.0, math.inf)
    if name.endswith(("_acc", "_top5")):
        assert (m.direction, m.unit, m.low, m.high) == ("maximize", "fraction", 0.0, 1.0)
    if m.unit == "s":
        assert m.direction == "minimize" and m.low == 0.0
    if m.is_int or m.dtype == "text":
        assert m.direction is None and m.unit == "", "a count or a label is not better one way"
    if m.is_int:
        assert m.low >= 0 and m.high == math.inf
    assert default_direction(name) == (m.direction or "maximize")


@pytest.mark.parametrize("name", ALL)
def test_each_metric_is_used_only_where_it_can_be(name: str) -> None:
    m = METRICS.get(name, where="test")
    if m.objective or m.rankable or m.table:
        assert m.per_trial and m.direction is not None and m.dtype == "float"
    if m.objective:
        stand_in = METRICS.get(m.epoch_metric, where="test")
        assert stand_in.per_epoch and stand_in.direction == m.direction, "training compares epochs on it"
        assert m.rankable, "the report ranks by what a study optimised"
    if m.epoch_stand_in is not None:
        assert m.objective and not m.per_epoch
    if m.plateau:
        assert m.per_epoch and m.objective
    if m.curve:
        assert m.per_epoch and m.unit in ("fraction", "nats")
    if m.in_view:
        assert m.column and m.per_trial


@pytest.mark.parametrize("name", ALL)
def test_the_database_columns_are_the_tables(name: str) -> None:
    """The models hold a column, typed as the table says, exactly for each stored metric (the
    models are checked against the migrations in tests/store/test_migrations.py)."""
    m = METRICS.get(name, where="test")
    for model, level in ((Trial, m.per_trial), (Epoch, m.per_epoch)):
        columns = model.__table__.columns
        if m.column and level:
            assert type(columns[name].type) is SQL_TYPES[m.dtype], (model.__tablename__, name)
            assert columns[name].nullable
        else:
            assert name not in columns, (model.__tablename__, name)


def test_the_lists_keep_their_order_and_members() -> None:
    from ablate.store._columns import EPOCH_METRICS, INT_METRICS, TRIAL_METRICS

    assert TRIAL_METRICS == (
        "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "best_val_acc", "best_epoch",
        "test_acc", "test_loss", "epochs_run", "duration_s", "images_per_s", "peak_mem_mb",
        "n_params", "n_trainable_params", "n_train", "n_val", "n_test", "stop_reason",
    )  # fmt: skip
    assert EPOCH_METRICS == (
        "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr", "seconds", "images_per_s",
        "peak_mem_mb",
    )  # fmt: skip
    assert INT_METRICS == ("best_epoch", "epochs_run", "n_params", "n_trainable_params", "n_train", "n_val", "n_test")
    # column=True: the built-in ones (a study's own metrics, which tests in this process may have
    # declared, live in the JSON columns).
    assert metric_names(objective=True, column=True) == ("train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "test_acc")
    assert metric_names(plateau=True) == ("train_loss", "train_acc", "val_loss", "val_acc")
    assert metric_names(table=True) == ("train_acc", "val_acc", "best_val_acc", "test_acc", "duration_s")
    with pytest.raises(TypeError, match="metric_names\\(\\) got colour"):
        metric_names(colour=True)


def test_a_study_may_optimise_only_an_objective_and_its_direction_comes_from_the_table() -> None:
    for name in metric_names(objective=True):
        study = Study(name="s", factors=dict(image_size=[8]), metric=name)
        assert study.direction == METRICS.get(name, where="test").direction
    with pytest.raises(StudyError, match=r"metric 'best_val_acc'.* train_loss, train_acc, val_loss, val_acc, val_top5, test_acc"):
        Study(name="s", factors=dict(image_size=[8]), metric="best_val_acc").validate()


def test_an_added_metric_is_an_entry_and_a_name_is_added_once() -> None:
    with pytest.raises(ValueError, match="metric 'val_acc' is registered twice"):
        add_metric(Metric("val_acc", "val acc"))
    with pytest.raises(ValueError, match="objective without a direction"):
        Metric("auc", "AUC", objective=True)
    with pytest.raises(ValueError, match="dtype 'double'"):
        Metric("auc", "AUC", dtype="double")
    with pytest.raises(StudyError, match="is not a known metric; did you mean 'val_acc'"):
        METRICS.get("val_accc", where="test")
    builtin = [n for n in METRICS.names("val_*") if METRICS.get(n, where="test").column]
    assert builtin == ["val_loss", "val_acc", "val_top5"]


def test_the_view_has_a_column_for_each_metric_of_the_view(store: ResultStore) -> None:
    study = Study(name="viewed", base=dict(dataset="digits"), factors=dict(image_size=[8, 16]))
    store.register_study(study)
    store.add_trials(study, study.validate())
    view = store.load_study("viewed").view_name
    columns = [c["name"] for c in inspect(store.engine).get_columns(view)]
    assert columns == ["trial_id", "number", "seed", "replicate", "status", "image_size",
                       *metric_names(in_view=True)]  # fmt: skip
    assert set(metric_names(per_trial=True, column=True)) - set(columns) == {
        "n_trainable_params", "n_train", "n_val", "n_test"  # in `trials` only
    }


@pytest.fixture(scope="module")
def every_metric_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A finished grid study whose trials have a value of every metric a report ranks by."""
    url = f"sqlite:///{tmp_path_factory.mktemp('metrics') / 'ablate.db'}"
    study = Study(name="every_metric", base=dict(dataset="synthetic", num_classes=10),
                  factors=dict(lr=[0.1, 0.05]), seeds=[0, 1])  # fmt: skip
    with ResultStore(url) as store:
        store.register_study(study)
        store.add_trials(study, study.validate())
        while (claimed := store.claim_next_trial("every_metric", worker="w", host="h", device="cpu", lease_s=60)):
            x = claimed.params["lr"] + claimed.seed / 100
            metrics: dict[str, Any] = {
                m: x if m.endswith(("acc", "top5")) else 1 - x for m in metric_names(rankable=True)
            }
            store.record_epoch(claimed.trial_id, {"epoch": 1, **{m: metrics[m] for m in metric_names(curve=True)}})
            assert store.finish_trial(claimed.trial_id, "w", status="completed", metrics={**metrics, "duration_s": 3.0})
    return url


@pytest.mark.slow
@pytest.mark.parametrize("name", metric_names(rankable=True))
def test_report_ranks_by_every_rankable_metric(every_metric_db: str, tmp_path: Path, name: str) -> None:
    from ablate.cli import app

    result = CliRunner().invoke(app, ["report", "every_metric", "--db", every_metric_db, "--metric", name,
                                      "--out", str(tmp_path)], env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    direction = METRICS.get(name, where="test").direction
    assert f"every_metric: {name} ({direction})" in result.output
    label = METRICS.get(name, where="test").label
    assert f"Ablation of {label}: mean" in (tmp_path / "table.tex").read_text()
    # lr=0.1 has the higher accuracies and the lower losses: its cell is the best (bold) one.
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in (tmp_path / "table.md").read_text().splitlines()
            if line.startswith("| ")]  # fmt: skip
    at = rows[0].index(label)
    assert {row[0]: row[at].startswith("**") for row in rows[2:]} == {"0.1": True, "0.05": False}
