"""Running studies: dispatch to workers, exactly-once claims with leases, Optuna proposals and
pruning, progress display, W&B logging."""

from ablate.run._adaptive import PruningCheck, make_proposer
from ablate.run._dispatch import (
    RunOutcome,
    prepare,
    retry_trials,
    run_study,
    smoke_study,
    status_counts,
)
from ablate.run._status import StudyStatus, study_status
from ablate.run._worker import WorkerOptions, WorkerSummary, run_worker, trial_dir

__all__ = [
    "PruningCheck",
    "RunOutcome",
    "StudyStatus",
    "WorkerOptions",
    "WorkerSummary",
    "make_proposer",
    "prepare",
    "retry_trials",
    "run_study",
    "run_worker",
    "smoke_study",
    "status_counts",
    "study_status",
    "trial_dir",
]
