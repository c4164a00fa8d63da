"""The result database: typed SQLAlchemy models, migrations, the claim protocol, DataFrames.

``ResultStore`` is what workers and the CLI write through; ``load_trials`` / ``load_epochs`` /
``load_study`` read results as pandas DataFrames and plain dataclasses. ``docs/schema.md``
documents the tables and the per-study SQL views.
"""

from ablate.store._engine import mask_url, resolve_url
from ablate.store._read import (
    list_studies,
    load_artifacts,
    load_environments,
    load_epochs,
    load_study,
    load_trials,
)
from ablate.store._records import ClaimedTrial, StudyInfo, TrialRecord
from ablate.store._sql import QueryResult, check_read_only, run_read_only_query
from ablate.store._store import ResultStore

__all__ = [
    "ClaimedTrial",
    "QueryResult",
    "ResultStore",
    "StudyInfo",
    "TrialRecord",
    "check_read_only",
    "list_studies",
    "load_artifacts",
    "load_environments",
    "load_epochs",
    "load_study",
    "load_trials",
    "mask_url",
    "resolve_url",
    "run_read_only_query",
]
