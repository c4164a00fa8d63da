"""A worker: claim the next trial, train it with a heartbeat, store every epoch, finish it.

Any number of workers, in processes on one machine or on many machines, can run this loop
against one database: the store's claim is atomic, a lease renewed by a heartbeat marks a trial
as taken, and a trial whose lease expired (its worker died) is claimed again and resumes from
its last checkpoint.

A trial's checkpoint folder is named after its ``run_token`` (stored in the trial's row and in
the folder's ``identity.json``), so a checkpoint is only resumed by the trial of this database
that wrote it. SIGTERM and SIGINT hand the running trial back to the queue (checkpoint kept)
and raise :class:`Stopped`. A database or disk fault (:class:`~ablate.errors.InfrastructureError`)
hands the trial back too and stops the worker: it never marks a trial failed.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from ablate.errors import AblateError, InfrastructureError
from ablate.run._adaptive import PruningCheck, PruningHistory, make_proposer
from ablate.run._custom import CustomTrainError, run_custom_train
from ablate.run._folders import checkpoint_folder, trial_dir
from ablate.run._warm_start import WarmStartMissing, read_record, resolve_warm_start, write_record
from ablate.study import Study, TrialConfig, TrialSpec

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized

    from ablate.store import ClaimedTrial, EnvironmentRecord, ResultStore, TrialRecord

DEFAULT_LEASE_S = 60.0
# Longest pause between two looks at the queue while other workers' trials are running.
WAIT_POLL_S = 5.0


class LeaseLost(Exception):
    """Another worker took this trial over (our lease expired): stop without writing."""


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived: the running trial was handed back; exit with 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def stop_exit_code(error: KeyboardInterrupt) -> int:
    """The shell's convention: 130 for SIGINT (Ctrl-C), 143 for SIGTERM."""
    return error.exit_code if isinstance(error, Stopped) else 128 + signal.SIGINT


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn the first SIGTERM/SIGINT into :class:`Stopped`; later ones are ignored while the
    trial is being handed back. Only the main thread can install handlers: elsewhere, a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if fired:
            return
        fired.append(signum)
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Progress(Protocol):
    """What the worker tells the display (see ablate.run._progress)."""

    def trial_started(self, number: int, seed: int, params: Mapping[str, Any], epochs: int, resumed: bool) -> None: ...
    def batch(self, epoch: int, batch: int, n_batches: int, loss: float | None) -> None: ...
    def epoch(self, metrics: Mapping[str, Any]) -> None: ...
    def trial_finished(self, number: int, status: str, summary: str) -> None: ...
    def note(self, line: str) -> None: ...


@dataclass
class WorkerOptions:
    """How one worker runs: identity, limits and where checkpoints go."""

    # $ABLATE_WORKER: a launcher names its workers after its jobs ("slurm-1234_0-node7-w0"), so
    # that `ablate status` can tell which job runs which trial. The pid is appended: a requeued
    # task or a restarted actor starts a worker of the same name, which must not own the trials
    # its predecessor held (ownership is by name).
    worker: str = field(
        default_factory=lambda: f"{os.environ.get('ABLATE_WORKER') or socket.gethostname()}-{os.getpid()}"
    )
    lease_s: float = field(default_factory=lambda: float(os.environ.get("ABLATE_LEASE_S", DEFAULT_LEASE_S)))
    max_trials: int | None = None
    budget_s: float | None = None
    runs_dir: Path = field(default_factory=lambda: Path(os.environ.get("ABLATE_RUNS", "runs")))
    # Wait for running trials of other workers (their lease may expire) before saying "nothing left".
    wait_for_running: bool = True
    smoke: bool = False
    wandb_project: str | None = None
    stop_on_user_error: bool = True


@dataclass
class WorkerSummary:
    completed: int = 0
    failed: int = 0
    pruned: int = 0
    lost: int = 0
    stopped_by: str = "nothing left"
    errors: list[str] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return self.completed + self.failed + self.pruned


class _Heartbeat:
    """Renews the lease in a background thread; remembers if the lease was lost."""

    def __init__(self, store: ResultStore, trial_id: int, worker: str, lease_s: float) -> None:
        self.store, self.trial_id, self.worker, self.lease_s = store, trial_id, worker, lease_s
        self.epoch: int | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{trial_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.lease_s)

    def _run(self) -> None:
        # Three beats per lease: one missed beat (a slow commit) never loses the trial.
        while not self._stop.wait(self.lease_s / 3):
            try:
                if not self.store.heartbeat(self.trial_id, self.worker, self.lease_s, epoch=self.epoch):
                    self.lost = True
                    return
            except Exception:  # a passing database error: the next beat tries again
                continue


