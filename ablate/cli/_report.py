"""`ablate report`: the ablation table in the terminal, and the full report on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ablate.cli import app
from ablate.cli._store import DbOption


@app.command()
def report(
    study: Annotated[str, typer.Option("--study", "-s", help="Name of the study in the database.", show_default=False)],
    db: DbOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder to write into; default reports/<study>.", show_default=False)
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Row to compare against, as factor=level pairs: --baseline image_size=128,augment=none. "
            "Default: the OFAT baseline, else the best row.",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(help="Metric to rank and test on (val_acc, test_acc, val_loss, ...); default: the study's.", show_default=False),
    ] = None,
    svg: Annotated[
        bool, typer.Option("--svg/--no-svg", help="Also write every plot as SVG; PNG (200 dpi) and PDF are always written.")
    ] = False,
) -> None:
    """Write a study's report (index.html, report.md, table.md/.csv/.tex, plots) and print its table."""
    from rich.console import Console

    from ablate.report import load_report, render_report, rich_table
    from ablate.report._tables import table_notes

    result = load_report(study, db=db, baseline=baseline, metric=metric)
    console = Console()
    console.print(rich_table(result.table, title=f"{study}: {result.metric} ({result.direction})", width=console.width))
    for note in table_notes(result.table):
        console.print(note, style="dim", highlight=False)
    path = render_report(result, out if out is not None else Path("reports") / study, svg=svg)
    console.print(f"report: {path}", highlight=False, soft_wrap=True)
