"""`ablate run`: register a study, plan its trials into the database, and run them with workers."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.errors import AblateError, InfrastructureError, StudyError
from ablate.run._prepare import SMOKE_SUFFIX, plan_trials, smoke_study
from ablate.run._progress import PlainProgress, make_progress
from ablate.run._warm_start import check_warm_starts, plan_warm_starts
from ablate.run._worker import Stopped, WorkerOptions, WorkerSummary, run_worker, stop_exit_code
from ablate.study import (
    Study,
    TrialSpec,
    describe_overrides,
    load_studies,
    select_study,
    with_overrides,
)

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized

    from ablate.store import ResultStore


@dataclass
class RunOutcome:
    study: str
    db: str
    planned: int
    added: int
    summary: WorkerSummary
    counts: dict[str, int]




def _worker_process(
    study_file: str | None, study_name: str, db: str | None, options: WorkerOptions,
    index: int, counter: Synchronized[int], threads: int, gpus: list[str],
) -> None:
    """Entry point of one worker process started by `ablate run --workers N`.

    Exits 0 when done, with the error's exit code (2 configuration, 3 database or disk) after one
    line, and with 128 + signal after handing its trial back on SIGTERM/SIGINT: never a traceback.
    """
    try:
        _work_in_process(study_file, study_name, db, options, index, counter, threads, gpus)
    except KeyboardInterrupt as e:
        sys.exit(stop_exit_code(e))
    except AblateError as e:
        print(f"[worker {index}] error: {e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)


def _work_in_process(
    study_file: str | None, study_name: str, db: str | None, options: WorkerOptions,
    index: int, counter: Synchronized[int], threads: int, gpus: list[str],
) -> None:
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    # Read by torch when it is first imported (by the trainer), so set before any import.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    from ablate.store import ResultStore

    store = ResultStore(db)
    study = load_study_for_worker(store, study_file, study_name, options.smoke)
    progress = PlainProgress(total=0, prefix=f"[worker {index}] ")
    summary = run_worker(store, study, options, progress=progress, claim_counter=counter)
    if summary.errors:
        print(f"[worker {index}] stopped: {summary.errors[0]}", flush=True)
        sys.exit(2)


def load_study_for_worker(store: ResultStore, study_file: str | None, study_name: str, smoke: bool) -> Study:
    from ablate.study import study_from_definition

    base_name = study_name.removesuffix(SMOKE_SUFFIX) if smoke else study_name
    if study_file is not None:
        study = select_study(load_studies(study_file), base_name, source=study_file)
        # The base as registered, which `ablate run --set` may have changed from the file's.
        study = dataclasses.replace(study, base=store.load_study(study_name).definition["base"])
        if study.models:  # trials are built here, maybe in a process of their own
            from ablate.train import use_models

            use_models(study.models)
        return smoke_study(study) if smoke else study
    info = store.load_study(study_name)
    study = study_from_definition(info.definition)
    definition = info.definition
    if any(definition.get(k) for k in ("custom_train", "constraints", "models", "evaluations")):
        raise StudyError(
            f"study {study_name!r} uses Python code (train=, models=, constraints or evaluations); "
            "give its study file: ablate worker STUDY_FILE --study NAME"
        )
    return dataclasses.replace(study, name=study_name)


def _available_gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def run_workers(
    store: ResultStore, study: Study, study_file: str | None, db: str | None, options: WorkerOptions,
    workers: int, total: int, done: int,
) -> WorkerSummary:
    """Run the study's trials in this process (1 worker) or in ``workers`` processes."""
    if workers <= 1:
        progress = make_progress(total, done)
        try:
            return run_worker(store, study, options, progress=progress)
        finally:
            progress.close()
    gpus = _available_gpus()
    threads = max(1, (os.cpu_count() or 1) // workers)  # CPU threads split fairly
    ctx = mp.get_context("spawn")
    counter = ctx.Value("i", 0)
    procs = []
    for i in range(workers):
        opts = dataclasses.replace(options, worker=f"{options.worker}-w{i}")
        p = ctx.Process(
            target=_worker_process,
            args=(study_file, study.name, db, opts, i, counter, threads, gpus),
            name=f"ablate-worker-{i}",
        )
        procs.append(p)
    received = _forward_signals_while_joining(procs)
    if received is not None:
        raise Stopped(received)
    summary = WorkerSummary()
    counts = store.status_counts(study.name)
    summary.completed = counts.get("completed", 0)
    summary.failed = counts.get("failed", 0)
    summary.pruned = counts.get("pruned", 0)
    codes = [p.exitcode or 0 for p in procs]
    if 3 in codes:
        raise InfrastructureError(
            f"{codes.count(3)} worker process(es) stopped on a database or disk fault (their lines "
            "above say which); their trials went back to the queue: run the same command again"
        )
    crashed = [c for c in codes if c not in (0, 2)]
    if crashed:
        raise AblateError(f"{len(crashed)} worker process(es) exited with code(s) {sorted(set(crashed))}")
    if 2 in codes:
        summary.errors.append(
            f"{codes.count(2)} worker process(es) stopped on a configuration error (their lines above "
            "say which; fix it, then `ablate retry`)"
        )
    return summary


# How long the parent waits for a signalled worker to hand its trial back before killing it.
HAND_BACK_S = 60.0


def _forward_signals_while_joining(procs: list[Any]) -> int | None:
    """Start the worker processes and wait for them; pass SIGTERM/SIGINT on to them (SLURM,
    Kubernetes and systemd signal only the parent) and keep waiting while they hand their trials
    back. Returns the signal received, if any."""
    received: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        received.append(signum)
        for p in procs:
            if p.is_alive() and p.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # it just ended
                    os.kill(p.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        # Started under the handler, so that no signal can end the parent and leave orphans.
        for p in procs:
            p.start()
        if received:  # it came while some were still starting
            forward(received[0], None)
        for p in procs:
            while p.is_alive():
                p.join(timeout=0.5)
                if received and p.is_alive():
                    p.join(timeout=HAND_BACK_S)
                    if p.is_alive():
                        p.kill()
                        p.join()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return received[0] if received else None


def _workers_for(
    study: Study, specs: list[TrialSpec], requested: int, runnable: int, max_trials: int | None
) -> int:
    from ablate.run._preflight import capped_workers

    if requested <= 1:
        return requested
    # The built-in trainer uses a GPU unless told "cpu"; a custom train= is taken at its word
    # of nothing, so it is capped by the CPU cores.
    device = specs[0].config.device if specs else str(dict(study.base).get("device", "auto"))
    uses_gpu = study.train is None and device != "cpu"
    gpus = len(_available_gpus()) if uses_gpu else 0
    n, line = capped_workers(
        requested, runnable=runnable, max_trials=max_trials, gpus=gpus, uses_gpu=uses_gpu
    )
    if line:
        print(line, flush=True)
    return n


def run_study(
    study_file: str | os.PathLike[str],
    *,
    study_name: str | None = None,
    db: str | None = None,
    workers: int = 1,
    smoke: bool = False,
    max_trials: int | None = None,
    budget_hours: float | None = None,
    new_version: bool = False,
    wandb_project: str | None = None,
    runs_dir: Path | None = None,
    lease_s: float | None = None,
    overrides: Mapping[str, Any] | None = None,
    plan_only: bool = False,
) -> list[RunOutcome]:
    """Register, plan and run the studies of a file (or the one named); return what happened.

    ``plan_only`` registers and plans without running a trial here: ``ablate launch``, whose
    workers run on a scheduler's nodes.

    ``overrides`` (``--set``) replace base fields; when that makes the base differ from the
    registered one, the run starts a new version of the study instead of refusing.
    """
    from ablate.store import ResultStore

    source = str(study_file)
    studies = load_studies(study_file)
    chosen = [select_study(studies, study_name, source=source)] if study_name else studies
    chosen = [with_overrides(s, overrides or {}) for s in chosen]
    prepared = [plan_trials(s, smoke=smoke) for s in chosen]  # everything validated before any write
    if workers < 1:
        raise StudyError(f"--workers must be >= 1, got {workers}")
    from ablate.run._preflight import check_runs_dir

    check_runs_dir(runs_dir if runs_dir is not None else WorkerOptions().runs_dir)
    store = ResultStore(db)
    runs = runs_dir if runs_dir is not None else WorkerOptions().runs_dir
    # Every warm start's source, before any write; one from a study of this file that runs
    # first is checked against its checkpoint again when its turn comes.
    plan_warm_starts(prepared, db=db, store=store, smoke=smoke, runs_dir=runs)
    outcomes = []
    for planned_study in prepared:
        study, specs = planned_study.study, planned_study.specs
        configs = [s.config for s in specs] or study.example_configs()
        sources = check_warm_starts(study, configs, store=store, runs_dir=runs, smoke=smoke)
        base_changed = bool(overrides) and _base_differs(store, study)
        info = store.register_study(study, new_version=new_version or base_changed)
        if base_changed:
            print(
                f"{study.name}: {describe_overrides(overrides or {})} changes the base, so this "
                f"is version {info.version} of the study (earlier versions keep their results)",
                flush=True,
            )
        for note in [*planned_study.notes, *sources]:
            print(note, flush=True)
        added = store.add_trials(study, specs) if specs else 0
        counts = store.status_counts(study.name)
        planned = planned_study.planned
        done = counts.get("completed", 0) + counts.get("failed", 0) + counts.get("pruned", 0)
        print(
            f"{study.name}: {planned} trials planned, {added} new, {done} already finished "
            f"(database {store.display_url}, study version {info.version})",
            flush=True,
        )
        options = WorkerOptions(
            max_trials=max_trials,
            budget_s=budget_hours * 3600 if budget_hours is not None else None,
            smoke=smoke,
            wandb_project=wandb_project or (dict(study.wandb or {}).get("project")),
        )
        if runs_dir is not None:
            options.runs_dir = runs_dir
        if lease_s is not None:
            options.lease_s = lease_s
        if plan_only:
            summary = WorkerSummary(stopped_by="plan only")
        else:
            n_workers = _workers_for(study, specs, workers, planned - done, max_trials)
            summary = run_workers(store, study, source, db, options, n_workers, planned, done)
        outcomes.append(
            RunOutcome(study.name, store.display_url, planned, added, summary, store.status_counts(study.name))
        )
        if summary.errors:  # a configuration error stopped the run (exit code 2)
            raise StudyError(f"{study.name}: {summary.errors[0]}")
    return outcomes


def _base_differs(store: ResultStore, study: Study) -> bool:
    """Whether ``study``'s base differs from its latest registered version (False if new)."""
    try:
        registered = store.load_study(study.name).definition.get("base")
    except StudyError:  # not registered yet
        return False
    # Compared as JSON, the form the definition is stored in.
    return bool(json.loads(json.dumps(study.definition()["base"], default=str)) != registered)


def retry_trials(study: str, *, db: str | None = None, failed: bool = True, pruned: bool = False) -> int:
    """Put failed (and optionally pruned) trials back in the queue; return how many."""
    from ablate.store import ResultStore

    statuses = tuple(s for s, on in (("failed", failed), ("pruned", pruned)) if on)
    if not statuses:
        raise StudyError("nothing to retry: give --failed and/or --pruned")
    ResultStore(db, read_only=True).close()  # no schema is created in a database without one
    store = ResultStore(db)
    store.load_study(study)  # a clear error for an unknown study
    return int(store.requeue_trials(study, statuses=statuses))