class _Reporter:
    """The trainer's per-epoch callback: stores the epoch, logs it, checks lease and pruner."""

    def __init__(
        self,
        store: ResultStore,
        trial_id: int,
        heartbeat: _Heartbeat,
        progress: Progress | None,
        pruning: PruningCheck | None,
        prune_history: Callable[[], list[tuple[str, dict[int, float]]]] | None,
        wandb_run: Any,
    ) -> None:
        self.store, self.trial_id, self.heartbeat = store, trial_id, heartbeat
        self.progress, self.pruning, self.prune_history = progress, pruning, prune_history
        self.wandb_run = wandb_run
        self.curve: dict[int, float] = {}

    def report_epoch(self, m: Any) -> None:
        from ablate.trial import TrialPruned

        if self.heartbeat.lost:
            raise LeaseLost
        values = m.as_dict()
        self.store.record_epoch(self.trial_id, values)
        self.heartbeat.epoch = values["epoch"]
        if self.progress is not None:
            self.progress.epoch(values)
        if self.wandb_run is not None:
            self.wandb_run.log({k: v for k, v in values.items() if v is not None}, step=values["epoch"])
        if self.pruning is not None and self.prune_history is not None:
            value = values.get(self.pruning.metric)
            if value is not None:
                self.curve[values["epoch"]] = float(value)
                if self.pruning.should_prune(self.curve, self.prune_history()):
                    raise TrialPruned(f"pruned by the {self.pruning.pruner_name} pruner at epoch {values['epoch']}")

    def on_batch(self, epoch: int, batch: int, n_batches: int, loss: float | None) -> None:
        if self.progress is not None:
            self.progress.batch(epoch, batch, n_batches, loss)


def _device_name(config: TrialConfig) -> str:
    import torch

    if config.device == "cpu" or not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{torch.cuda.current_device()} {torch.cuda.get_device_name()}"


def _trial_environment(setup: WorkerSetup, config: TrialConfig) -> EnvironmentRecord:
    """The worker's environment with this trial's device and the precision it trains at
    (``amp`` resolved on this machine: fp16/bf16 train at fp32 on the CPU, said once)."""
    from ablate.train import trial_precision

    precision, note = trial_precision(config)
    if note is not None and note not in setup.notes_shown:
        setup.notes_shown.add(note)
        if setup.progress is not None:
            setup.progress.note(note)
    env = setup.environment
    return replace(env, device_name=_device_name(config), extra={**env.extra, "precision": precision})


def run_worker(
    store: ResultStore,
    study: Study,
    options: WorkerOptions,
    *,
    progress: Progress | None = None,
    claim_counter: Synchronized[int] | None = None,
) -> WorkerSummary:
    """Claim and run trials of ``study`` until none is left or a limit is reached.

    ``claim_counter`` (a shared ``multiprocessing.Value``) counts trials claimed by every worker
    of this run, so ``max_trials`` holds across processes.
    """
    # A study with its own train function never needs the built-in trainer (nor torch).
    from ablate.train import environment
    from ablate.trial import TrialPruned

    if study.train is None:
        from ablate.train import smoke_config, train_trial
    else:
        smoke_config = train_trial = None  # type: ignore[assignment]

    summary = WorkerSummary()
    started = time.monotonic()
    adaptive = study.strategy.adaptive
    transform = smoke_config if options.smoke else None
    propose = make_proposer(study, transform=transform) if adaptive else None
    pruning = (
        PruningCheck(study.pruner, study.metric, study.direction or "maximize")
        if study.pruner != "none"
        else None
    )
    # The code a result came from: the study file's hash and its repository's revision (the
    # working directory's repository may be another one, or none).
    env = environment(study.source)
    host = socket.gethostname()
    setup = WorkerSetup(
        store, study, options, env, progress, pruning,
        history=PruningHistory(store, study.name, pruning.metric) if pruning is not None else None,
        train_trial=train_trial, trial_pruned=TrialPruned,
    )  # fmt: skip
    # Keep reconnecting to a lost database for as long as our lease would still hold.
    store.reconnect_s = options.lease_s
    with stop_on_signals():
        while True:
            if options.max_trials is not None:
                if claim_counter is not None:
                    with claim_counter.get_lock():
                        if claim_counter.value >= options.max_trials:
                            summary.stopped_by = f"--max-trials {options.max_trials}"
                            break
                        claim_counter.value += 1
                elif summary.ran + summary.lost >= options.max_trials:
                    summary.stopped_by = f"--max-trials {options.max_trials}"
                    break
            if _over_budget(store, study, options, started, summary):
                break
            claimed = _claim_or_wait(
                store, study, options, started, summary, progress,
                worker=options.worker, host=host, device=env.device_name or "cpu", propose=propose,
            )
            if claimed is None:
                break
            trial = TrialRun(setup, claimed)
            outcome = trial.train()
            status = trial.record(outcome)
            setattr(summary, status, getattr(summary, status) + 1)
            if outcome.user_error is not None and options.stop_on_user_error:
                summary.stopped_by = "a configuration error (fix it, then `ablate retry`)"
                summary.errors.append(outcome.user_error)
                break
    return summary


