"""ablate: run deep-learning ablation studies end to end and keep every result in SQL.

Declare a study in a Python file (``from ablate import Study``), run it with ``ablate run``, and
read the results with ``ablate report``, plain SQL, or :func:`load_trials` / :func:`load_epochs`.
"""

from __future__ import annotations

from typing import Any

from ablate.errors import AblateError, DataNotFoundError, StoreError, StudyError
from ablate.study import Study, TrialConfig, choice, intrange, loguniform, uniform

__version__ = "0.1.0"

__all__ = [
    "AblateError",
    "DataNotFoundError",
    "StoreError",
    "Study",
    "StudyError",
    "TrialConfig",
    "__version__",
    "choice",
    "intrange",
    "load_epochs",
    "load_trials",
    "loguniform",
    "uniform",
]


def __getattr__(name: str) -> Any:
    # The store pulls in SQLAlchemy and pandas: import it only when these are used.
    if name in ("load_trials", "load_epochs"):
        from ablate import store

        return getattr(store, name)
    raise AttributeError(f"module 'ablate' has no attribute {name!r}")
