"""`ablate report`: the ablation table in the terminal, and the full report on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ablate.cli._app import app
from ablate.cli._options import DbOption, study_name

# Several names (arguments or repeated --study) compare studies; one is the study's own report.
StudiesArgument = Annotated[
    list[str] | None,
    typer.Argument(metavar="STUDY", help="The study's name, e.g. digits_quick; two or more compare studies "
                   "(the first is the reference).", show_default=False),
]
StudiesOption = Annotated[
    list[str] | None,
    typer.Option("--study", "-s", metavar="NAME", help="A study's name, as an option (same as the argument; "
                 "repeat it to compare studies).", show_default=False),
]


@app.command()
def report(
    study_arg: StudiesArgument = None,
    study_opt: StudiesOption = None,
    db: DbOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder to write into; default reports/<study> (compared: reports/A_vs_B).", show_default=False),
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
    """Write a study's report (index.html, report.md, table.md/.csv/.tex, plots) and print its table.

    With two or more studies (ablate report A B, or --study A --study B): one comparison of them
    on the same data and metric in reports/A_vs_B (the first is the reference)."""
    from rich.console import Console

    names = [*(study_arg or []), *(study_opt or [])]
    if len(study_arg or []) == 1 and len(study_opt or []) == 1 and study_arg == study_opt:
        names = names[:1]  # `report A --study A`: one study, as before
    if len(names) > 1:
        given = [flag for flag, value in (("--baseline", baseline), ("--metric", metric), ("--columns", columns))
                 if value is not None]
        if given:
            from ablate.errors import UserInputError

            raise UserInputError(f"{given[0]} applies to one study's report; a comparison selects each study's best "
                                 "configuration on the studies' shared metric")
        _compare(names, db, out, pdf=pdf, svg=svg)
        return

    from ablate.report import (
        ReportOptions,
        load_report,
        render_report,
        rich_table,
        table_cells,
        table_notes,
    )

    study = study_name(names[0] if names else None, None, "report")
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


def _compare(names: list[str], db: str | None, out: Path | None, *, pdf: bool, svg: bool) -> None:
    from rich.console import Console

    from ablate.report import (
        ReportOptions,
        cells_rich_table,
        check_study_names,
        comparison_cells,
        comparison_folder,
        comparison_notes,
        comparison_verdicts,
        load_comparison,
        render_comparison,
    )

    check_study_names(names)
    target = out if out is not None else Path("reports") / comparison_folder(names)
    check_output_folder(target, "report --out")
    comparison = load_comparison(names, db=db)  # every refusal before a file is written
    cells = comparison_cells(comparison)
    console = Console()
    console.print(cells_rich_table(cells, title=f"{' vs '.join(names)}: {comparison.metric} ({comparison.direction})"))
    if len(cells.rows) > 40:
        console.print(f"40 of {len(cells.rows)} rows shown; the full table is in table.md and index.html.", style="dim")
    for line in comparison_notes(comparison):
        console.print(line, style="dim", highlight=False)
    for line in comparison_verdicts(comparison):
        console.print(line, highlight=False)
    path = render_comparison(comparison, target, ReportOptions(pdf=pdf, svg=svg))
    for note in comparison.notes:
        console.print(note, style="dim", highlight=False)
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