def _over_budget(
    store: ResultStore, study: Study, options: WorkerOptions, started: float, summary: WorkerSummary
) -> bool:
    if options.budget_s is None:
        return False
    elapsed = time.monotonic() - started
    # The median duration of the completed trials, aggregated by the database.
    estimate = store.median_duration_s(study.name) or 0.0
    if elapsed + estimate > options.budget_s:
        summary.stopped_by = f"budget ({options.budget_s / 3600:g} h): next trial would take ~{estimate:.0f} s"
        return True
    return False


def _claim_or_wait(
    store: ResultStore, study: Study, options: WorkerOptions, started: float, summary: WorkerSummary,
    progress: Progress | None, *, worker: str, host: str, device: str,
    propose: Callable[[list[TrialRecord]], TrialSpec | None] | None,
) -> ClaimedTrial | None:
    """The next trial; None when none is left. While none is queued but other workers' trials
    are running, wait: a lease that expires (its worker died) makes that trial ours to resume."""
    said = None
    while True:
        claimed = store.claim_next_trial(
            study.name, worker=worker, host=host, device=device, lease_s=options.lease_s, propose=propose,
        )
        if claimed is not None:
            return claimed
        live = store.live_leases(study.name) if options.wait_for_running else []
        if not live:
            return None
        if _over_budget(store, study, options, started, summary):
            return None
        number, owner, left = live[0]
        line = (f"nothing queued; waiting for {len(live)} running trial(s) of other workers "
                f"(trial {number} on {owner or '?'}: lease renewed or expiring within {left:.0f} s)")
        if line.split(":")[0] != said and progress is not None:
            progress.note(line)
        said = line.split(":")[0]
        time.sleep(min(WAIT_POLL_S, options.lease_s / 3, left + 0.2))


@dataclass
class WorkerSetup:
    """What every trial of one worker shares, built once by :func:`run_worker`."""

    store: ResultStore
    study: Study
    options: WorkerOptions
    # Versions, code provenance and device, stored with each finished trial.
    environment: EnvironmentRecord
    progress: Progress | None
    pruning: PruningCheck | None
    history: PruningHistory | None
    # The built-in trainer's train_trial (None for a study with its own train function).
    train_trial: Callable[..., Any] | None
    trial_pruned: type[Exception]
    # Lines already shown by this worker (amp trained at fp32 on the CPU): once each, not per trial.
    notes_shown: set[str] = field(default_factory=set)


@dataclass
class TrialOutcome:
    """How a trial's training ended: what :meth:`TrialRun.record` stores."""

    status: str  # completed, failed or pruned; lost: another worker took the trial over
    metrics: dict[str, Any] = field(default_factory=dict)  # a pruned trial's has its stop_reason
    error: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    # A configuration problem (missing data, missing weights): every trial like this one will
    # fail the same way, so the worker stops and says what to fix.
    user_error: str | None = None


