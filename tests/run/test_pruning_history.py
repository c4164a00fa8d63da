"""The pruner's incremental history against the full reload it replaced, on real SQLite and
PostgreSQL, and the store's aggregates the workers read (status counts, median duration)."""

from __future__ import annotations

import statistics
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from ablate import Study
from ablate.run import PruningCheck, PruningHistory, _adaptive
from ablate.store import ResultStore
from ablate.store._models import Epoch

METRIC = "val_acc"


def study(**overrides: Any) -> Study:
    kwargs: dict[str, Any] = dict(
        name="prune_history",
        base=dict(dataset="digits", epochs=6),
        factors=dict(image_size=[8, 16], augment=["none", "basic"]),
        seeds=[0, 1],
        pruner="median",
    )
    kwargs.update(overrides)
    return Study(**kwargs)


def full_history(store: ResultStore, name: str, trial_id: int) -> list[tuple[str, dict[int, float]]]:
    """The history as the worker read it before: every epoch and every trial, reloaded."""
    epochs = store.load_epochs(name)
    trials = store.load_trials(name)
    status = dict(zip(trials["trial_id"], trials["status"], strict=True))
    out = []
    for tid, rows in epochs.groupby("trial_id"):
        if tid == trial_id:
            continue
        curve = {int(e): float(v) for e, v in zip(rows["epoch"], rows[METRIC], strict=True) if v == v}
        out.append((status.get(tid, "running"), curve))
    return out


class Checker:
    """Compares, after each change, the incremental history with the full reload, and the
    decisions of both Optuna pruners on a probe curve."""

    def __init__(self, store: ResultStore, name: str) -> None:
        self.store, self.name = store, name
        self.history = PruningHistory(store, name, METRIC)
        self.checks = 0

    def __call__(self, current: int) -> None:
        incremental = self.history.others(current)
        full = full_history(self.store, self.name, current)
        assert incremental == full
        for pruner in ("median", "sha"):
            check = PruningCheck(pruner, METRIC, "maximize")
            for probe in ({1: 0.05, 2: 0.1, 3: 0.1}, {1: 0.9, 2: 0.95, 3: 0.99}, {1: 0.5}):
                assert check.should_prune(probe, incremental) == check.should_prune(probe, full)
        self.checks += 1


def _claim(store: ResultStore, name: str, worker: str) -> int:
    claimed = store.claim_next_trial(name, worker=worker, host="h", device="cpu", lease_s=60)
    assert claimed is not None
    return claimed.trial_id


