"""Reading one study by database: the module-level ``load_*`` functions.

Each takes ``db`` as a URL, a path, an open :class:`ResultStore`, or None for ``$ABLATE_DB`` /
``sqlite:///ablate.db``; a store it opens itself is read-only and closed again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from ablate.store._read import StudyReading, read_study
from ablate.store._readonly import Rows, driver_rows, read_only_connection
from ablate.store._readonly import study_summaries as read_summaries
from ablate.store._records import StudyInfo

if TYPE_CHECKING:
    import pandas as pd

    from ablate.store._store import ResultStore

Database: TypeAlias = "str | os.PathLike[str] | ResultStore | ReadOnlyResults | None"
T = TypeVar("T")


class ReadOnlyResults(StudyReading):
    """A result database opened to read studies (``ablate report``, the ``load_*`` functions):
    the read-only connection of :func:`~ablate.store.read_only_connection`, which for a SQLite
    file is :mod:`sqlite3` alone, so reading a study costs no SQLAlchemy import. It has the
    reading methods of :class:`~ablate.store.ResultStore` and gives the same frames (one set
    of readers, ``ablate.store._read``); it cannot write, create or migrate anything.

    Each ``load_*`` is one read transaction: its queries see one state of the database while
    workers write.
    """

    def __init__(self, db: str | os.PathLike[str] | None = None) -> None:
        self._context = read_only_connection(db)
        self._opened = self._context.__enter__()
        self._rows = driver_rows(self._opened.connection, self._opened.dialect)

    @property
    def display_url(self) -> str:
        """The database's URL with any password masked."""
        return self._opened.display_url

    def close(self) -> None:
        self._context.__exit__(None, None, None)

    def __enter__(self) -> ReadOnlyResults:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _transaction(self, read: Callable[[Rows], T]) -> T:
        connection = self._opened.connection
        if self._opened.dialect == "sqlite":
            connection.execute("BEGIN")  # a snapshot for the whole read (psycopg begins alone)
        try:
            return read(self._rows)
        finally:
            connection.rollback()

    def _read(self, name: str, reader: Callable[[Rows, StudyInfo], T]) -> T:
        return self._transaction(lambda rows: reader(rows, read_study(rows, name, self.display_url)))

    def load_study(self, name: str) -> StudyInfo:
        """The current version of study ``name``."""
        return self._transaction(lambda rows: read_study(rows, name, self.display_url))

    def study_summaries(self) -> list[dict[str, Any]]:
        return self._transaction(read_summaries)


@contextmanager
def _opened(db: Any) -> Iterator[Any]:
    """An open store as it is, else the database opened read-only (and closed again)."""
    if db is not None and not isinstance(db, (str, os.PathLike)):
        yield db  # a ResultStore or ReadOnlyResults the caller keeps open
        return
    with ReadOnlyResults(db) as results:
        yield results


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