class TrialRun:
    """One claimed trial, from its checkpoint folder to its stored outcome.

    :meth:`train` runs it under a heartbeat and turns each way training can end into a
    :class:`TrialOutcome`; :meth:`record` stores it. A signal or a database or disk fault is no
    outcome: the trial goes back to the queue (checkpoint kept) and the exception goes on, so
    that the worker stops without marking the trial failed.
    """

    def __init__(self, setup: WorkerSetup, claimed: ClaimedTrial) -> None:
        self.setup, self.claimed = setup, claimed
        self.directory: Path | None = None
        self.environment: EnvironmentRecord = setup.environment
        self.wandb_run: Any = None

    def train(self) -> TrialOutcome:
        """Prepare the trial's folder and train it; how it ended."""
        setup, claimed = self.setup, self.claimed
        store, study, options, progress = setup.store, setup.study, setup.options, setup.progress
        try:
            self.directory, resumed = _prepare_folder(store, study, claimed, options, progress)
        except KeyboardInterrupt:
            _hand_back(store, claimed.trial_id, options.worker)
            raise
        if progress is not None:
            progress.trial_started(claimed.number, claimed.seed, claimed.params, claimed.config.epochs, resumed)
        self.wandb_run = _start_wandb(options, study, claimed) if options.wandb_project else None
        if study.train is None:
            self.environment = _trial_environment(setup, claimed.config)
        history = None if setup.history is None else functools.partial(setup.history.others, claimed.trial_id)
        with _Heartbeat(store, claimed.trial_id, options.worker, options.lease_s) as beat:
            reporter = _Reporter(store, claimed.trial_id, beat, progress, setup.pruning, history, self.wandb_run)
            try:
                return self._run_trainer(reporter, self.directory)
            except (KeyboardInterrupt, InfrastructureError) as e:
                # Stopped on purpose (a signal), or the database or the disk failed rather than
                # the trial: give it back now (if the database still answers; else its lease
                # expires) so that it resumes from its checkpoint, and stop this worker.
                _hand_back(store, claimed.trial_id, options.worker)
                _finish_wandb(self.wandb_run, "interrupted")
                if progress is not None:
                    why = "stopped by a signal; checkpoint kept" if isinstance(e, KeyboardInterrupt) else str(e).splitlines()[0]
                    progress.trial_finished(claimed.number, "handed back", why)
                raise
            except LeaseLost:
                return TrialOutcome("lost")
            except setup.trial_pruned as e:
                return TrialOutcome("pruned", {"stop_reason": "pruned"}, str(e))
            except CustomTrainError as e:  # this trial's result was unusable; the next may be fine
                return TrialOutcome("failed", error=str(e))
            except AblateError as e:
                return TrialOutcome("failed", error=str(e), user_error=str(e))
            except Exception as e:
                text = "".join(traceback.format_exception_only(type(e), e)).strip()
                return TrialOutcome("failed", error=text + "\n" + traceback.format_exc(limit=-8))

    def _run_trainer(self, reporter: _Reporter, directory: Path) -> TrialOutcome:
        study, config = self.setup.study, self.claimed.config
        if study.train is not None:
            done = run_custom_train(
                study.train, config, reporter, study.metric, directory=directory, declared=study.metrics
            )
            return TrialOutcome("completed", done.metrics, artifacts=done.artifacts)
        assert self.setup.train_trial is not None
        warm_start = self._warm_start(directory) if config.warm_start is not None else None
        result = self.setup.train_trial(
            config, reporter=reporter, checkpoint_dir=directory, metric=study.metric, direction=study.direction,
            evaluations=study.evaluations, warm_start=warm_start,
        )
        return TrialOutcome(result.status, result.metrics_dict(), result.error, result.artifacts)

    def _warm_start(self, directory: Path) -> Path | None:
        """The checkpoint a trial that starts fresh loads its weights from (None when it resumes
        from its own ``last.pt``); the source goes into the trial's environment row either way."""
        setup = self.setup
        resuming = (directory / "last.pt").exists()
        if resuming:
            source = read_record(directory)
        else:
            try:
                source = resolve_warm_start(setup.store, self.claimed.config, setup.options.runs_dir)
            except WarmStartMissing as e:
                if not setup.options.smoke:
                    raise
                source = None
                note = f"{e}: the smoke trial starts from random weights"
                if setup.progress is not None and note not in setup.notes_shown:
                    setup.notes_shown.add(note)
                    setup.progress.note(note)
            if source is not None:
                write_record(directory, source)
        if source is None:
            return None
        env = self.environment
        self.environment = replace(env, extra={**env.extra, "warm_start": source.record()})
        return None if resuming else Path(source.path)

    def record(self, outcome: TrialOutcome) -> str:
        """Store the outcome as the trial's result; return its final status, which is "lost"
        when another worker took the trial over (then nothing is written)."""
        setup, claimed, progress = self.setup, self.claimed, self.setup.progress
        if outcome.status == "lost":
            _finish_wandb(self.wandb_run, "lost")
            if progress is not None:
                progress.trial_finished(claimed.number, "lost", "another worker took it over")
            return "lost"
        artifacts = outcome.artifacts
        if setup.options.smoke and self.directory is not None:
            artifacts = _drop_checkpoints(self.directory, artifacts)
        finished = setup.store.finish_trial(
            claimed.trial_id, setup.options.worker, status=outcome.status, metrics=outcome.metrics,
            error=outcome.error, artifacts=artifacts, environment=self.environment,
        )
        _finish_wandb(self.wandb_run, outcome.status, outcome.metrics)
        status = outcome.status if finished else "lost"
        if progress is not None:
            progress.trial_finished(claimed.number, status, _summary_line(setup.study.metric, outcome.metrics, outcome.error))
        return status


