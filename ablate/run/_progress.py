"""What a run shows while it works: a rich display on a terminal, plain lines elsewhere (CI, logs).

Both show trials done out of the study's total, an estimate of the time left for the whole run
and the best trial so far. The estimate is ours, not rich's: rich's speed window is 30 s, so
for trials that take minutes it never has two updates to divide and shows no time at all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from ablate.metrics import default_direction, metric_names


def format_duration(seconds: float) -> str:
    """A time left as a person says it: "less than a minute", "about 12 min", "about 2 h 05 min"."""
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _metrics(values: Mapping[str, Any]) -> str:
    # The metrics drawn as learning curves: train_loss, train_acc, val_loss, val_acc.
    return " ".join(f"{k}={values[k]:.4f}" for k in metric_names(curve=True) if values.get(k) is not None)


# Statuses that count as done ("lost" and "handed back" trials run again elsewhere).
FINISHED = ("completed", "failed", "pruned")


def _leading_metric(summary: str) -> tuple[str, float] | None:
    """The study metric a finished trial's summary starts with ("val_acc=0.9867 test_acc=...")."""
    key, sep, text = summary.partition(" ")[0].partition("=")
    try:
        return (key, float(text)) if sep else None
    except ValueError:
        return None


class PlainProgress:
    """One line per epoch and per trial, flushed: readable in CI logs and `tee` files.

    ``total`` is the study's number of trials and ``done`` how many had finished before this
    run; a worker that does not know the total (0) shows no counter.
    """

    def __init__(self, total: int, done: int = 0, stream: TextIO | None = None, prefix: str = "") -> None:
        self.total, self.done = total, done
        self.stream = stream or sys.stdout
        self.prefix = prefix
        self.started = time.monotonic()
        self.finished_here = 0
        self.epochs = 0
        self.trial_started_at: float | None = None
        self.epochs_done = 0
        self.params: dict[int, str] = {}
        self.best: tuple[str, float, int] | None = None  # metric, value, trial number

    def _print(self, line: str) -> None:
        print(f"{self.prefix}{line}", file=self.stream, flush=True)

    def _counter(self) -> str:
        return f"[{self.done}/{self.total}] " if self.total > 0 else ""

    def trial_started(self, number: int, seed: int, params: Mapping[str, Any], epochs: int, resumed: bool) -> None:
        self.epochs, self.epochs_done = epochs, 0
        self.trial_started_at = time.monotonic()
        self.params[number] = f"{_params(params)}, seed {seed}" if params else f"seed {seed}"
        how = "resuming" if resumed else "starting"
        self._print(f"{self._counter()}{how} trial {number} ({self.params[number]})")

    def batch(self, epoch: int, batch: int, n_batches: int, loss: float | None) -> None:
        pass

    def epoch(self, metrics: Mapping[str, Any]) -> None:
        self.epochs_done = int(metrics["epoch"])
        self._print(f"    epoch {metrics['epoch']}/{self.epochs} {_metrics(metrics)} ({metrics.get('seconds', 0):.1f} s)")

    def trial_finished(self, number: int, status: str, summary: str) -> None:
        improved = self._count(number, status, summary)
        eta = self.eta_s()
        left = f" ({format_duration(eta)} left)" if eta is not None else ""
        self._print(f"{self._counter()}trial {number} {status}: {summary}{left}")
        if improved:
            self._print(f"    best so far: {self.best_line()}")

    def _count(self, number: int, status: str, summary: str) -> bool:
        """Update the counts and the best trial; return whether this trial is the new best."""
        self.trial_started_at = None
        if status not in FINISHED:
            return False
        self.done += 1
        self.finished_here += 1
        found = _leading_metric(summary) if status == "completed" else None
        if found is None:
            return False
        metric, value = found
        lower_is_better = default_direction(metric) == "minimize"
        if self.best is None or (value < self.best[1] if lower_is_better else value > self.best[1]):
            self.best = (metric, value, number)
            return True
        return False

    def note(self, line: str) -> None:
        """A line about the run itself (waiting for other workers, a foreign checkpoint)."""
        self._print(line)

    def best_line(self) -> str:
        if self.best is None:
            return ""
        metric, value, number = self.best
        return f"{metric}={value:.4g} (trial {number}: {self.params.get(number, '')})"

    def eta_s(self) -> float | None:
        """Seconds until every trial is done, at this run's pace; None before there is one."""
        left = self.total - self.done
        if left <= 0:
            return None
        now = time.monotonic()
        in_trial = now - self.trial_started_at if self.trial_started_at is not None else 0.0
        if self.finished_here:
            per_trial = (now - in_trial - self.started) / self.finished_here
        elif self.epochs_done and self.epochs:
            per_trial = in_trial / self.epochs_done * self.epochs  # first trial: its epochs so far
        else:
            return None
        return max(per_trial * left - in_trial, 0.0)

    def close(self) -> None:
        pass


