"""What a run shows while it works: a rich display on a terminal, plain lines elsewhere (CI, logs)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _metrics(values: Mapping[str, Any]) -> str:
    keys = ("train_loss", "train_acc", "val_loss", "val_acc")
    return " ".join(f"{k}={values[k]:.4f}" for k in keys if values.get(k) is not None)


# Statuses that count as done ("lost" and "handed back" trials run again elsewhere).
FINISHED = ("completed", "failed", "pruned")


class PlainProgress:
    """One line per epoch and per trial, flushed: readable in CI logs and `tee` files."""

    def __init__(self, total: int, done: int = 0, stream: TextIO | None = None, prefix: str = "") -> None:
        self.total, self.done = total, done
        self.stream = stream or sys.stdout
        self.prefix = prefix
        self.started = time.monotonic()
        self.finished_here = 0
        self.epochs = 0

    def _print(self, line: str) -> None:
        print(f"{self.prefix}{line}", file=self.stream, flush=True)

    def trial_started(self, number: int, seed: int, params: Mapping[str, Any], epochs: int, resumed: bool) -> None:
        self.epochs = epochs
        how = "resuming" if resumed else "starting"
        self._print(f"[{self.done}/{self.total}] {how} trial {number} ({_params(params)}, seed {seed})")

    def batch(self, epoch: int, batch: int, n_batches: int, loss: float | None) -> None:
        pass

    def epoch(self, metrics: Mapping[str, Any]) -> None:
        self._print(f"    epoch {metrics['epoch']}/{self.epochs} {_metrics(metrics)} ({metrics.get('seconds', 0):.1f} s)")

    def trial_finished(self, number: int, status: str, summary: str) -> None:
        if status in FINISHED:
            self.done += 1
            self.finished_here += 1
        self._print(f"[{self.done}/{self.total}] trial {number} {status}: {summary}{self._eta()}")

    def note(self, line: str) -> None:
        """A line about the run itself (waiting for other workers, a foreign checkpoint)."""
        self._print(line)

    def _eta(self) -> str:
        left = self.total - self.done
        if not self.finished_here or left <= 0:
            return ""
        per = (time.monotonic() - self.started) / self.finished_here
        return f" (about {per * left / 60:.1f} min left)"

    def close(self) -> None:
        pass


class RichProgress(PlainProgress):
    """Trials done/total with ETA, and the current trial's epoch bar with its loss and accuracy."""

    def __init__(self, total: int, done: int = 0) -> None:
        super().__init__(total, done)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        self.trials = self.bar.add_task("trials", total=total, completed=done, info="")
        self.current = self.bar.add_task("epoch", total=1, visible=False, info="")
        self.bar.start()

    def _print(self, line: str) -> None:
        self.bar.console.print(line, highlight=False)

    def trial_started(self, number: int, seed: int, params: Mapping[str, Any], epochs: int, resumed: bool) -> None:
        self.epochs = epochs
        how = "resume " if resumed else ""
        self.bar.reset(self.current, total=epochs, visible=True, info="",
                       description=f"{how}trial {number} ({_params(params)}, seed {seed})")

    def batch(self, epoch: int, batch: int, n_batches: int, loss: float | None) -> None:
        info = f"epoch {epoch} batch {batch}/{n_batches}" + (f" loss {loss:.3f}" if loss is not None else "")
        self.bar.update(self.current, info=info)

    def epoch(self, metrics: Mapping[str, Any]) -> None:
        self.bar.update(self.current, completed=metrics["epoch"], info=_metrics(metrics))

    def trial_finished(self, number: int, status: str, summary: str) -> None:
        if status in FINISHED:
            self.done += 1
            self.finished_here += 1
        self.bar.update(self.trials, completed=self.done)
        colour = {"completed": "green", "failed": "red", "pruned": "yellow"}.get(status, "white")
        self._print(f"trial {number} [{colour}]{status}[/{colour}]: {summary}")

    def close(self) -> None:
        self.bar.stop()


def make_progress(total: int, done: int = 0) -> PlainProgress:
    """A rich display on a terminal, plain lines otherwise."""
    from rich.console import Console

    if Console().is_terminal:
        return RichProgress(total, done)
    return PlainProgress(total, done)
