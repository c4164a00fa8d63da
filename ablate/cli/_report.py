"""`ablate report`: the ablation table in the terminal, and the full report on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ablate.cli._app import app
from ablate.cli._options import DbOption, StudyArgument, StudyOption, study_name


@app.command()
def report(
    study_arg: StudyArgument = None,
    study_opt: StudyOption = None,
    db: DbOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder to write into; default reports/<study>.", show_default=False)
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Row to compare against, as factor=level pairs: --baseline image_size=128,augment=none. "
            "Default: the study's declared baseline, else the first declared level of each factor. "
            "'best' picks the best row after the fact (labelled post hoc: its p-values are optimistic).",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(help="Metric to rank and test on (val_acc, test_acc, val_loss, ...); default: the study's.", show_default=False),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            help="Table columns to show, comma-separated: factor names, settings, n, metric names (val_acc, "
            "train_acc, duration_s, ...), diff, ci, p, detectable, test. Default: all.",
            show_default=False,
        ),
    ] = None,
    pdf: Annotated[
        bool, typer.Option("--pdf/--no-pdf", help="Also write every plot as a vector PDF (for papers); PNGs (200 dpi) are always written.")
    ] = False,
    svg: Annotated[bool, typer.Option("--svg/--no-svg", help="Also write every plot as SVG.")] = False,
) -> None:
    """Write a study's report (index.html, report.md, table.md/.csv/.tex, plots) and print its table."""
    from rich.console import Console

    from ablate.report import (
        ReportOptions,
        load_report,
        render_report,
        rich_table,
        table_cells,
        table_notes,
    )

    study = study_name(study_arg, study_opt, "report")
    target = out if out is not None else Path("reports") / study
    check_output_folder(target, "report --out")
    options = ReportOptions(
        baseline=baseline, metric=metric, pdf=pdf, svg=svg, columns=columns.split(",") if columns is not None else None
    )
    # Everything a user can get wrong is checked here, before a file is written.
    result = load_report(study, db=db, options=options)
    cells = table_cells(result.table, result.columns)
    console = Console()
    title = f"{study}: {result.metric} ({result.direction})"
    console.print(rich_table(result.table, cells, title=title, width=console.width))
    for note in table_notes(result.table):
        console.print(note, style="dim", highlight=False)
    path = render_report(result, target, options)
    console.print(f"report: {path}", highlight=False, soft_wrap=True)


def check_output_folder(path: Path, what: str) -> None:
    """Refuse, before any work, an output folder that cannot be created or written into."""
    from ablate.errors import UserInputError

    if path.exists() and not path.is_dir():
        raise UserInputError(f"{what} {path}: is a file, not a folder")
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UserInputError(f"{what} {path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(f"{what} {path}: {existing} is not writable")
