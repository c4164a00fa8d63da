"""Read-only SQL for `ablate sql`: refuse writes up front, and let the database refuse them too.

Two independent guards: :func:`check_read_only` rejects statements that would write before
anything is sent; then the query runs on a connection that cannot write (SQLite opened with
``mode=ro`` and ``query_only``; PostgreSQL inside ``SET TRANSACTION READ ONLY``, rolled back).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ablate.errors import ReadOnlyQueryError
from ablate.store._engine import is_sqlite, make_engine, store_error

READ_STARTS = ("SELECT", "WITH", "EXPLAIN", "VALUES", "TABLE", "SHOW", "PRAGMA")
# Words that make a statement write wherever they appear (a WITH clause may hold a DELETE;
# EXPLAIN ANALYZE runs its statement; SELECT ... INTO creates a table on PostgreSQL).
WRITE_WORDS = (
    "INSERT", "UPDATE", "DELETE", "DROP", "CREATE", "ALTER", "ATTACH", "DETACH", "TRUNCATE",
    "GRANT", "REVOKE", "VACUUM", "REINDEX", "MERGE", "COPY", "INTO", "UPSERT",
)  # fmt: skip
# PRAGMAs that take an argument in parentheses and only read.
READ_PRAGMAS = (
    "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list",
    "foreign_key_check", "integrity_check", "quick_check", "table_list",
)  # fmt: skip

_LITERALS = re.compile(
    r"""
    --[^\n]*                      # line comment
  | /\*.*?\*/                     # block comment
  | '(?:[^']|'')*'                # string
  | "(?:[^"]|"")*"                # quoted identifier
  | `[^`]*`                       # SQLite backtick identifier
  | \[[^\]]*\]                    # SQLite bracket identifier
  | \$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$   # PostgreSQL dollar quoting
    """,
    re.VERBOSE | re.DOTALL,
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of a query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def check_read_only(sql: str) -> None:
    """Raise ReadOnlyQueryError unless ``sql`` is one statement that only reads."""
    # Comments vanish; strings and quoted names become a neutral token, so that a keyword
    # inside them ('DROP me') neither counts nor hides.
    code = _LITERALS.sub(lambda m: " " if m.group(0)[:2] in ("--", "/*") else " 0 ", sql)
    statements = [s for s in code.split(";") if s.strip()]
    if not statements:
        raise ReadOnlyQueryError("ablate sql: the query is empty; give one SELECT statement")
    if len(statements) > 1:
        raise ReadOnlyQueryError(
            f"ablate sql: {len(statements)} statements given; run one statement at a time"
        )
    statement = statements[0]
    words = [w.upper() for w in _WORD.findall(statement)]
    allowed = "allowed: SELECT, WITH, EXPLAIN, VALUES, PRAGMA <name>"
    first = words[0] if words else statement.strip().split()[0]
    if first not in READ_STARTS:
        raise ReadOnlyQueryError(
            f"ablate sql is read-only: {first} statements are refused; {allowed}"
        )
    for word in words:
        if word in WRITE_WORDS:
            kind = "SELECT INTO" if word == "INTO" else word
            raise ReadOnlyQueryError(
                f"ablate sql is read-only: {kind} is refused (in a {first} statement); {allowed}"
            )
    if first == "PRAGMA":
        name = words[1].lower() if len(words) > 1 else ""
        if "=" in statement or ("(" in statement and name not in READ_PRAGMAS):
            raise ReadOnlyQueryError(
                f"ablate sql is read-only: PRAGMA {name} with a value is refused; {allowed}"
            )


def run_read_only_query(db: str | os.PathLike[str] | None, sql: str) -> QueryResult:
    """Run one read-only statement against the database and return all its rows."""
    from ablate.store._store import ResultStore

    check_read_only(sql)
    store = ResultStore(db, create=False)  # brings the schema to head; the query itself can't write
    store.close()
    sqlite = is_sqlite(store.url)
    engine = make_engine(store.url, read_only=sqlite)
    try:
        with engine.connect() as conn:
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            cursor = dbapi.cursor()
            try:
                if not sqlite:
                    cursor.execute("SET TRANSACTION READ ONLY")
                # The DB-API cursor directly: no parameter parsing, so '%' and ':' in the
                # user's SQL mean what they say.
                cursor.execute(sql)
                columns = [d[0] for d in cursor.description or []]
                rows = [tuple(r) for r in cursor.fetchall()] if cursor.description else []
            finally:
                cursor.close()
                dbapi.rollback()
    except SQLAlchemyError as e:
        raise store_error(e, store.url, "running the query") from e
    except Exception as e:  # the DB-API's own errors (no SQLAlchemy wrapper on a raw cursor)
        if type(e).__module__.split(".")[0] in ("sqlite3", "psycopg"):
            raise ReadOnlyQueryError(f"ablate sql: {str(e).strip().splitlines()[0]}") from e
        raise
    finally:
        engine.dispose()
    return QueryResult(columns, rows)