def _prepare_folder(
    store: ResultStore, study: Study, claimed: ClaimedTrial, options: WorkerOptions, progress: Progress | None
) -> tuple[Path, bool]:
    """The trial's checkpoint folder and whether it resumes from it; a fresh start first drops
    the epochs of earlier attempts and records why, when there were any."""
    if study.train is not None:  # a train function keeps no checkpoints: it always starts over
        directory = trial_dir(options.runs_dir, study.name, claimed.number, claimed.seed, claimed.run_token or "")
        store.start_fresh(claimed.trial_id, options.worker, None)
        return directory, False
    directory, folder_note = checkpoint_folder(options.runs_dir, study.name, claimed)
    resumed = (directory / "last.pt").exists()
    if progress is not None and folder_note:
        progress.note(folder_note)
    if not resumed:
        # Training starts at epoch 1: epochs an earlier attempt recorded would otherwise outlive
        # this run (a completed trial has exactly the epochs it ran).
        reason = None
        if claimed.attempt > 1:
            reason = (f"attempt {claimed.attempt} on {socket.gethostname()} found no checkpoint at "
                      f"{directory}: trained again from epoch 1 (every worker must see the same "
                      "runs folder to resume)")
        if store.start_fresh(claimed.trial_id, options.worker, reason) and reason and progress is not None:
            progress.note(f"trial {claimed.number}: {reason}")
    return directory, resumed


def _hand_back(store: ResultStore, trial_id: int, worker: str) -> None:
    """Release the trial to the queue, quickly; if the database does not answer, its lease
    expiring hands it back instead."""
    reconnect_s, store.reconnect_s = store.reconnect_s, min(store.reconnect_s, 5.0)
    try:
        store.release_trial(trial_id, worker)
    except AblateError:
        pass
    finally:
        store.reconnect_s = reconnect_s


def _drop_checkpoints(directory: Path, artifacts: Mapping[str, str]) -> dict[str, str]:
    """A smoke trial's checkpoints have done their job (the save path ran); a ResNet-50's are
    hundreds of MB each, so a smoke run of a whole study would otherwise fill the disk."""
    for name in ("last.pt", "best.pt"):
        (directory / name).unlink(missing_ok=True)
    return {kind: path for kind, path in artifacts.items() if not kind.endswith("checkpoint")}


def _summary_line(metric: str, metrics: Mapping[str, Any], error: str | None) -> str:
    if error:
        return error.splitlines()[0]
    parts: list[str] = []
    for key in (metric, "val_acc", "test_acc", "duration_s"):
        value = metrics.get(key)
        if value is not None and not any(p.startswith(key + "=") for p in parts):
            parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


def _start_wandb(options: WorkerOptions, study: Study, claimed: ClaimedTrial) -> Any:
    from ablate.run._wandb import start_run

    return start_run(options.wandb_project or "", study.name, claimed, options.runs_dir)


def _finish_wandb(run: Any, status: str, metrics: Mapping[str, Any] | None = None) -> None:
    if run is None:
        return
    from ablate.run._wandb import finish_run

    finish_run(run, status, metrics or {})
