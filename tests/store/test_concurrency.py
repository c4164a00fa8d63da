"""Many processes on one database: no lost rows, no "database is locked", every trial once.

Real processes (fork) and real files / a real PostgreSQL schema. Each child opens its own
store, waits at a barrier so that all start together, and reports what it did through a queue.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from ablate import Study
from ablate.store import EnvironmentRecord, ResultStore, TrialRecord
from ablate.study import TrialSpec

ctx = multiprocessing.get_context("fork")
EPOCHS = 3


def wide_study() -> Study:
    return Study(
        name="crowd",
        base=dict(dataset="digits", epochs=EPOCHS),
        factors=dict(image_size=[8, 12, 16, 24], augment=["none", "basic", "heavy"]),
        seeds=[0, 1, 2, 3],
    )  # 48 trials


def _child(fn: Callable[..., Any], queue: Any, barrier: Any, *args: Any) -> None:
    try:
        barrier.wait(timeout=60)
        queue.put(("ok", os.getpid(), fn(*args)))
    except BaseException:
        queue.put(("error", os.getpid(), traceback.format_exc()))


def run_processes(n: int, fn: Callable[..., Any], *args: Any, timeout: float = 90) -> list[Any]:
    """Run fn(*args, index) in n processes started together; return their results."""
    queue = ctx.Queue()
    barrier = ctx.Barrier(n)
    procs = [ctx.Process(target=_child, args=(fn, queue, barrier, *args, i)) for i in range(n)]
    for p in procs:
        p.start()
    results = []
    deadline = time.monotonic() + timeout
    for _ in procs:
        status, pid, value = queue.get(timeout=max(1.0, deadline - time.monotonic()))
        if status == "error":
            for p in procs:
                p.kill()
            pytest.fail(f"process {pid} failed:\n{value}")
        results.append(value)
    for p in procs:
        p.join(timeout=10)
        assert p.exitcode == 0
    return results


def register_and_work(url: str, index: int) -> list[int]:
    """Register the study, plan it, then claim / write epochs / finish until nothing is left."""
    study = wide_study()
    claimed_ids = []
    with ResultStore(url) as store:
        store.register_study(study)
        store.add_trials(study, study.validate())
        worker = f"w{index}"
        while (
            c := store.claim_next_trial("crowd", worker=worker, host="h", device="cpu", lease_s=120)
        ) is not None:
            claimed_ids.append(c.trial_id)
            for epoch in range(1, EPOCHS + 1):
                store.record_epoch(
                    c.trial_id, {"epoch": epoch, "val_acc": epoch / 10, "worker_index": index}
                )
                assert store.heartbeat(c.trial_id, worker, 120, epoch=epoch)
            assert store.finish_trial(
                c.trial_id, worker, status="completed", metrics={"val_acc": 0.5, "epochs_run": EPOCHS},
                environment=EnvironmentRecord(hostname="h", torch="x"), artifacts={"last_checkpoint": f"/c/{c.trial_id}.pt"},
            )  # fmt: skip
    return claimed_ids


@pytest.mark.slow
def test_eight_writers(db_url: str) -> None:
    # The database does not exist yet: the eight processes also race to create the schema.
    claimed = run_processes(8, register_and_work, db_url)
    all_claims = [t for ids in claimed for t in ids]
    assert len(all_claims) == len(set(all_claims)) == 48
    assert sum(1 for ids in claimed if ids) >= 2, "the work should have been shared"
    with ResultStore(db_url) as store:
        frame = store.load_trials("crowd")
        epochs = store.load_epochs("crowd")
        with store.engine.connect() as conn:
            n_env = conn.execute(text("SELECT count(*) FROM environments")).scalar()
            n_art = conn.execute(text("SELECT count(*) FROM artifacts")).scalar()
            n_studies = conn.execute(text("SELECT count(*) FROM studies")).scalar()
    assert len(frame) == 48 and set(frame["status"]) == {"completed"}
    assert sorted(frame["trial_id"]) == sorted(all_claims)
    assert frame["number"].tolist() == list(range(48))
    assert (frame["attempt"] == 1).all()
    assert len(epochs) == 48 * EPOCHS
    assert epochs.groupby("trial_id")["epoch"].apply(list).tolist() == [[1, 2, 3]] * 48
    assert (n_env, n_art, n_studies) == (48, 48, 1)


def claim_only(url: str, index: int) -> tuple[str, list[int]]:
    ids = []
    with ResultStore(url) as store:
        while (c := store.claim_next_trial("crowd", worker=f"c{index}", lease_s=300)) is not None:
            ids.append(c.trial_id)
    return f"c{index}", ids


@pytest.mark.slow
def test_each_trial_is_claimed_exactly_once(db_url: str) -> None:
    study = wide_study()
    with ResultStore(db_url) as store:
        store.register_study(study)
        store.add_trials(study, study.validate())
    claimed = run_processes(4, claim_only, db_url)
    all_claims = [t for _, ids in claimed for t in ids]
    assert len(all_claims) == len(set(all_claims)) == 48
    with ResultStore(db_url) as store:
        frame = store.load_trials("crowd")
    owner = {t: worker for worker, ids in claimed for t in ids}
    assert all(owner[t] == w for t, w in zip(frame["trial_id"], frame["worker"], strict=True))


LRS = [0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002]


def adaptive_study() -> Study:
    return Study(
        name="adaptive",
        base=dict(dataset="digits"),
        factors=dict(lr=LRS),
        design="random",
        n_trials=len(LRS),
    )


def propose_next(existing: list[TrialRecord]) -> TrialSpec | None:
    """Deterministic 'sampler': the first lr nobody has tried. Without the lock, two processes
    reading the same `existing` would propose the same lr."""
    time.sleep(0.02)  # widen the window in which a missing lock would let a second reader in
    used = {r.params["lr"] for r in existing}
    for lr in LRS:
        if lr not in used:
            return TrialSpec(-1, {"lr": lr}, 0, adaptive_study().config_for({"lr": lr}, 0))
    return None


def propose_and_work(url: str, index: int) -> list[float]:
    lrs = []
    with ResultStore(url) as store:
        while (
            c := store.claim_next_trial(
                "adaptive", worker=f"p{index}", lease_s=60, propose=propose_next
            )
        ) is not None:
            lrs.append(c.params["lr"])
            assert store.finish_trial(
                c.trial_id, f"p{index}", status="completed", metrics={"val_acc": c.params["lr"]}
            )
    return lrs


@pytest.mark.slow
def test_proposals_under_the_lock_never_collide(db_url: str) -> None:
    with ResultStore(db_url) as store:
        store.register_study(adaptive_study())
    proposed = run_processes(4, propose_and_work, db_url)
    flat = [lr for lrs in proposed for lr in lrs]
    assert sorted(flat) == sorted(LRS)
    with ResultStore(db_url) as store:
        frame = store.load_trials("adaptive")
    assert frame["number"].tolist() == list(range(len(LRS)))
    assert sorted(frame["lr"]) == sorted(LRS) and set(frame["status"]) == {"completed"}


# Long enough that a loaded machine opens the survivor's store before the lease expires.
LEASE_S = 4.0


def claim_and_die(url: str, index: int) -> None:
    with ResultStore(url) as store:
        claimed = store.claim_next_trial("crowd", worker="doomed", lease_s=LEASE_S)
        assert claimed is not None
        store.record_epoch(claimed.trial_id, {"epoch": 1, "val_acc": 0.1})
        os.kill(os.getpid(), signal.SIGKILL)  # no finish, no cleanup: a dead Colab session


@pytest.mark.slow
def test_trial_of_a_killed_worker_is_reclaimed(db_url: str) -> None:
    study = Study(
        name="crowd", base=dict(dataset="digits"), factors=dict(image_size=[8]), seeds=[0]
    )
    with ResultStore(db_url) as store:
        store.register_study(study)
        store.add_trials(study, study.validate())
    proc = ctx.Process(target=claim_and_die, args=(db_url, 0))
    proc.start()
    proc.join(timeout=30)
    assert proc.exitcode == -signal.SIGKILL
    with ResultStore(db_url) as store:
        assert (
            store.claim_next_trial("crowd", worker="survivor", lease_s=60) is None
        )  # lease still held
        time.sleep(LEASE_S + 0.2)
        again = store.claim_next_trial("crowd", worker="survivor", lease_s=60)
        assert again is not None and again.attempt == 2 and again.number == 0
        assert store.finish_trial(
            again.trial_id, "survivor", status="completed", metrics={"val_acc": 0.9}
        )
        frame = store.load_trials("crowd")
        assert frame[["worker", "attempt", "val_acc"]].values.tolist() == [["survivor", 2, 0.9]]
        assert store.load_epochs("crowd")["val_acc"].tolist() == [0.1]
