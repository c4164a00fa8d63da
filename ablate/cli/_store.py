"""`ablate db`, `ablate sql`, `ablate ls`, `ablate export`: the result database from the shell."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ablate.cli._app import app
from ablate.cli._options import DbOption, StudyArgument, StudyOption, study_name

db_app = typer.Typer(
    help="Manage the result database schema (Alembic migrations).", no_args_is_help=True
)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    db: DbOption = None,
    revision: Annotated[str, typer.Option(help="Target revision; 'head' is the latest.")] = "head",
) -> None:
    """Create the schema, or migrate it to the latest revision (other commands do this too)."""
    from ablate.store import ResultStore, current_revisions, upgrade

    with ResultStore(db, upgrade=False) as store:
        before = current_revisions(store.engine)
        upgrade(store.engine, revision, force=True)
        after = current_revisions(store.engine)
    was = ", ".join(before) or "empty"
    now = ", ".join(after) or "empty"
    typer.echo(
        f"{store.display_url}: at revision {now}"
        + (f" (was {was})" if before != after else " (already)")
    )


@db_app.command("current")
def db_current(db: DbOption = None) -> None:
    """Show the database's schema revision and the latest one, without changing anything."""
    from ablate.store import ResultStore, stamp_info

    with ResultStore(db, read_only=True, require_schema=False) as store:
        info = stamp_info(store.engine)
    current = ", ".join(info["current"]) or "empty (no ablate schema)"
    state = "up to date" if info["up_to_date"] else "needs `ablate db upgrade`"
    typer.echo(f"{store.display_url}: revision {current}; head {', '.join(info['head'])}; {state}")


# The table view is for reading: past this many rows it stops and points to --csv / --json,
# which stream any number of rows.
TABLE_MAX_ROWS = 10_000


@app.command()
def sql(
    query: Annotated[
        str,
        typer.Argument(help='One read-only statement, e.g. "SELECT * FROM study_digits_quick".'),
    ],
    db: DbOption = None,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print CSV (header row first) for scripts.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list of row objects for scripts.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0.0, help="Cancel the query after this many seconds; 0: no limit."
        ),
    ] = 300.0,
    vertical: Annotated[
        bool,
        typer.Option(
            "--vertical",
            help="One 'column: value' line per field, a block per row (automatic when the "
            "table is wider than the terminal).",
        ),
    ] = False,
) -> None:
    """Run a read-only SQL query against the result database and print the rows."""
    from ablate.store import read_only_query

    if as_csv and as_json:
        raise typer.BadParameter("choose one of --csv and --json")
    with read_only_query(db, query, timeout_s=timeout) as result:
        for notice in result.notices:
            typer.secho(notice, err=True, fg="yellow")
        if as_csv:
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(result.columns)
            for row in result.rows:
                writer.writerow(["" if v is None else _plain(v) for v in row])
            return
        if as_json:
            _write_json_records(result.columns, result.rows)
            return
        rows: list[Any] = []
        more = False
        for row in result.rows:
            if len(rows) == TABLE_MAX_ROWS:
                more = True
                break
            rows.append(row)
        columns = list(result.columns)
    _print_rows(columns, rows, vertical=vertical)
    if more:
        typer.secho(
            f"first {len(rows)} rows shown; the query has more: use --csv or --json for all of "
            "them, or add LIMIT",
            fg="yellow",
        )


def _write_json_records(columns: list[str], rows: Any) -> None:
    """A JSON list of row objects, written one row at a time (same text as json.dumps(indent=2));
    floats keep every digit."""
    out = sys.stdout
    first = True
    for row in rows:
        record = json.dumps(dict(zip(columns, row, strict=True)), indent=2, default=_json_value)
        out.write(
            ("[\n" if first else ",\n") + "\n".join("  " + line for line in record.splitlines())
        )
        first = False
    out.write("[]\n" if first else "\n]\n")


