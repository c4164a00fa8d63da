"""Read-only SQL for `ablate sql`: one statement, on a connection that cannot write.

The guarantees come from the database and its driver, not from scanning keywords:

* PostgreSQL: the statement is sent with the extended query protocol (psycopg's ``stream``),
  which carries exactly one statement (the server refuses "cannot insert multiple commands into
  a prepared statement"), in a session whose every transaction is read-only
  (``default_transaction_read_only``, set at connection start, so a COMMIT cannot end it) and
  whose statements are cancelled after ``timeout_s``. Functions that reach outside the database
  (server files, programs, other sessions, waiting, SQL given as text) are refused before the
  statement is sent: the text is split into tokens by PostgreSQL's own lexical rules (dollar
  quotes, ``E''`` escapes, ``U&`` names, nested comments), every name called as a function is
  looked up in ``pg_proc``, and a call is allowed only to a built-in function (``pg_catalog``)
  that PostgreSQL lets every role run and that is not on :data:`REFUSED_FUNCTIONS`.
* SQLite: the file is opened ``mode=ro`` with ``query_only`` and no ATTACH; sqlite3 runs one
  statement per call; a progress handler stops a query that runs past ``timeout_s``.

Rows are streamed (server-side chunks on PostgreSQL, ``fetchmany`` on SQLite), so a large
result never sits in memory whole.
"""

from __future__ import annotations

import itertools
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ablate.errors import ReadOnlyQueryError
from ablate.store._readonly import read_only_connection

DEFAULT_TIMEOUT_S = 300.0
# Rows fetched from the server (or from SQLite) at a time while streaming.
CHUNK_ROWS = 1000

READ_STARTS = {
    "postgresql": ("SELECT", "WITH", "EXPLAIN", "VALUES", "TABLE", "SHOW"),
    "sqlite": ("SELECT", "WITH", "EXPLAIN", "VALUES", "PRAGMA"),
}
# PRAGMAs that take an argument in parentheses and only read.
READ_PRAGMAS = (
    "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list",
    "foreign_key_check", "integrity_check", "quick_check", "table_list",
)  # fmt: skip

_FILES = "reads or writes files on the database server"
_SESSIONS = "acts on the server's processes or other sessions"
_SQL_TEXT = "runs SQL given to it as text, past ablate sql's checks"
_WAITS = "makes the server wait or hold locks"
_SETTINGS = "changes the session's settings"
# Built-in PostgreSQL functions refused whatever the role may run: by name, then by prefix.
# Most file and server functions are also revoked from PUBLIC by PostgreSQL itself, and
# refused for that reason too (see _refuse_by_catalog); these are refused even for superusers.
REFUSED_FUNCTIONS = {
    "pg_read_file": _FILES, "pg_read_binary_file": _FILES, "pg_stat_file": _FILES,
    "pg_current_logfile": _FILES, "pg_logdir_ls": _FILES,
    "pg_terminate_backend": _SESSIONS, "pg_cancel_backend": _SESSIONS,
    "pg_signal_backend": _SESSIONS, "pg_reload_conf": _SESSIONS, "pg_rotate_logfile": _SESSIONS,
    "pg_promote": _SESSIONS, "pg_notify": _SESSIONS, "pg_switch_wal": _SESSIONS,
    "pg_create_restore_point": _SESSIONS, "pg_log_backend_memory_contexts": _SESSIONS,
    "pg_start_backup": _SESSIONS, "pg_stop_backup": _SESSIONS,
    "pg_drop_replication_slot": _SESSIONS, "pg_import_system_collations": _SESSIONS,
    "query_to_xml": _SQL_TEXT, "query_to_xmlschema": _SQL_TEXT,
    "query_to_xml_and_xmlschema": _SQL_TEXT, "cursor_to_xml": _SQL_TEXT,
    "cursor_to_xmlschema": _SQL_TEXT, "table_to_xml": _SQL_TEXT, "table_to_xmlschema": _SQL_TEXT,
    "table_to_xml_and_xmlschema": _SQL_TEXT, "schema_to_xml": _SQL_TEXT,
    "schema_to_xmlschema": _SQL_TEXT, "schema_to_xml_and_xmlschema": _SQL_TEXT,
    "database_to_xml": _SQL_TEXT, "database_to_xmlschema": _SQL_TEXT,
    "database_to_xml_and_xmlschema": _SQL_TEXT, "ts_stat": _SQL_TEXT, "ts_rewrite": _SQL_TEXT,
    "set_config": _SETTINGS,
}  # fmt: skip
REFUSED_PREFIXES = {
    "pg_ls_": _FILES, "pg_file_": _FILES, "lo_": _FILES, "dblink": _SESSIONS,
    "pg_sleep": _WAITS, "pg_advisory": _WAITS, "pg_try_advisory": _WAITS,
    "pg_backup_": _SESSIONS, "pg_wal_replay_": _SESSIONS, "pg_replication_": _SESSIONS,
    "pg_logical_": _SESSIONS, "pg_create_": _SESSIONS, "pg_stat_reset": _SESSIONS,
}  # fmt: skip
# System views that read server files through functions the check above cannot see.
REFUSED_VIEWS = {
    "pg_file_settings": _FILES, "pg_hba_file_rules": _FILES, "pg_ident_file_mappings": _FILES,
    "pg_config": _FILES,
}  # fmt: skip
# Schemas of PostgreSQL's own functions; a function defined anywhere else (an extension's
# dblink, a user's wrapper around pg_read_file) is not called.
BUILTIN_SCHEMAS = ("pg_catalog", "information_schema")
NAMEDATALEN = 64  # PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes


