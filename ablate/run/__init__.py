"""Running studies: dispatch to workers, exactly-once claims with leases, Optuna proposals and
pruning, progress display, W&B logging."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ablate.run._adaptive import PruningCheck, PruningHistory, make_proposer
    from ablate.run._dispatch import RunOutcome, load_study_for_worker, retry_trials, run_study
    from ablate.run._folders import trial_dir
    from ablate.run._launch_study import Launched, cancel_launches, launch_study
    from ablate.run._prepare import PlannedStudy, plan_trials, smoke_study
    from ablate.run._progress import format_duration, make_progress
    from ablate.run._ray import RayWorkerId, ray_alive, ray_worker_pids
    from ablate.run._status import StudyStatus, study_status
    from ablate.run._warm_start import WarmStartSource, plan_warm_starts
    from ablate.run._worker import (
        WorkerOptions,
        WorkerSummary,
        run_worker,
        stop_exit_code,
    )

# Each name is imported on first use: `ablate status` needs neither the trainer nor Optuna.
_WHERE = {
    "PruningCheck": "ablate.run._adaptive",
    "PruningHistory": "ablate.run._adaptive",
    "make_proposer": "ablate.run._adaptive",
    "RunOutcome": "ablate.run._dispatch",
    "load_study_for_worker": "ablate.run._dispatch",
    "format_duration": "ablate.run._progress",
    "make_progress": "ablate.run._progress",
    "RayWorkerId": "ablate.run._ray",
    "ray_alive": "ablate.run._ray",
    "ray_worker_pids": "ablate.run._ray",
    "retry_trials": "ablate.run._dispatch",
    "run_study": "ablate.run._dispatch",
    "PlannedStudy": "ablate.run._prepare",
    "plan_trials": "ablate.run._prepare",
    "smoke_study": "ablate.run._prepare",
    "StudyStatus": "ablate.run._status",
    "study_status": "ablate.run._status",
    "WorkerOptions": "ablate.run._worker",
    "WorkerSummary": "ablate.run._worker",
    "run_worker": "ablate.run._worker",
    "stop_exit_code": "ablate.run._worker",
    "trial_dir": "ablate.run._folders",
    "Launched": "ablate.run._launch_study",
    "cancel_launches": "ablate.run._launch_study",
    "launch_study": "ablate.run._launch_study",
    "WarmStartSource": "ablate.run._warm_start",
    "plan_warm_starts": "ablate.run._warm_start",
}

__all__ = [
    "Launched",
    "PlannedStudy",
    "PruningCheck",
    "PruningHistory",
    "RayWorkerId",
    "RunOutcome",
    "StudyStatus",
    "WarmStartSource",
    "WorkerOptions",
    "WorkerSummary",
    "cancel_launches",
    "format_duration",
    "launch_study",
    "load_study_for_worker",
    "make_progress",
    "make_proposer",
    "plan_trials",
    "plan_warm_starts",
    "ray_alive",
    "ray_worker_pids",
    "retry_trials",
    "run_study",
    "run_worker",
    "smoke_study",
    "stop_exit_code",
    "study_status",
    "trial_dir",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
