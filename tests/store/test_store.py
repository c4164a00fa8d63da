"""The store's API against real SQLite and PostgreSQL: studies, trials, claims, results, reads."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from ablate import StoreError, Study, StudyError
from ablate.store import (
    EnvironmentRecord,
    ResultStore,
    TrialRecord,
    load_epochs,
    load_study,
    load_trials,
)
from ablate.study import TrialSpec


def grid(**overrides: object) -> Study:
    kwargs: dict[str, object] = dict(
        name="digits_quick",
        base=dict(dataset="digits", epochs=2),
        factors=dict(image_size=[8, 16], augment=["none", "basic"]),
        seeds=[0, 1],
    )
    kwargs.update(overrides)
    return Study(**kwargs)  # type: ignore[arg-type]


def register(store: ResultStore, study: Study) -> list[TrialSpec]:
    specs = study.validate()
    store.register_study(study)
    store.add_trials(study, specs)
    return specs


def run_all(store: ResultStore, name: str, worker: str = "w") -> list[int]:
    """Claim and complete every trial; val_acc depends on the factors so queries can check it."""
    numbers = []
    while (
        claimed := store.claim_next_trial(name, worker=worker, host="h", device="cpu", lease_s=60)
    ) is not None:
        p = claimed.params
        acc = (
            p["image_size"] / 100 + (0.05 if p["augment"] == "basic" else 0.0) + claimed.seed / 1000
        )
        for epoch in (1, 2):
            store.record_epoch(
                claimed.trial_id, {"epoch": epoch, "val_acc": acc * epoch / 2, "lr": 0.1 / epoch}
            )
        assert store.finish_trial(
            claimed.trial_id,
            worker,
            status="completed",
            metrics={"val_acc": acc, "best_epoch": 2, "epochs_run": 2},
        )
        numbers.append(claimed.number)
    return numbers


def test_register_and_plan_are_idempotent(store: ResultStore) -> None:
    study = grid()
    specs = study.validate()
    info = store.register_study(study)
    assert (info.name, info.version, info.design, info.metric, info.direction) == (
        "digits_quick", 1, "grid", "val_acc", "maximize",
    )  # fmt: skip
    assert info.factors == ["image_size", "augment"]
    assert info.factor_kinds == {"image_size": "int", "augment": "text"}
    assert info.seeds == [0, 1]
    assert info.view_name == "study_digits_quick"
    assert info.created_at.tzinfo is not None
    assert store.add_trials(study, specs) == 8
    assert store.add_trials(study, specs) == 0
    again = store.register_study(study)
    assert again.study_id == info.study_id and again.version == 1
    frame = store.load_trials("digits_quick")
    assert list(frame["number"]) == list(range(8))
    assert list(frame["replicate"]) == [0] * 4 + [1] * 4
    assert set(frame["status"]) == {"queued"}
    assert frame["config_hash"].tolist() == [s.config_hash for s in specs]


def test_new_trials_continue_numbering_and_existing_keep_status(store: ResultStore) -> None:
    study = grid()
    register(store, study)
    claimed = store.claim_next_trial("digits_quick", worker="w", lease_s=60)
    assert claimed is not None and claimed.number == 0
    assert store.finish_trial(claimed.trial_id, "w", status="completed", metrics={"val_acc": 0.5})
    bigger = grid(factors=dict(image_size=[8, 16, 32], augment=["none", "basic"]), seeds=[0, 1, 2])
    store.register_study(bigger)
    assert store.add_trials(bigger, bigger.validate()) == 18 - 8
    frame = store.load_trials("digits_quick")
    assert len(frame) == 18
    assert frame["number"].tolist() == list(range(18))
    first = frame[frame["number"] == 0].iloc[0]
    assert first["status"] == "completed" and first["val_acc"] == 0.5
    # the new seed 2 trials are replicate 2, and 32 px trials of seeds 0/1 are replicates 0/1
    assert sorted(frame[frame["seed"] == 2]["replicate"].unique()) == [2]
    assert frame[(frame["image_size"] == 32) & (frame["seed"] == 0)]["replicate"].tolist() == [0, 0]


def test_changing_base_needs_a_new_version(store: ResultStore) -> None:
    register(store, grid())
    changed = grid(base=dict(dataset="digits", epochs=5))
    with pytest.raises(StudyError, match=r"different base configuration.*--new-version"):
        store.register_study(changed)
    info = store.register_study(changed, new_version=True)
    assert info.version == 2
    assert store.add_trials(changed, changed.validate()) == 8
    assert load_study("digits_quick", store).version == 2
    # the current version is what reads and the view see
    frame = store.load_trials("digits_quick")
    assert len(frame) == 8 and {c["epochs"] for c in frame["config"]} == {5}
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM study_digits_quick")).scalar() == 8
        assert (
            conn.execute(text("SELECT count(*) FROM studies WHERE name = 'digits_quick'")).scalar()
            == 2
        )


def test_unknown_study_names_the_ones_that_exist(store: ResultStore) -> None:
    register(store, grid())
    with pytest.raises(StudyError, match=r"no study named 'nope'.*digits_quick"):
        store.load_trials("nope")


def test_claim_order_is_replicate_major(store: ResultStore) -> None:
    register(store, grid(seeds=[3, 7]))
    order = []
    while (c := store.claim_next_trial("digits_quick", worker="w", lease_s=60)) is not None:
        order.append((c.replicate, c.seed, c.number))
        assert c.attempt == 1
    assert order == sorted(order)
    assert [seed for _, seed, _ in order] == [3] * 4 + [7] * 4


def test_claimed_trial_rebuilds_the_config(store: ResultStore) -> None:
    specs = register(store, grid())
    claimed = store.claim_next_trial(
        "digits_quick", worker="w1", host="box", device="cuda:0", lease_s=30
    )
    assert claimed is not None
    assert claimed.config == specs[0].config
    assert claimed.config_hash == specs[0].config_hash
    assert claimed.params == {"image_size": 8, "augment": "none"}
    assert type(claimed.params["image_size"]) is int
    assert claimed.study_name == "digits_quick" and claimed.lease_s == 30
    frame = store.load_trials("digits_quick")
    row = frame[frame["trial_id"] == claimed.trial_id].iloc[0]
    assert (row["status"], row["worker"], row["host"], row["device"], row["attempt"]) == (
        "running", "w1", "box", "cuda:0", 1,
    )  # fmt: skip
    assert row["started_at"] <= pd.Timestamp(datetime.now(UTC))


def test_results_only_from_the_owner(store: ResultStore) -> None:
    register(store, grid())
    claimed = store.claim_next_trial("digits_quick", worker="w1", lease_s=60)
    assert claimed is not None
    assert not store.heartbeat(claimed.trial_id, "intruder", 60)
    assert not store.finish_trial(
        claimed.trial_id, "intruder", status="completed", metrics={"val_acc": 1.0}
    )
    assert store.heartbeat(claimed.trial_id, "w1", 60, epoch=1)
    assert store.finish_trial(
        claimed.trial_id,
        "w1",
        status="failed",
        metrics={"epochs_run": 1},
        error="RuntimeError: CUDA out of memory",
        artifacts={"last_checkpoint": "/ckpt/last.pt"},
        environment=EnvironmentRecord(
            torch="2.14.1", hostname="box", device_name="NVIDIA H100", extra={"cudnn": 90100}
        ),
    )
    # finished: no more heartbeats or second finishes, even from the owner
    assert not store.heartbeat(claimed.trial_id, "w1", 60)
    assert not store.finish_trial(
        claimed.trial_id, "w1", status="completed", metrics={"val_acc": 1.0}
    )
    row = store.load_trials("digits_quick").set_index("trial_id").loc[claimed.trial_id]
    assert row["status"] == "failed" and row["error"].startswith("RuntimeError")
    assert pd.isna(row["val_acc"]) and row["epochs_run"] == 1
    with store.engine.connect() as conn:
        env = conn.execute(
            text("SELECT torch, hostname, extra, device_name FROM environments")
        ).one()
    assert env[0] == "2.14.1" and env[1] == "box" and env[3] == "NVIDIA H100"
    assert "90100" in str(env[2])
    artifacts = store.load_artifacts("digits_quick")
    assert artifacts[["number", "kind", "path"]].values.tolist() == [
        [claimed.number, "last_checkpoint", "/ckpt/last.pt"]
    ]


def test_finish_validates_status(store: ResultStore) -> None:
    register(store, grid())
    claimed = store.claim_next_trial("digits_quick", worker="w", lease_s=60)
    assert claimed is not None
    with pytest.raises(StoreError, match="allowed: completed, failed, pruned"):
        store.finish_trial(claimed.trial_id, "w", status="done", metrics={})


def test_expired_lease_is_reclaimed(store: ResultStore) -> None:
    register(store, grid(factors=dict(image_size=[8]), seeds=[0]))
    first = store.claim_next_trial("digits_quick", worker="dead", lease_s=0.2)
    assert first is not None and first.attempt == 1
    assert store.claim_next_trial("digits_quick", worker="other", lease_s=60) is None
    time.sleep(0.4)
    second = store.claim_next_trial("digits_quick", worker="other", lease_s=60)
    assert second is not None
    assert (second.trial_id, second.attempt) == (first.trial_id, 2)
    assert not store.heartbeat(first.trial_id, "dead", 60)
    assert not store.finish_trial(
        first.trial_id, "dead", status="completed", metrics={"val_acc": 0.1}
    )
    assert store.finish_trial(
        second.trial_id, "other", status="completed", metrics={"val_acc": 0.9}
    )
    assert store.load_trials("digits_quick")["val_acc"].tolist() == [0.9]


def test_heartbeat_keeps_the_lease(store: ResultStore) -> None:
    register(store, grid(factors=dict(image_size=[8]), seeds=[0]))
    claimed = store.claim_next_trial("digits_quick", worker="w", lease_s=0.3)
    assert claimed is not None
    for _ in range(3):
        time.sleep(0.15)
        assert store.heartbeat(claimed.trial_id, "w", 0.3, epoch=2)
    assert store.claim_next_trial("digits_quick", worker="other", lease_s=60) is None


def test_requeue_failed(store: ResultStore) -> None:
    register(store, grid())
    for status in ("failed", "completed", "pruned", "failed"):
        c = store.claim_next_trial("digits_quick", worker="w", lease_s=60)
        assert c is not None
        store.finish_trial(
            c.trial_id,
            "w",
            status=status,
            metrics={"val_acc": 0.3},
            error="boom" if status == "failed" else None,
        )
    assert store.requeue_trials("digits_quick") == 2
    frame = store.load_trials("digits_quick")
    assert (frame["status"] == "queued").sum() == 6
    requeued = frame[frame["number"].isin([0, 3])]
    assert requeued["error"].isna().all() and requeued["val_acc"].isna().all()
    again = store.claim_next_trial("digits_quick", worker="w2", lease_s=60)
    assert again is not None and again.number == 0 and again.attempt == 2
    with pytest.raises(StoreError, match="allowed"):
        store.requeue_trials("digits_quick", statuses=("queued",))


def test_epochs_upsert_typed_and_extra(store: ResultStore) -> None:
    register(store, grid(factors=dict(image_size=[8]), seeds=[0]))
    c = store.claim_next_trial("digits_quick", worker="w", lease_s=60)
    assert c is not None
    store.record_epoch(
        c.trial_id, {"epoch": 1, "train_loss": 2.0, "val_acc": 0.1, "grad_norm": 3.5}
    )
    store.record_epoch(c.trial_id, {"epoch": 2, "train_loss": float("nan"), "val_acc": 0.2})
    store.record_epoch(
        c.trial_id, {"epoch": 1, "train_loss": 1.5, "val_acc": 0.15, "grad_norm": 2.5}
    )
    epochs = store.load_epochs("digits_quick")
    assert epochs["epoch"].tolist() == [1, 2]
    assert epochs["train_loss"].iloc[0] == 1.5 and pd.isna(epochs["train_loss"].iloc[1])
    assert epochs["extra"].iloc[0] == {"grad_norm": 2.5}
    assert epochs["image_size"].tolist() == [8, 8]
    with pytest.raises(StoreError, match="epoch"):
        store.record_epoch(c.trial_id, {"epoch": 0})


def test_reads_have_real_types(store: ResultStore, db_url: str) -> None:
    study = grid(
        factors=dict(
            image_size=[8, 16],
            augment=["none", "basic"],
            lr=[0.1, 0.05],
            cnn_batch_norm=[True, False],
        ),
        seeds=[0],
    )
    register(store, study)
    run_all(store, "digits_quick")
    frame = load_trials("digits_quick", db_url)
    assert str(frame["image_size"].dtype) == "int64"
    assert str(frame["lr"].dtype) == "float64"
    assert str(frame["cnn_batch_norm"].dtype) == "bool"
    assert pd.api.types.is_string_dtype(frame["augment"])
    assert str(frame["best_epoch"].dtype) == "Int64"
    assert str(frame["started_at"].dtype).endswith("UTC]")
    assert set(frame["lr"]) == {0.1, 0.05}
    assert isinstance(frame["config"].iloc[0], dict)
    assert frame["config"].iloc[0]["lr"] in (0.1, 0.05)
    epochs = load_epochs("digits_quick", db_url)
    assert len(epochs) == 2 * len(frame)
    assert list(epochs.columns[:5]) == ["trial_id", "number", "seed", "replicate", "config_hash"]
    assert epochs.groupby("trial_id")["epoch"].apply(list).tolist() == [[1, 2]] * len(frame)


def test_view_and_join_queries_work_unchanged(store: ResultStore) -> None:
    register(store, grid())
    run_all(store, "digits_quick")
    with store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT image_size, augment, avg(val_acc), count(*) FROM study_digits_quick GROUP BY 1, 2 ORDER BY 1, 2"
            )
        ).all()
        epochs = conn.execute(
            text(
                "SELECT t.number, e.epoch, e.val_acc FROM epochs e JOIN trials t ON t.id = e.trial_id "
                "JOIN studies s ON s.id = t.study_id WHERE s.name = 'digits_quick' ORDER BY 1, 2"
            )
        ).all()
    assert [(r[0], r[1], r[3]) for r in rows] == [
        (8, "basic", 2),
        (8, "none", 2),
        (16, "basic", 2),
        (16, "none", 2),
    ]
    for image_size, augment, mean, _ in rows:
        expected = image_size / 100 + (0.05 if augment == "basic" else 0) + (0 + 1) / 2000
        assert mean == pytest.approx(expected)
    assert len(epochs) == 16 and epochs[0][:2] == (0, 1)


def test_view_follows_factor_changes_and_backfills(store: ResultStore) -> None:
    register(store, grid(factors=dict(image_size=[8, 16]), seeds=[0]))
    wider = grid(factors=dict(image_size=[8, 16], lr=[0.05, 0.1]), seeds=[0])
    store.register_study(wider)
    # lr=0.05 is the default, so the two existing trials are the lr=0.05 half of the new grid
    assert store.add_trials(wider, wider.validate()) == 2
    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT number, image_size, lr FROM study_digits_quick ORDER BY number")
        ).all()
    assert [tuple(r) for r in rows] == [(0, 8, 0.05), (1, 16, 0.05), (2, 8, 0.1), (3, 16, 0.1)]


def test_ofat_baseline_and_collision_with_trial_columns(store: ResultStore) -> None:
    study = Study(
        name="effnet_imgsize",
        base=dict(dataset="digits"),
        factors=dict(image_size=[16, 8], augment=["none", "basic"], device=["cpu", "auto"]),
        design="ofat",
        baseline=dict(augment="none"),
    )
    info = store.register_study(study)
    assert info.baseline == {"image_size": 16, "augment": "none", "device": "cpu"}
    store.add_trials(study, study.validate())
    c = store.claim_next_trial("effnet_imgsize", worker="w", device="cuda:1", lease_s=60)
    assert c is not None
    frame = store.load_trials("effnet_imgsize")
    # the factor keeps its name; the trial's run device is renamed
    assert frame["device"].tolist() == ["cpu", "cpu", "cpu", "auto"]
    assert frame["trial_device"].tolist()[0] == "cuda:1"
    with store.engine.connect() as conn:
        assert (
            conn.execute(text("SELECT device FROM study_effnet_imgsize WHERE number = 3")).scalar()
            == "auto"
        )


def test_propose_inserts_a_running_trial(store: ResultStore) -> None:
    study = Study(
        name="tpe",
        base=dict(dataset="digits"),
        factors=dict(lr=[0.1, 0.01, 0.001]),
        design="random",
        n_trials=2,
    )
    store.register_study(study)
    seen: list[list[TrialRecord]] = []

    def propose(existing: list[TrialRecord]) -> TrialSpec | None:
        seen.append(existing)
        if len(existing) >= 2:
            return None
        lr = [0.1, 0.01][len(existing)]
        return TrialSpec(-1, {"lr": lr}, 0, study.config_for({"lr": lr}, 0))

    first = store.claim_next_trial("tpe", worker="w", lease_s=60, propose=propose)
    assert (
        first is not None
        and first.number == 0
        and first.params == {"lr": 0.1}
        and first.attempt == 1
    )
    assert store.finish_trial(first.trial_id, "w", status="completed", metrics={"val_acc": 0.7})
    second = store.claim_next_trial("tpe", worker="w", lease_s=60, propose=propose)
    assert second is not None and second.number == 1
    assert seen[-1][0].metrics["val_acc"] == 0.7 and seen[-1][0].params == {"lr": 0.1}
    assert store.claim_next_trial("tpe", worker="w", lease_s=60, propose=propose) is None
    with pytest.raises(StoreError, match="already exists"):
        store.claim_next_trial(
            "tpe",
            worker="w",
            lease_s=60,
            propose=lambda ex: TrialSpec(0, {"lr": 0.1}, 0, study.config_for({"lr": 0.1}, 0)),
        )


def test_list_studies_counts_by_status(store: ResultStore) -> None:
    register(store, grid())
    register(store, grid(name="other", seeds=[0]))
    c = store.claim_next_trial("other", worker="w", lease_s=60)
    assert c is not None
    frame = store.list_studies()
    assert frame["name"].tolist() == ["digits_quick", "other"]
    assert frame[["trials", "queued", "running", "completed"]].values.tolist() == [
        [8, 8, 0, 0],
        [4, 3, 1, 0],
    ]


def test_opening_without_create_needs_the_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no database at"):
        ResultStore(f"sqlite:///{tmp_path}/missing.db", create=False)


def test_relative_paths_become_absolute_and_memory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with ResultStore("results/ablate.db") as store:
        assert store.display_url == f"sqlite:///{tmp_path / 'results' / 'ablate.db'}"
    assert (tmp_path / "results" / "ablate.db").is_file()
    monkeypatch.setenv("ABLATE_DB", "from_env.db")
    with ResultStore() as store:
        assert store.display_url.endswith("/from_env.db")
    with pytest.raises(StoreError, match="in-memory"):
        ResultStore("sqlite:///:memory:")


def test_long_study_names_get_their_own_unshortened_views(store: ResultStore) -> None:
    # 57 characters is the longest name whose view study_<name> fits PostgreSQL's 63: it is
    # never shortened, so two studies can never share one (a hashed suffix could collide).
    names = ["a" * 53 + "_one", "a" * 53 + "_two"]
    for name in names:
        register(store, grid(name=name, factors=dict(image_size=[8]), seeds=[0]))
    views = [store.load_study(n).view_name for n in names]
    assert views == [f"study_{n}" for n in names] and all(len(v) == 63 for v in views)
    with store.engine.connect() as conn:
        for view in views:
            assert conn.execute(text(f'SELECT count(*) FROM "{view}"')).scalar() == 1
    with pytest.raises(StudyError, match="at most 57 characters"):
        register(store, grid(name="a" * 58, factors=dict(image_size=[8]), seeds=[0]))


def test_an_environment_is_written_as_given_and_must_be_a_record(store: ResultStore) -> None:
    from dataclasses import fields

    from ablate.store._columns import ENVIRONMENT_FIELDS

    # The record is the table's shape: one field per column, the rest in extra.
    assert [f.name for f in fields(EnvironmentRecord)] == [*ENVIRONMENT_FIELDS, "extra"]
    study = Study(name="env", factors=dict(lr=[0.1]), seeds=[0])
    store.register_study(study)
    store.add_trials(study, study.validate())
    claimed = store.claim_next_trial("env", worker="w", lease_s=60)
    assert claimed is not None
    with pytest.raises(StoreError, match=r"environment must be an ablate\.store\.EnvironmentRecord"):
        store.finish_trial(claimed.trial_id, "w", status="completed", metrics={},
                           environment={"device": "x"})  # type: ignore[arg-type]
    record = EnvironmentRecord(device_name="NVIDIA H100", git_dirty=True, extra={"device": "alias"})
    assert store.finish_trial(claimed.trial_id, "w", status="completed", metrics={}, environment=record)
    env = store.load_environments("env").iloc[0]
    assert env["device_name"] == "NVIDIA H100" and bool(env["git_dirty"]) is True
    assert env["extra"] == {"device": "alias"} and env["hostname"] is None