@dataclass
class QueryStream:
    """A running query: its column names, its rows as they arrive, and lines for the user."""

    columns: list[str]
    rows: Iterator[tuple[Any, ...]]
    notices: list[str] = field(default_factory=list)
    close: Callable[[], None] = lambda: None  # stops the statement if rows are left unread


@dataclass(frozen=True)
class QueryResult:
    """Column names and every row of a query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


class Token(NamedTuple):
    kind: str  # word, quoted (identifier), string, number, param, op
    text: str  # as written
    value: str  # words: as PostgreSQL folds them; quoted: the name; others: the text


_ID_START = r"A-Za-z_\x80-\U0010ffff"
_PG_PATTERNS = [
    ("space", r"[ \t\n\r\f\v]+"),
    ("comment", r"--[^\n\r]*"),
    # Prefixed literals before plain words: the lexer takes the longest match, so E'..' is
    # one string, not the word E and a string.
    ("string", r"[eE]'(?:\\.|''|[^'\\])*'"),  # backslash escapes, \' included
    ("string", r"[uU]&'(?:''|[^'])*'"),
    ("string", r"[nN]'(?:''|[^'])*'"),
    ("string", r"[bBxX]'[^']*'"),  # no '' inside: a second quote starts a new string
    ("quoted", r"[uU]&\"(?:\"\"|[^\"])*\""),
    ("quoted", r"\"(?:\"\"|[^\"])*\""),
    ("string", r"'(?:''|[^'])*'"),
    ("dollar", rf"\$(?:[{_ID_START}][{_ID_START}0-9]*)?\$"),
    ("param", r"\$[0-9]+"),
    # Identifiers go on through '$': x$a$ is one name, not x and a dollar quote.
    ("word", rf"[{_ID_START}][{_ID_START}0-9$]*"),
    ("number", r"(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?"),
    ("op", r"::|."),
]
_SQLITE_PATTERNS = [
    ("space", r"\s+"),
    ("comment", r"--[^\n]*|/\*(?:.*?\*/|.*\Z)"),  # not nested; unterminated runs to the end
    ("string", r"[xX]?'(?:''|[^'])*'"),
    ("quoted", r"\"(?:\"\"|[^\"])*\"|`(?:``|[^`])*`|\[[^\]]*\]"),
    ("word", rf"[{_ID_START}][{_ID_START}0-9$]*"),
    ("number", r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"),
    ("op", r"."),
]
_LEXERS = {
    name: re.compile(
        "|".join(f"(?P<{kind}{i}>{rx})" for i, (kind, rx) in enumerate(patterns)), re.DOTALL
    )
    for name, patterns in (("postgresql", _PG_PATTERNS), ("sqlite", _SQLITE_PATTERNS))
}
_OPENING_QUOTES = {"postgresql": ("'", '"'), "sqlite": ("'", '"', "`", "[")}


def tokenize(sql: str, dialect: str = "postgresql") -> list[Token]:
    """The tokens of ``sql`` as the database's own lexer splits it, comments and spaces dropped.

    Raises ReadOnlyQueryError for text the database would not accept either: an unterminated
    string, quoted name, dollar quote or comment.
    """
    lexer = _LEXERS[dialect]
    tokens: list[Token] = []
    pos = 0
    while pos < len(sql):
        if dialect == "postgresql" and sql.startswith("/*", pos):
            pos = _skip_nested_comment(sql, pos)
            continue
        match = lexer.match(sql, pos)
        assert match is not None and match.lastgroup is not None  # "op" matches any character
        kind = match.lastgroup.rstrip("0123456789")
        text = match.group()
        end = match.end()
        if kind == "dollar":
            close = sql.find(text, end)
            if close < 0:
                raise ReadOnlyQueryError(f"ablate sql: unterminated dollar quote {text}")
            kind, end = "string", close + len(text)
            text = sql[pos:end]
        if kind == "op" and text in _OPENING_QUOTES[dialect]:
            # Every quoting pattern failed to find its end: the database refuses this too.
            raise ReadOnlyQueryError(
                f"ablate sql: unterminated quoted text starting at {sql[pos : pos + 20]!r}"
            )
        if kind not in ("space", "comment"):
            tokens.append(Token(kind, text, _token_value(kind, text)))
        pos = end
    return _apply_uescape(tokens)


def _skip_nested_comment(sql: str, pos: int) -> int:
    depth, i = 0, pos
    while i < len(sql):
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise ReadOnlyQueryError("ablate sql: unterminated /* comment")


def _token_value(kind: str, text: str) -> str:
    if kind == "word":
        # PostgreSQL folds only ASCII letters (in UTF-8 databases) and truncates long names.
        return _truncate(text.translate(_ASCII_LOWER))
    if kind == "quoted":
        if text[0] in "`[":
            return text[1:-1]
        if text[0] in "uU":
            return text  # decoded by _apply_uescape, which knows the escape character
        return _truncate(text[1:-1].replace('""', '"'))
    return text


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _truncate(name: str) -> str:
    encoded = name.encode()
    if len(encoded) < NAMEDATALEN:
        return name
    return encoded[: NAMEDATALEN - 1].decode(errors="ignore")


def _apply_uescape(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.kind == "quoted" and token.text[:2].upper() == "U&":
            escape = "\\"
            follows = tokens[i + 1 : i + 3]
            if len(follows) == 2 and follows[0].value == "uescape" and follows[1].kind == "string":
                escape = follows[1].text[1:-1]
                i += 2
            name = _truncate(_decode_unicode_escapes(token.text[3:-1].replace('""', '"'), escape))
            token = token._replace(value=name)
        out.append(token)
        i += 1
    return out


def _decode_unicode_escapes(body: str, escape: str) -> str:
    bad = ReadOnlyQueryError(f"ablate sql: invalid Unicode escape in U&{body!r}")
    if len(escape) != 1 or escape in "0123456789abcdefABCDEF+'\" \t\n\r":
        raise bad
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != escape:
            out.append(ch)
            i += 1
        elif body[i + 1 : i + 2] == escape:
            out.append(escape)
            i += 2
        else:
            digits = 6 if body[i + 1 : i + 2] == "+" else 4
            start = i + 2 if digits == 6 else i + 1
            code = body[start : start + digits]
            if len(code) != digits or not all(c in "0123456789abcdefABCDEF" for c in code):
                raise bad
            value = int(code, 16)
            if 0xD800 <= value <= 0xDFFF or value > 0x10FFFF or value == 0:
                raise bad  # surrogate pairs: valid in PostgreSQL, but no built-in needs one
            out.append(chr(value))
            i = start + digits
    return "".join(out)


def check_read_only(sql: str, dialect: str = "postgresql") -> set[str]:
    """Refuse what is not one reading statement; return the names it calls as functions.

    The statement count and first word give a clear message early; the driver and the
    read-only connection are what enforce them. On PostgreSQL, calls to the functions in
    :data:`REFUSED_FUNCTIONS` (and the views in :data:`REFUSED_VIEWS`) are refused here.
    """
    tokens = tokenize(sql, dialect)
    statements: list[list[Token]] = [[]]
    for token in tokens:
        if token.kind == "op" and token.text == ";":
            statements.append([])
        else:
            statements[-1].append(token)
    statements = [s for s in statements if s]
    if not statements:
        raise ReadOnlyQueryError("ablate sql: the query is empty; give one SELECT statement")
    if len(statements) > 1:
        raise ReadOnlyQueryError(
            f"ablate sql: {len(statements)} statements given; run one statement at a time"
        )
    statement = statements[0]
    allowed = f"allowed: {', '.join(READ_STARTS[dialect])}"
    leading = [t for t in statement if not (t.kind == "op" and t.text == "(")]
    first = leading[0].text.upper() if leading else statement[0].text
    if not leading or leading[0].kind != "word" or first not in READ_STARTS[dialect]:
        raise ReadOnlyQueryError(
            f"ablate sql is read-only: {first} statements are refused; {allowed}"
        )
    if first == "PRAGMA":
        name = leading[1].value if len(leading) > 1 else ""
        has_value = any(t.text == "=" for t in leading)
        if has_value or (any(t.text == "(" for t in leading) and name not in READ_PRAGMAS):
            raise ReadOnlyQueryError(
                f"ablate sql is read-only: PRAGMA {name} with a value is refused; {allowed}"
            )
    if dialect != "postgresql":
        return set()
    calls = {
        token.value
        for token, after in itertools.pairwise(statement)
        if token.kind in ("word", "quoted") and after.kind == "op" and after.text == "("
    }
    for name in sorted(calls):
        reason = REFUSED_FUNCTIONS.get(name) or next(
            (why for prefix, why in REFUSED_PREFIXES.items() if name.startswith(prefix)), None
        )
        if reason:
            raise ReadOnlyQueryError(f"ablate sql refuses {name}(): it {reason}")
    for token in statement:
        if token.kind in ("word", "quoted") and token.value in REFUSED_VIEWS:
            raise ReadOnlyQueryError(
                f"ablate sql refuses {token.value}: it {REFUSED_VIEWS[token.value]}"
            )
    return calls


@contextmanager
def read_only_query(
    db: str | os.PathLike[str] | None, sql: str, *, timeout_s: float | None = DEFAULT_TIMEOUT_S
) -> Iterator[QueryStream]:
    """Run one read-only statement; yield its columns and its rows as they stream in.

    ``timeout_s`` (None or 0: no limit) cancels a statement that runs longer, on both engines.
    The database must hold ablate's schema (nothing is created or migrated).
    """
    timeout = timeout_s or None
    # Opened, and the schema checked, before the statement is looked at: a database that is
    # not ablate's is refused first. No ORM, no Alembic, and for a SQLite file no SQLAlchemy.
    with read_only_connection(db, statement_timeout_s=timeout) as opened:
        calls = check_read_only(sql, opened.dialect)
        conn = opened.connection
        try:
            if opened.dialect == "sqlite":
                stream = _sqlite_stream(conn, sql, timeout)
            else:
                stream = _postgres_stream(conn, sql, calls, timeout)
            try:
                yield stream
            finally:
                stream.close()
        except (sqlite3.Error, _psycopg_error(opened.dialect)) as e:
            raise _query_error(e, timeout) from None


def run_read_only_query(
    db: str | os.PathLike[str] | None, sql: str, *, timeout_s: float | None = DEFAULT_TIMEOUT_S
) -> QueryResult:
    """Run one read-only statement and return every row (see :func:`read_only_query`)."""
    with read_only_query(db, sql, timeout_s=timeout_s) as stream:
        return QueryResult(stream.columns, list(stream.rows))


def _sqlite_stream(conn: Any, sql: str, timeout_s: float | None) -> QueryStream:
    if timeout_s is not None:
        deadline = time.monotonic() + timeout_s
        # A non-zero return interrupts the statement ("interrupted"); checked every 10k steps.
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    cursor = conn.cursor()
    # The DB-API cursor directly: no parameter parsing, so '%' and ':' mean what they say.
    cursor.execute(sql)
    columns = [d[0] for d in cursor.description or []]

    def rows() -> Iterator[tuple[Any, ...]]:
        while chunk := cursor.fetchmany(CHUNK_ROWS):
            yield from (tuple(r) for r in chunk)

    return QueryStream(columns, rows() if cursor.description else iter(()), close=cursor.close)


def _psycopg_error(dialect: str) -> type[Exception]:
    if dialect == "sqlite":  # psycopg is not imported (nor perhaps installed) for a SQLite file
        return sqlite3.Error
    import psycopg

    return psycopg.Error


def _postgres_stream(conn: Any, sql: str, calls: set[str], timeout_s: float | None) -> QueryStream:
    import psycopg

    cursor = conn.cursor()
    notices = []
    user, superuser = cursor.execute(
        "SELECT current_user, current_setting('is_superuser') = 'on'"
    ).fetchone()
    if superuser:
        notices.append(
            f"warning: connected as superuser {user!r}; ablate sql still refuses writes and "
            "functions that reach outside the database, but a read-only role is safer "
            "(README: 'A read-only role for ablate sql')"
        )
    if calls:
        _refuse_by_catalog(cursor, calls)
    # stream() always uses the extended query protocol: one statement, never several.
    chunk = CHUNK_ROWS if psycopg.capabilities.has_stream_chunked() else 1
    rows = cursor.stream(sql, size=chunk)
    end = object()
    first = next(rows, end)  # the description arrives with the first result
    columns = [d.name for d in cursor.description or []]
    if first is end:
        return QueryStream(columns, iter(()), notices)

    def all_rows() -> Iterator[tuple[Any, ...]]:
        yield tuple(first)  # type: ignore[arg-type]
        yield from (tuple(r) for r in rows)

    # Closing psycopg's generator before the end cancels the statement on the server.
    return QueryStream(columns, all_rows(), notices, close=rows.close)


def _refuse_by_catalog(cursor: Any, calls: set[str]) -> None:
    """Refuse calls to functions outside PostgreSQL's own, or ones it keeps from ordinary roles."""
    found = cursor.execute(
        "SELECT p.proname, n.nspname, has_function_privilege('public', p.oid, 'EXECUTE') "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE p.proname = ANY(%s) ORDER BY 1, 2",
        (sorted(calls),),
    ).fetchall()
    for name, schema, public in found:
        if schema not in BUILTIN_SCHEMAS:
            raise ReadOnlyQueryError(
                f"ablate sql refuses {name}(): it is defined in schema {schema!r}, not one of "
                "PostgreSQL's built-in functions, which are the only ones ablate sql calls"
            )
        if not public:
            raise ReadOnlyQueryError(
                f"ablate sql refuses {name}(): PostgreSQL reserves it for privileged roles "
                "(it reaches files or processes of the server)"
            )


def _query_error(error: Exception, timeout_s: float | None) -> ReadOnlyQueryError:
    if isinstance(error, ReadOnlyQueryError):
        return error
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    timed_out = "statement timeout" in message or (
        isinstance(error, sqlite3.OperationalError) and message == "interrupted"
    )
    if timed_out:
        return ReadOnlyQueryError(
            f"ablate sql: the query ran longer than {timeout_s:g} s and was cancelled; "
            "give --timeout SECONDS (0: no limit) to allow longer"
        )
    if getattr(error, "sqlstate", None) == "25006" or "readonly database" in message:
        return ReadOnlyQueryError(f"ablate sql is read-only: {message}")
    return ReadOnlyQueryError(f"ablate sql: {message}")
