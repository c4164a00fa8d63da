"""`ablate plan`, `ablate fields`, `ablate models`: inspecting studies before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ablate.cli._app import app
from ablate.cli._options import DbOption, RunsDir, SetOption, parse_overrides

StudyFile = Annotated[Path, typer.Argument(help="Study file, e.g. studies/digits_quick.py", show_default=False)]
StudyName = Annotated[
    str | None, typer.Option("--study", "-s", help="Which study, when the file defines several.")
]


@app.command()
def plan(
    study_file: StudyFile,
    study: StudyName = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON for scripts.")] = False,
    set_fields: SetOption = None,
    db: DbOption = None,
    runs_dir: RunsDir = None,
) -> None:
    """Show the trials a study expands to, after validating every one of them as `ablate run` does.

    With --db (or $ABLATE_DB) it also shows which planned trials that database already has, by
    status; without either, the plan reads no database, except to check a warm_start's source
    trial (in ./ablate.db, its checkpoint under --runs-dir), as `ablate run` would.
    """
    from ablate.run import WorkerOptions, plan_trials, plan_warm_starts
    from ablate.study import (
        describe_overrides,
        iter_level_counts,
        load_studies,
        select_study,
        with_overrides,
    )

    studies = load_studies(study_file)
    chosen = [select_study(studies, study, source=str(study_file))] if study else studies
    overrides = parse_overrides(set_fields)
    chosen = [with_overrides(s, overrides) for s in chosen]
    # The pipeline of `ablate run`, but a dataset absent from this machine is a line, not an error.
    planned = [plan_trials(s, missing_data_ok=True) for s in chosen]
    # A warm start's source trial and checkpoint are checked in the database `run` would use.
    planned = plan_warm_starts(planned, db=db, runs_dir=runs_dir or WorkerOptions().runs_dir, smoke=False)
    payload = [(p.study, p.specs, _in_database(db, p.study.name, p.specs) if db else None) for p in planned]
    data_lines = {p.study.name: p.data for p in planned}
    notes = {p.study.name: p.notes for p in planned}
    counts = {p.study.name: p.planned for p in planned}
    if as_json:
        out = []
        for s, specs, stored in payload:
            definition = s.definition()
            item: dict[str, Any] = {
                "study": s.name,
                "design": s.design,
                "metric": s.metric,
                "direction": s.direction,
                "seeds": list(s.seeds),
                "n_trials": counts[s.name],
                "base": definition["base"],
                "factors": definition["factors"],  # the form the database stores: lists, not sets
                "data": data_lines[s.name],
                "notes": notes[s.name],
                "trials": [
                    {"number": t.number, "params": t.params, "seed": t.seed, "config_hash": t.config_hash}
                    | ({"status": stored.get((t.config_hash, t.seed))} if stored is not None else {})
                    for t in specs
                ],
                "level_counts": {
                    f: [{"level": lv, "trials": n} for lv, n in c.items()]
                    for f, c in iter_level_counts(specs).items()
                },
            }
            out.append(item)
        typer.echo(json.dumps(out if len(out) > 1 else out[0], indent=2, default=str))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    for s, specs, stored in payload:
        console.print(f"[bold]{escape(s.name)}[/bold]  ({escape(s.source)}, design {s.design}, metric {s.metric}, {s.direction})")
        if overrides:
            console.print(f"base with {escape(describe_overrides(overrides))}")
        if s.strategy.adaptive:
            table = Table("factor", "space")
            for name, space in s.spaces.items():
                table.add_row(name, escape(space.describe()))
            console.print(table)
            for line in data_lines[s.name]:
                console.print(line, highlight=False)
            console.print(
                f"{s.strategy.configurations(s)} points sampled by Optuna ({s.design}) x {len(s.seeds)} seed(s) = "
                f"{counts[s.name]} trials"
            )
            for line in notes[s.name]:
                console.print(escape(line), highlight=False)
            continue
        for line in data_lines[s.name]:
            console.print(line, highlight=False, style="yellow" if line.startswith("data not checked") else None)
        columns = ["#", *s.spaces, "seed"] + (["in database"] if stored is not None else [])
        table = Table(*columns)
        for t in specs:
            cells = [str(t.number), *(escape(_cell(t.params[f])) for f in s.spaces), str(t.seed)]
            if stored is not None:
                cells.append(stored.get((t.config_hash, t.seed)) or "new")
            table.add_row(*cells)
        console.print(table)
        configs = len({t.config_hash for t in specs})
        console.print(f"{len(specs)} trials: {configs} configurations x {len(s.seeds)} seed(s)")
        for factor, counts in iter_level_counts(specs).items():
            levels = ", ".join(f"{_cell(lv)}: {n}" for lv, n in counts.items())
            console.print(f"  {factor}: {escape(levels)}")
        for line in notes[s.name]:
            console.print(escape(line), highlight=False)
        if stored is not None:
            new = sum(1 for t in specs if (t.config_hash, t.seed) not in stored)
            console.print(f"{new} new, {len(specs) - new} already in the database")


def _in_database(db: str, study: str, specs: Any) -> dict[tuple[str, int], str]:
    """(config hash, seed) -> status of the study's trials already in ``db`` (empty if none)."""
    from ablate.errors import StudyError
    from ablate.store import ResultStore

    with ResultStore(db, read_only=True) as store:
        try:
            trials = store.load_trials(study)
        except StudyError:  # not registered there yet: every trial is new
            return {}
    return {(str(h), int(seed)): str(st) for h, seed, st in zip(trials["config_hash"], trials["seed"], trials["status"], strict=True)}


def _cell(value: Any) -> str:
    from ablate.study import describe_ops

    return describe_ops(value) or str(value)


@app.command()
def fields() -> None:
    """List every trial configuration field with its type, default, unit and meaning."""
    import dataclasses

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ablate.study import FIELD_UNITS, TrialConfig

    table = Table("field", "type", "default", "unit", "meaning")
    for f in dataclasses.fields(TrialConfig):
        factory: Any = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory()
        # Text, not markup: docs such as "conv, act, [bn], max-pool" hold square brackets.
        table.add_row(
            f.name, Text(str(f.type)), Text(repr(default)), FIELD_UNITS.get(f.name, ""),
            Text(str(f.metadata["doc"])),
        )
    Console().print(table)


@app.command()
def models(
    pattern: Annotated[str, typer.Argument(help="Shell-style wildcard, e.g. 'resnet*' or 'tv:*'.")] = "*",
) -> None:
    """List the model names a study may use (cnn, timm, tv:<torchvision>)."""
    from ablate.train import list_model_names

    names = list_model_names(pattern)
    for name in names:
        typer.echo(name)
    typer.echo(f"{len(names)} models", err=True)
