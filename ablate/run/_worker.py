"""A worker: claim the next trial, train it with a heartbeat, store every epoch, finish it.

Any number of workers, in processes on one machine or on many machines, can run this loop
against one database: the store's claim is atomic, a lease renewed by a heartbeat marks a trial
as taken, and a trial whose lease expired (its worker died) is claimed again and resumes from
its last checkpoint.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ablate.errors import AblateError
from ablate.run._adaptive import PruningCheck, make_proposer
from ablate.study import Study, TrialConfig

DEFAULT_LEASE_S = 60.0


class LeaseLost(Exception):
    """Another worker took this trial over (our lease expired): stop without writing."""


class Progress(Protocol):
    """What the worker tells the display (see ablate.run._progress)."""

    def trial_started(self, number: int, seed: int, params: Mapping[str, Any], epochs: int, resumed: bool) -> None: ...
    def batch(self, epoch: int, batch: int, n_batches: int, loss: float | None) -> None: ...
    def epoch(self, metrics: Mapping[str, Any]) -> None: ...
    def trial_finished(self, number: int, status: str, summary: str) -> None: ...


@dataclass
class WorkerOptions:
    """How one worker runs: identity, limits and where checkpoints go."""

    worker: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    lease_s: float = field(default_factory=lambda: float(os.environ.get("ABLATE_LEASE_S", DEFAULT_LEASE_S)))
    max_trials: int | None = None
    budget_s: float | None = None
    runs_dir: Path = field(default_factory=lambda: Path(os.environ.get("ABLATE_RUNS", "runs")))
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

    def __init__(self, store: Any, trial_id: int, worker: str, lease_s: float) -> None:
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
        store: Any,
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
        from ablate.train._result import TrialPruned

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


def trial_dir(runs_dir: Path, study: str, number: int, seed: int) -> Path:
    """Where a trial's checkpoints and artifacts live (shared by every attempt of it)."""
    return runs_dir / study / f"trial-{number:04d}-seed{seed}"


def _estimate_next_s(store: Any, study: str) -> float | None:
    trials = store.load_trials(study)
    done = trials[trials["status"] == "completed"]["duration_s"].dropna()
    return float(done.median()) if len(done) else None


def run_worker(
    store: Any,
    study: Study,
    options: WorkerOptions,
    *,
    progress: Progress | None = None,
    claim_counter: Any = None,
) -> WorkerSummary:
    """Claim and run trials of ``study`` until none is left or a limit is reached.

    ``claim_counter`` (a shared ``multiprocessing.Value``) counts trials claimed by every worker
    of this run, so ``max_trials`` holds across processes.
    """
    # A study with its own train function never needs the built-in trainer (nor torch).
    from ablate.train._env import code_provenance, environment
    from ablate.train._result import TrialPruned

    if study.train is None:
        from ablate.train import smoke_config, train_trial
    else:
        smoke_config = train_trial = None  # type: ignore[assignment]

    summary = WorkerSummary()
    started = time.monotonic()
    adaptive = study.design in ("random", "tpe")
    transform = smoke_config if options.smoke else None
    propose = make_proposer(study, transform=transform) if adaptive else None
    pruning = (
        PruningCheck(study.pruner, study.metric, study.direction or "maximize")
        if study.pruner != "none"
        else None
    )
    # The code a result came from: the study file's hash and its repository's revision (the
    # working directory's repository may be another one, or none).
    env = {**environment(), **code_provenance(study.source)}
    host = socket.gethostname()
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
        if options.budget_s is not None:
            elapsed = time.monotonic() - started
            estimate = _estimate_next_s(store, study.name) or 0.0
            if elapsed + estimate > options.budget_s:
                summary.stopped_by = f"budget ({options.budget_s / 3600:g} h): next trial would take ~{estimate:.0f} s"
                break
        claimed = store.claim_next_trial(
            study.name, worker=options.worker, host=host, device=env.get("device", "cpu"),
            lease_s=options.lease_s, propose=propose,
        )
        if claimed is None:
            break
        status, user_error = _run_one(
            store, study, claimed, options, env, progress, pruning, train_trial, TrialPruned
        )
        setattr(summary, status, getattr(summary, status) + 1)
        if user_error is not None and options.stop_on_user_error:
            summary.stopped_by = "a configuration error (fix it, then `ablate retry`)"
            summary.errors.append(user_error)
            break
    return summary


