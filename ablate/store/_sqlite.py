"""Opening a SQLite file read-only with :mod:`sqlite3` alone: shared by the read-only driver
connection of the light commands (_readonly.py) and the read-only SQLAlchemy engine (_engine.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

DEFAULT_URL = "sqlite:///ablate.db"
# How long SQLite waits for a lock before it reports "database is locked" (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000


def connect_sqlite_read_only(path: Path) -> sqlite3.Connection:
    """A sqlite3 connection to ``path`` that cannot write, whoever asks it to.

    The OS-level guarantee is ``mode=ro`` (sqlite3 itself refuses every write); ``query_only``
    says so again, and no ATTACH is allowed, because ATTACH is not bound by ``mode=ro`` and
    would create the named file.
    """
    uri = f"file:{quote(path.resolve().as_posix())}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    connection.isolation_level = None  # no implicit BEGIN: reads need no transaction
    for pragma in (f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}", "PRAGMA query_only=ON"):
        connection.execute(pragma).fetchall()
    connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    return connection