def _print_rows(columns: list[str], rows: list[Any], *, vertical: bool) -> None:
    """A table when it fits the terminal, else (or with --vertical) one block per row."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    shown = [["NULL" if v is None else _shown(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in shown)]) for i, c in enumerate(columns)]
    # A rich table needs 3 characters per column (padding and rule) plus one.
    if not vertical and sum(widths) + 3 * len(columns) + 1 <= console.width:
        table = Table(*columns)
        for row in shown:
            table.add_row(*(Text(v) for v in row))
        console.print(table)
    else:
        label = max((len(c) for c in columns), default=0)
        for number, row in enumerate(shown, start=1):
            console.print(f"-- row {number}", style="dim")
            for column, value in zip(columns, row, strict=True):
                console.print(Text(f"{column.rjust(label)}: {value}"), soft_wrap=False)
    console.print(f"{len(rows)} row{'s' if len(rows) != 1 else ''}", style="dim")


@app.command("ls")
def list_command(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List the studies in the database with their trials by status."""
    from ablate.store import read_only_connection, read_study_summaries

    # Plain SQL on the driver's connection: no ORM, no pandas, no SQLAlchemy for a SQLite file.
    with read_only_connection(db) as opened:
        summaries = read_study_summaries(opened)
    if as_json:
        typer.echo(json.dumps(summaries, indent=2, default=_json_value))
        return
    if not summaries:
        typer.echo(f"no studies in {opened.display_url}")
        return
    # Plain aligned text: a rich table would truncate study names in an 80-column terminal.
    headers = [
        "study",
        "ver",
        "design",
        "trials",
        "done",
        "running",
        "queued",
        "failed",
        "pruned",
        "updated (UTC)",
    ]
    rows = [
        [r["name"], r["version"], r["design"], r["trials"], r["completed"], r["running"], r["queued"],
         r["failed"], r["pruned"], r["updated_at"].strftime("%Y-%m-%d %H:%M")]
        for r in summaries
    ]  # fmt: skip
    widths = [max(len(str(v)) for v in column) for column in zip(headers, *rows, strict=True)]
    for line in [headers, *rows]:
        cells = [
            str(v).ljust(w) if i in (0, 2, len(headers) - 1) else str(v).rjust(w)
            for i, (v, w) in enumerate(zip(line, widths, strict=True))
        ]
        typer.echo("  ".join(cells).rstrip())
    typer.echo(f"({opened.display_url})")


@app.command()
def export(
    study_arg: StudyArgument = None,
    study_opt: StudyOption = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="Output format: csv, parquet or json.")
    ] = "csv",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output file; default <study>.<format>; '-' writes csv/json to stdout.",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Export one row per trial (factor columns, final metrics, config) of a study."""
    from ablate.errors import UserInputError
    from ablate.store import load_trials

    study = study_name(study_arg, study_opt, "export")
    formats = ("csv", "parquet", "json")
    if fmt not in formats:
        raise UserInputError(f"export --format {fmt!r}; allowed: {', '.join(formats)}")
    to_stdout = out is not None and str(out) == "-"
    if to_stdout and fmt == "parquet":
        raise UserInputError("export --format parquet needs a file: pass --out FILE.parquet")
    target = None if to_stdout else (out or Path(f"{study}.{fmt}"))
    if target is not None:
        check_output_file(target, "export --out")
    frame = load_trials(study, db)
    for column in ("config", "extra_metrics"):
        frame[column] = [
            None if v is None else json.dumps(v, sort_keys=True) for v in frame[column]
        ]
    text = ""
    if fmt == "csv":
        text = frame.to_csv(index=False)
    elif fmt == "json":
        # json.dumps writes each float's shortest exact form; pandas' to_json stops at 15 digits.
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        text = json.dumps(records, indent=2, default=_json_value) + "\n"
    if target is None:
        typer.echo(text, nl=False)
        return
    try:
        if fmt == "parquet":
            frame.to_parquet(target, index=False)
        else:
            target.write_text(text)
    except OSError as e:
        raise UserInputError(f"export --out {target}: {e.strerror or e}") from None
    typer.echo(f"wrote {len(frame)} trials of {study!r} to {target}", err=True)


def check_output_file(path: Path, what: str) -> None:
    """Refuse, before any work, an output path that cannot be written as a file."""
    from ablate.errors import UserInputError

    if path.is_dir():
        raise UserInputError(f"{what} {path}: is a folder; give a file name")
    parent = path.parent
    if not parent.exists():
        raise UserInputError(f"{what} {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise UserInputError(f"{what} {path}: {parent} is not a folder")


def _shown(value: Any) -> str:
    """A value for the table view: floats (and decimals, as PostgreSQL's avg() returns) with at
    most 6 significant digits, so a column is not cut to '0.970383275…'; --csv and --json keep
    every digit."""
    from decimal import Decimal

    if isinstance(value, (float, Decimal)):
        return f"{float(value):.6g}"  # as a float: a Decimal writes 1.23457e+8, not e+08
    return _plain(value)


def _json_value(value: Any) -> Any:
    """What json.dumps cannot write itself: decimals (PostgreSQL's avg()) as numbers, times as ISO."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _plain(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