class RichProgress(PlainProgress):
    """Trials done/total with the time left, the current trial's epoch bar, the best trial."""

    def __init__(self, total: int, done: int = 0) -> None:
        super().__init__(total, done)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text

        best = self.best_line

        class RunDisplay(Progress):
            # rich's documented hook for extra lines under the bars: here the best trial.
            def get_renderables(self) -> Any:
                yield self.make_tasks_table(self.tasks)
                if line := best():
                    yield Text(f"best so far: {line}", style="bold")

        self.bar = RunDisplay(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
        )
        self.trials = self.bar.add_task("trials", total=total or None, completed=done, info="")
        self.current = self.bar.add_task("epoch", total=1, visible=False, info="")
        self.bar.start()

    def _print(self, line: str) -> None:
        self.bar.console.print(line, highlight=False, markup=False)

    def _refresh_eta(self) -> None:
        eta = self.eta_s()
        self.bar.update(self.trials, info=f"{format_duration(eta)} left" if eta is not None else "")

    def trial_started(self, number: int, seed: int, params: Mapping[str, Any], epochs: int, resumed: bool) -> None:
        self.epochs, self.epochs_done = epochs, 0
        self.trial_started_at = time.monotonic()
        self.params[number] = f"{_params(params)}, seed {seed}" if params else f"seed {seed}"
        how = "resume " if resumed else ""
        self.bar.reset(self.current, total=epochs, visible=True, info="",
                       description=f"{how}trial {number} ({self.params[number]})")

    def batch(self, epoch: int, batch: int, n_batches: int, loss: float | None) -> None:
        info = f"epoch {epoch} batch {batch}/{n_batches}" + (f" loss {loss:.3f}" if loss is not None else "")
        self.bar.update(self.current, info=info)

    def epoch(self, metrics: Mapping[str, Any]) -> None:
        self.epochs_done = int(metrics["epoch"])
        self.bar.update(self.current, completed=metrics["epoch"], info=_metrics(metrics))
        self._refresh_eta()

    def trial_finished(self, number: int, status: str, summary: str) -> None:
        from rich.text import Text

        self._count(number, status, summary)
        # The finished trial's bar goes away with it: no stale bar at the end of the run.
        self.bar.update(self.current, visible=False)
        self.bar.update(self.trials, completed=self.done)
        self._refresh_eta()
        colour = {"completed": "green", "failed": "red", "pruned": "yellow"}.get(status, "white")
        self.bar.console.print(Text.assemble(f"trial {number} ", (status, colour), f": {summary}"))

    def close(self) -> None:
        self.bar.update(self.current, visible=False)
        self.bar.update(self.trials, info="")
        self.bar.stop()


def make_progress(total: int, done: int = 0) -> PlainProgress:
    """A rich display on a terminal, plain lines otherwise."""
    from rich.console import Console

    if Console().is_terminal:
        return RichProgress(total, done)
    return PlainProgress(total, done)
