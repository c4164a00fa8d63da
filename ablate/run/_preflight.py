"""Checks `ablate run` makes before it writes anything, and how many workers it starts."""

from __future__ import annotations

import os
from pathlib import Path

from ablate.errors import UserInputError


def check_runs_dir(runs_dir: Path) -> None:
    """Refuse a runs folder that cannot be created or written, before the study is registered."""
    if runs_dir.exists() and not runs_dir.is_dir():
        raise UserInputError(
            f"runs folder {runs_dir}: is a file, not a folder (--runs-dir / ABLATE_RUNS)"
        )
    existing = runs_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserInputError(
            f"runs folder {runs_dir}: cannot be created, {existing} is not a folder (--runs-dir / ABLATE_RUNS)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(
            f"runs folder {runs_dir}: cannot be created or written, {existing} is not writable "
            "(--runs-dir / ABLATE_RUNS)"
        )


def capped_workers(
    requested: int,
    *,
    runnable: int,
    max_trials: int | None,
    gpus: int,
    uses_gpu: bool,
) -> tuple[int, str | None]:
    """The number of workers to start, and a line saying why it is below ``requested``.

    A worker beyond the trials left (or ``--max-trials``) would claim nothing; with GPUs, one
    beyond the GPUs would share one with another worker; on CPU, one beyond the cores would
    only slow the others down.
    """
    limits = [(max(1, runnable), f"{runnable} trial{'s' if runnable != 1 else ''} left to run")]
    if max_trials is not None:
        limits.append((max_trials, f"--max-trials {max_trials}"))
    if uses_gpu and gpus > 0:
        limits.append((gpus, f"{gpus} GPU{'s' if gpus != 1 else ''}"))
    elif not uses_gpu or gpus == 0:
        cores = os.cpu_count() or 1
        limits.append((cores, f"{cores} CPU core{'s' if cores != 1 else ''} and no GPU in use"))
    limit, reason = min(limits, key=lambda item: item[0])
    if requested <= limit:
        return requested, None
    return (
        limit,
        f"--workers {requested}: starting {limit}, as there {'is' if limit == 1 else 'are'} only {reason}",
    )
