"""Reading one study by database: the module-level ``load_*`` functions.

Each takes ``db`` as a URL, a path, an open :class:`ResultStore`, or None for ``$ABLATE_DB`` /
``sqlite:///ablate.db``; a store it opens itself is read-only and closed again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ablate.store._records import StudyInfo
from ablate.store._store import ResultStore

if TYPE_CHECKING:
    import pandas as pd

Database = str | os.PathLike[str] | ResultStore | None


@contextmanager
def _opened(db: Database) -> Iterator[ResultStore]:
    if isinstance(db, ResultStore):
        yield db
        return
    store = ResultStore(db, read_only=True)
    try:
        yield store
    finally:
        store.close()


def load_study(name: str, db: Database = None) -> StudyInfo:
    """The current version of study ``name`` in ``db`` (a URL, a path, a ResultStore, or None
    for ``$ABLATE_DB`` / ``sqlite:///ablate.db``)."""
    with _opened(db) as store:
        return store.load_study(name)


def load_trials(name: str, db: Database = None) -> pd.DataFrame:
    """One row per trial of the study's current version, ordered by trial number.

    Columns: trial_id, number, seed, replicate, status, config_hash, one column per factor,
    the final metrics (train_loss ... n_params), stop_reason, error, worker, host, device,
    attempt, started_at, finished_at, heartbeat_at (UTC), config (dict), extra_metrics (dict or None).
    """
    with _opened(db) as store:
        return store.load_trials(name)


def load_epochs(
    name: str, db: Database = None, *, trial_ids: Iterable[int] | None = None
) -> pd.DataFrame:
    """One row per recorded epoch of the study's current version, ordered by trial and epoch.

    Columns: trial_id, number, seed, replicate, config_hash, one column per factor, epoch,
    train_loss, train_acc, val_loss, val_acc, val_top5, lr, seconds, images_per_s,
    peak_mem_mb, extra (dict of other metrics, or None). ``trial_ids`` reads only the epochs
    of those trials (ids of other studies are ignored), e.g. the few a plot draws.
    """
    with _opened(db) as store:
        return store.load_epochs(name, trial_ids=trial_ids)


def load_artifacts(name: str, db: Database = None) -> pd.DataFrame:
    """The files the study's trials produced: trial_id, number, kind, path."""
    with _opened(db) as store:
        return store.load_artifacts(name)


def load_environments(name: str, db: Database = None) -> pd.DataFrame:
    """Where each finished trial ran: trial_id, number, then python, torch, torchvision, timm,
    cuda, git_revision, git_dirty, ablate_version, study_sha256, device_name, hostname,
    platform, extra (dict or None). Trials without a recorded environment have no row."""
    with _opened(db) as store:
        return store.load_environments(name)


def list_studies(db: Database = None) -> pd.DataFrame:
    """Every study version with its trial counts: name, version, design, metric, trials,
    one column per status, updated_at."""
    with _opened(db) as store:
        return store.list_studies()


def study_summaries(db: Database = None) -> list[dict[str, Any]]:
    """The rows of :func:`list_studies` as plain dicts, without pandas (for a fast `ablate ls`)."""
    with _opened(db) as store:
        return store.study_summaries()
