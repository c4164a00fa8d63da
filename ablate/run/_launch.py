"""Launchers: starting ``ablate worker`` processes on a scheduler that a cluster already runs.

ablate schedules nothing itself beyond one machine. A launcher turns ``KEY=VALUE,...`` options
into jobs of an existing engine (SLURM through submitit, Ray) whose tasks run ordinary workers
against the study's database; the claim protocol (leases, heartbeats, ``SKIP LOCKED``) stays the
only coordination, so a launcher never assigns trials.

A launcher registers with :func:`register_launcher` and is called in this order by
``ablate launch``:

1. :meth:`Launcher.parse_options` on the text after ``--slurm``/``--ray`` (unknown keys refused);
2. :meth:`Launcher.check` before anything is submitted or claimed: the engine answers, the
   partition or address exists; raises :class:`LaunchError` (exit code 2) otherwise;
3. :meth:`Launcher.submit`, which returns the engine's ids of what it started (job ids, actor
   names), recorded in the database next to the study;
4. later, :meth:`Launcher.cancel` with those ids (``ablate launch --cancel STUDY``).
"""

from __future__ import annotations

import difflib
import importlib
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar

from ablate.errors import LaunchError


@dataclass(frozen=True)
class LaunchRequest:
    """What every launcher is asked to start: workers of one study against one database."""

    study_file: Path
    study: str  # the study's name in the database (registered and planned before submitting)
    db_url: str  # the full URL, password included: workers need it; never print it unmasked
    runs_dir: Path  # absolute; every node must see it at this path to resume checkpoints
    lease_s: float | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def worker_command(self) -> list[str]:
        """The ``ablate worker`` process every launcher starts, as a user would by hand."""
        return [sys.executable, "-m", "ablate", "worker", str(self.study_file), "--study", self.study]

    def worker_env(self, worker: str, threads: int) -> dict[str, str]:
        """What that process gets on top of its node's environment. The database URL, the runs
        folder and the lease go through the variables the CLI reads, not the command line, which
        every user of the node can see in `ps`; ``worker`` names it after the engine's job (the
        worker appends its pid), so `ablate status` shows which job runs which trial."""
        env = {
            **self.extra_env,
            "ABLATE_DB": self.db_url,
            "ABLATE_RUNS": str(self.runs_dir),
            "ABLATE_WORKER": worker,
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
        }
        if self.lease_s is not None:
            env["ABLATE_LEASE_S"] = str(self.lease_s)
        return env


class Launcher(ABC):
    """One scheduler that ``ablate launch`` can start workers on."""

    name: ClassVar[str]
    # The keys ``--<name> KEY=VALUE,...`` accepts, each with a one-line help text.
    keys: ClassVar[Mapping[str, str]]

    def parse_options(self, text: str) -> dict[str, str]:
        """``"partition=gpu,tasks=3"`` as a dict; an unknown key or a missing ``=`` is refused."""
        options: dict[str, str] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not key:
                raise LaunchError(f"--{self.name}: {part!r} is not KEY=VALUE (keys: {', '.join(self.keys)})")
            if key not in self.keys:
                close = difflib.get_close_matches(key, list(self.keys), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise LaunchError(f"--{self.name}: unknown key {key!r}{hint} (keys: {', '.join(self.keys)})")
            options[key] = value.strip()
        return options

    @abstractmethod
    def check(self, options: Mapping[str, str]) -> None:
        """Fail fast, before any trial is claimed: the engine answers and the options fit it."""

    @abstractmethod
    def submit(self, request: LaunchRequest, options: Mapping[str, str]) -> list[str]:
        """Start the workers and return the engine's ids of what was started; does not wait."""

    @abstractmethod
    def cancel(self, ids: list[str], options: Mapping[str, str]) -> None:
        """Stop what :meth:`submit` started; ids already gone are not an error."""

    def job_id(self, ids: list[str]) -> str:
        """One id for the whole launch, as the engine's users know it (SLURM: the array's)."""
        return ids[0] if len(ids) == 1 else ",".join(ids)

    def log_dir(self, request: LaunchRequest, options: Mapping[str, str]) -> Path | None:
        """Where the engine writes the workers' output, if ablate knows: printed at launch."""
        return None


_LAUNCHERS: dict[str, type[Launcher]] = {}
L = TypeVar("L", bound=type[Launcher])


def register_launcher(cls: L) -> L:
    """Class decorator: make ``cls`` available as ``ablate launch --<cls.name>``."""
    _LAUNCHERS[cls.name] = cls
    return cls


def get_launcher(name: str) -> Launcher:
    """The registered launcher ``name``, its module imported on first use."""
    _import_builtin_launchers()
    if name not in _LAUNCHERS:
        raise LaunchError(f"unknown launcher {name!r} (known: {', '.join(sorted(_LAUNCHERS))})")
    return _LAUNCHERS[name]()


def launcher_names() -> list[str]:
    _import_builtin_launchers()
    return sorted(_LAUNCHERS)


# The built-in launchers, one module each, registering themselves when imported; those modules
# import submitit or Ray inside their methods only, so listing launchers imports neither.
_BUILTIN_MODULES: tuple[str, ...] = ("ablate.run._slurm", "ablate.run._ray")


def _import_builtin_launchers() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