@pytest.mark.parametrize("overlap_s", [0.0, 120.0])
def test_incremental_history_equals_the_full_reload(
    store: ResultStore, overlap_s: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No overlap: each read fetches only rows stamped at or after the newest one seen, so a
    # row the increments missed would show.
    monkeypatch.setattr(_adaptive, "EPOCH_READ_OVERLAP", timedelta(seconds=overlap_s))
    s = study()
    store.register_study(s)
    store.add_trials(s, s.validate())
    check = Checker(store, s.name)
    workers = {f"w{i}": _claim(store, s.name, f"w{i}") for i in range(4)}
    me = workers["w0"]
    check(me)  # no epochs yet
    quality = {"w0": 0.5, "w1": 0.9, "w2": 0.2, "w3": 0.7}
    for epoch in range(1, 5):
        for worker, trial_id in workers.items():
            value = quality[worker] * epoch / 4
            # A missing value (a diverged metric) at one epoch of one trial.
            metrics = {"epoch": epoch, METRIC: None if (worker, epoch) == ("w3", 2) else value}
            store.record_epoch(trial_id, metrics)
            check(me)
    # Finished in every way a trial ends, and a repeated epoch replaces the old value.
    assert store.finish_trial(workers["w1"], "w1", status="completed", metrics={METRIC: 0.9})
    assert store.finish_trial(workers["w2"], "w2", status="pruned", metrics={"stop_reason": "pruned"})
    store.record_epoch(workers["w3"], {"epoch": 4, METRIC: 0.01})
    check(me)
    # w3 is handed back; its next attempt finds no checkpoint and starts from epoch 1, which
    # drops the four epochs its first attempt recorded.
    assert store.release_trial(workers["w3"], "w3")
    check(me)
    again = _claim(store, s.name, "w5")
    assert again == workers["w3"]
    check(me)
    assert store.start_fresh(again, "w5", "no checkpoint") == 4
    check(me)
    store.record_epoch(again, {"epoch": 1, METRIC: 0.3})
    check(me)
    # Dropped and retrained while nobody looked, and finished before the next read.
    assert store.finish_trial(again, "w5", status="failed", metrics={}, error="boom")
    assert store.requeue_trials(s.name, ["failed"]) == 1
    assert _claim(store, s.name, "w6") == again
    assert store.start_fresh(again, "w6", "no checkpoint") == 1
    for epoch in (1, 2):
        store.record_epoch(again, {"epoch": epoch, METRIC: 0.3 * epoch})
    assert store.finish_trial(again, "w6", status="completed", metrics={METRIC: 0.6})
    check(me)
    # More trials start while the current one goes on.
    for i in range(3):
        trial_id = _claim(store, s.name, f"x{i}")
        store.record_epoch(trial_id, {"epoch": 1, METRIC: 0.1 * i})
        check(me)
        check(trial_id)  # the same history serves another trial of the worker
    store.record_epoch(me, {"epoch": 5, METRIC: 0.6})
    check(me)
    assert check.checks > 20


def test_a_late_commit_within_the_overlap_is_read(store: ResultStore) -> None:
    """A row that became visible after newer ones were read (its writer waited for a lock)."""
    s = study()
    store.register_study(s)
    store.add_trials(s, s.validate())
    check = Checker(store, s.name)
    a, b, me = (_claim(store, s.name, w) for w in ("a", "b", "me"))
    store.record_epoch(a, {"epoch": 1, METRIC: 0.4})
    store.record_epoch(a, {"epoch": 2, METRIC: 0.5})
    check(me)
    store.record_epoch(b, {"epoch": 1, METRIC: 0.8})
    with store.session() as session:  # stamped before what was read already
        session.execute(
            update(Epoch).where(Epoch.trial_id == b).values(
                recorded_at=store.epoch_values(s.name, METRIC)[0][3] - timedelta(seconds=30)
            )
        )
    check(me)
    assert [curve for _, curve in check.history.others(me)] == [{1: 0.4, 2: 0.5}, {1: 0.8}]


def test_a_new_study_version_starts_the_history_over(store: ResultStore) -> None:
    s = study()
    store.register_study(s)
    store.add_trials(s, s.validate())
    check = Checker(store, s.name)
    old = _claim(store, s.name, "a")
    store.record_epoch(old, {"epoch": 1, METRIC: 0.4})
    check(old + 1000)
    store.register_study(s, new_version=True)
    store.add_trials(s, s.validate())
    new = _claim(store, s.name, "b")
    store.record_epoch(new, {"epoch": 1, METRIC: 0.7})
    check(old + 1000)
    assert check.history.others(old + 1000) == [("running", {1: 0.7})]


def test_epoch_values_reads_only_what_was_recorded_since(store: ResultStore) -> None:
    s = study()
    store.register_study(s)
    store.add_trials(s, s.validate())
    a, b = _claim(store, s.name, "a"), _claim(store, s.name, "b")
    store.record_epoch(a, {"epoch": 1, METRIC: 0.4, "my_score": 3})
    (first,) = store.epoch_values(s.name, METRIC)
    store.record_epoch(b, {"epoch": 1, METRIC: 0.5})
    store.record_epoch(a, {"epoch": 2})
    since = store.epoch_values(s.name, METRIC, recorded_since=first[3] + timedelta(microseconds=1))
    assert [(t, e, v) for t, e, v, _ in since] == [(a, 2, None), (b, 1, 0.5)]
    assert [(t, e, v) for t, e, v, _ in store.epoch_values(s.name, METRIC, trial_ids=[b])] == [(b, 1, 0.5)]
    # A metric of a custom train function, kept in the epochs' extra column.
    assert [v for _, _, v, _ in store.epoch_values(s.name, "my_score", trial_ids=[a])] == [3.0, None]


def test_status_counts_and_median_duration_are_aggregates(store: ResultStore) -> None:
    s = study()
    store.register_study(s)
    store.add_trials(s, s.validate())
    assert store.status_counts(s.name) == {"queued": 8}
    assert store.median_duration_s(s.name) is None
    durations = [5.0, 1.0, 3.0, 10.0]
    for i, seconds in enumerate(durations):
        trial_id = _claim(store, s.name, f"w{i}")
        status = "completed" if i < 3 else "failed"
        store.finish_trial(trial_id, f"w{i}", status=status, metrics={"duration_s": seconds})
        done = durations[: min(i + 1, 3)]
        assert store.median_duration_s(s.name) == statistics.median(done)
    trial_id = _claim(store, s.name, "p")
    store.finish_trial(trial_id, "p", status="pruned", metrics={"stop_reason": "pruned"})
    _claim(store, s.name, "r")
    counts = store.status_counts(s.name)
    assert counts == {"queued": 2, "running": 1, "completed": 3, "failed": 1, "pruned": 1}
    assert list(counts) == ["queued", "running", "completed", "failed", "pruned"]
    assert counts == store.load_trials(s.name)["status"].value_counts().to_dict()
    # Four completed trials: the mean of the two in the middle.
    trial_id = _claim(store, s.name, "last")
    store.finish_trial(trial_id, "last", status="completed", metrics={"duration_s": 4.0})
    assert store.median_duration_s(s.name) == statistics.median([5.0, 1.0, 3.0, 4.0]) == 3.5
