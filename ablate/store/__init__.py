"""The result database: typed SQLAlchemy models, migrations, the claim protocol, DataFrames.

``ResultStore`` is what workers and the CLI write through; ``load_trials`` / ``load_epochs`` /
``load_study`` read results as pandas DataFrames and plain dataclasses. ``docs/schema.md``
documents the tables and the per-study SQL views.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ablate.store._engine import mask_url, resolve_url, unreachable_reason
    from ablate.store._load import (
        ReadOnlyResults,
        list_studies,
        load_artifacts,
        load_environments,
        load_epochs,
        load_study,
        load_trials,
        study_summaries,
    )
    from ablate.store._migrate import current_revisions, stamp_info, upgrade
    from ablate.store._models import Epoch, Trial
    from ablate.store._readonly import (
        ReadOnlyConnection,
        StudyProgress,
        read_only_connection,
        read_study_progress,
        read_study_summaries,
    )
    from ablate.store._records import (
        ClaimedTrial,
        EnvironmentRecord,
        LaunchRecord,
        StoredTrial,
        StudyInfo,
        TrialRecord,
    )
    from ablate.store._sql import (
        QueryResult,
        QueryStream,
        check_read_only,
        read_only_query,
        run_read_only_query,
    )
    from ablate.store._store import ResultStore

# Each name is imported on first use: `ablate sql` needs SQLAlchemy's core, not the ORM
# models and pandas that `load_trials` brings.
_WHERE = {
    "mask_url": "ablate.store._engine",
    "resolve_url": "ablate.store._engine",
    "unreachable_reason": "ablate.store._engine",
    "ReadOnlyResults": "ablate.store._load",
    "list_studies": "ablate.store._load",
    "load_artifacts": "ablate.store._load",
    "load_environments": "ablate.store._load",
    "load_epochs": "ablate.store._load",
    "load_study": "ablate.store._load",
    "load_trials": "ablate.store._load",
    "study_summaries": "ablate.store._load",
    "current_revisions": "ablate.store._migrate",
    "Epoch": "ablate.store._models",
    "Trial": "ablate.store._models",
    "stamp_info": "ablate.store._migrate",
    "upgrade": "ablate.store._migrate",
    "ReadOnlyConnection": "ablate.store._readonly",
    "read_only_connection": "ablate.store._readonly",
    "read_study_summaries": "ablate.store._readonly",
    "read_study_progress": "ablate.store._readonly",
    "StudyProgress": "ablate.store._readonly",
    "ClaimedTrial": "ablate.store._records",
    "EnvironmentRecord": "ablate.store._records",
    "LaunchRecord": "ablate.store._records",
    "StoredTrial": "ablate.store._records",
    "StudyInfo": "ablate.store._records",
    "TrialRecord": "ablate.store._records",
    "QueryResult": "ablate.store._sql",
    "QueryStream": "ablate.store._sql",
    "read_only_query": "ablate.store._sql",
    "check_read_only": "ablate.store._sql",
    "run_read_only_query": "ablate.store._sql",
    "ResultStore": "ablate.store._store",
}

__all__ = [
    "ClaimedTrial",
    "EnvironmentRecord",
    "Epoch",
    "LaunchRecord",
    "QueryResult",
    "QueryStream",
    "ReadOnlyConnection",
    "ReadOnlyResults",
    "ResultStore",
    "StoredTrial",
    "StudyInfo",
    "StudyProgress",
    "Trial",
    "TrialRecord",
    "check_read_only",
    "current_revisions",
    "list_studies",
    "load_artifacts",
    "load_environments",
    "load_epochs",
    "load_study",
    "load_trials",
    "mask_url",
    "read_only_connection",
    "read_only_query",
    "read_study_progress",
    "read_study_summaries",
    "resolve_url",
    "run_read_only_query",
    "stamp_info",
    "study_summaries",
    "unreachable_reason",
    "upgrade",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
