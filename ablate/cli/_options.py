"""Options several commands share, worded once: the database, the study, ``--set`` overrides."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ablate.errors import StudyError

# The one --db of every command (plan's docstring says what it adds to a plan).
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="ABLATE_DB",
        metavar="URL",
        help="Result database: an SQLAlchemy URL (sqlite:///file.db, postgresql://user@host/db) or "
        "a SQLite file path. Default: $ABLATE_DB, else ./ablate.db.",
        show_default=False,
    ),
]

RunsDir = Annotated[
    Path | None, typer.Option("--runs-dir", envvar="ABLATE_RUNS", help="Checkpoints and artifacts (default ./runs).")
]

StudyArgument = Annotated[
    str | None,
    typer.Argument(metavar="STUDY", help="Name of the study in the database, e.g. digits_quick.", show_default=False),
]
StudyOption = Annotated[
    str | None,
    typer.Option(
        "--study", "-s", metavar="NAME", help="The study's name, as an option (same as the argument).",
        show_default=False,
    ),
]

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="FIELD=VALUE",
        help="Override a base field for this run, e.g. --set epochs=2 --set lr=0.01 (repeatable; "
        "checked like the study file; a changed base becomes a new study version).",
        show_default=False,
    ),
]


def study_name(argument: str | None, option: str | None, command: str) -> str:
    """The study named by the positional argument or by --study (either; not two different ones)."""
    if argument and option and argument != option:
        raise StudyError(f"two studies given: {argument!r} and --study {option!r}; give one")
    name = argument or option
    if not name:
        raise StudyError(f"which study? ablate {command} STUDY (see `ablate ls`)")
    return name


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["epochs=2", "model=resnet18"]`` -> ``{"epochs": 2, "model": "resnet18"}``.

    Values are read as JSON or Python literals (2, 0.01, true, [30, 60], None), anything else as
    a string; the study then checks each field like a value written in the file.
    """
    overrides: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise StudyError(f"--set {pair!r}: expected FIELD=VALUE, e.g. --set epochs=2")
        overrides[key] = _literal(text.strip())
    return overrides


def _literal(text: str) -> Any:
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError):
            continue
    return text