def _run_one(
    store: Any,
    study: Study,
    claimed: Any,
    options: WorkerOptions,
    env: Mapping[str, Any],
    progress: Progress | None,
    pruning: PruningCheck | None,
    train_trial: Callable[..., Any],
    trial_pruned: type[Exception],
) -> tuple[str, str | None]:
    """Run one claimed trial; return its final status and the user error that failed it, if any."""
    config: TrialConfig = claimed.config
    directory = trial_dir(options.runs_dir, study.name, claimed.number, claimed.seed)
    resumed = (directory / "last.pt").exists()
    if progress is not None:
        progress.trial_started(claimed.number, claimed.seed, claimed.params, config.epochs, resumed)
    wandb_run = _start_wandb(options, study, claimed) if options.wandb_project else None

    def history() -> list[tuple[str, dict[int, float]]]:
        epochs = store.load_epochs(study.name)
        trials = store.load_trials(study.name)
        status = dict(zip(trials["trial_id"], trials["status"], strict=True))
        out = []
        for trial_id, rows in epochs.groupby("trial_id"):
            if trial_id == claimed.trial_id or pruning is None:
                continue
            curve = {int(e): float(v) for e, v in zip(rows["epoch"], rows[pruning.metric], strict=True) if v == v}
            out.append((status.get(trial_id, "running"), curve))
        return out

    environment = {**env, "device": _device_name(config) if study.train is None else env.get("device")}
    user_error = None
    with _Heartbeat(store, claimed.trial_id, options.worker, options.lease_s) as beat:
        reporter = _Reporter(store, claimed.trial_id, beat, progress, pruning, history, wandb_run)
        try:
            if study.train is not None:
                metrics = dict(study.train(config, reporter))
                status, error, artifacts = "completed", None, {}
            else:
                result = train_trial(
                    config, reporter=reporter, checkpoint_dir=directory,
                    metric=study.metric, direction=study.direction,
                )
                metrics = result.metrics_dict()
                status, error, artifacts = result.status, result.error, result.artifacts
        except KeyboardInterrupt:
            # Stopped on purpose: give the trial back now rather than when its lease expires,
            # so the next `ablate run` resumes it from its checkpoint at once.
            store.release_trial(claimed.trial_id, options.worker)
            _finish_wandb(wandb_run, "interrupted")
            raise
        except LeaseLost:
            _finish_wandb(wandb_run, "lost")
            if progress is not None:
                progress.trial_finished(claimed.number, "lost", "another worker took it over")
            return "lost", None
        except trial_pruned as e:
            metrics, status, error, artifacts = {"stop_reason": "pruned"}, "pruned", str(e), {}
        except AblateError as e:
            # A configuration problem (missing data, missing weights): every trial like it will
            # fail the same way, so the run stops and says what to fix.
            metrics, status, error, artifacts = {}, "failed", str(e), {}
            user_error = str(e)
        except Exception as e:
            metrics, status, error, artifacts = {}, "failed", "".join(
                traceback.format_exception_only(type(e), e)
            ).strip() + "\n" + traceback.format_exc(limit=-8), {}
    if options.smoke:
        artifacts = _drop_checkpoints(directory, artifacts)
    finished = store.finish_trial(
        claimed.trial_id, options.worker, status=status, metrics=metrics, error=error,
        artifacts=artifacts, environment=environment,
    )
    _finish_wandb(wandb_run, status, metrics)
    if not finished:
        status = "lost"
    if progress is not None:
        progress.trial_finished(claimed.number, status, _summary_line(study.metric, metrics, error))
    return status, user_error


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


def _start_wandb(options: WorkerOptions, study: Study, claimed: Any) -> Any:
    from ablate.run._wandb import start_run

    return start_run(options.wandb_project or "", study.name, claimed, options.runs_dir)


def _finish_wandb(run: Any, status: str, metrics: Mapping[str, Any] | None = None) -> None:
    if run is None:
        return
    from ablate.run._wandb import finish_run

    finish_run(run, status, metrics or {})
