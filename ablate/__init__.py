"""ablate: run deep-learning ablation studies end to end and keep every result in SQL.

Declare a study in a Python file (``from ablate import Study``), run it with ``ablate run``, and
read the results with ``ablate report``, plain SQL, or :func:`load_trials` / :func:`load_epochs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ablate.errors import AblateError, DataNotFoundError, StoreError, StudyError

if TYPE_CHECKING:
    from ablate.dashboard import optuna_study
    from ablate.metrics import Evaluation, Metric, evaluation
    from ablate.store import load_epochs, load_trials
    from ablate.study import Study, TrialConfig, choice, intrange, loguniform, uniform
    from ablate.train import verification

from ablate.version import __version__

__all__ = [
    "AblateError",
    "DataNotFoundError",
    "Evaluation",
    "Metric",
    "StoreError",
    "Study",
    "StudyError",
    "TrialConfig",
    "__version__",
    "choice",
    "evaluation",
    "intrange",
    "load_epochs",
    "load_trials",
    "loguniform",
    "optuna_study",
    "uniform",
    "verification",
]


_LAZY = {
    "Study": "ablate.study",
    "TrialConfig": "ablate.study",
    "choice": "ablate.study",
    "intrange": "ablate.study",
    "loguniform": "ablate.study",
    "uniform": "ablate.study",
    "load_trials": "ablate.store",
    "load_epochs": "ablate.store",
    # Declaring a metric or an evaluation imports no torch; verification() brings in the trainer.
    "Evaluation": "ablate.metrics",
    "Metric": "ablate.metrics",
    "evaluation": "ablate.metrics",
    "verification": "ablate.train",
    "optuna_study": "ablate.dashboard",
}


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `ablate sql` and `ablate status` (which need neither the
    # study declarations nor pandas) start fast: the store pulls in SQLAlchemy and pandas.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ablate' has no attribute {name!r}")
