"""The `ablate` command line: a thin Typer app, each command calling one library function.

Commands live in one module per stage (``_plan``, ``_store``, ``_run``, ``_report``), each
registering on :data:`app`. Heavy libraries (torch, pandas, SQLAlchemy) are imported inside the
commands, so ``ablate --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from ablate.errors import AblateError


class _AblateGroup(TyperGroup):
    """Turns an :class:`AblateError` into one line on stderr and its exit code, no traceback."""

    # Typer vendors its own click; the context's type is whatever TyperGroup.invoke takes.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AblateError as e:
            typer.secho(f"error: {e}", err=True, fg="red")
            raise typer.Exit(e.exit_code) from None


app = typer.Typer(
    cls=_AblateGroup,
    name="ablate",
    help="Run deep-learning ablation studies end to end and keep every result in SQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _register_commands() -> None:
    from ablate.cli import (
        _plan,  # noqa: F401
        _report,  # noqa: F401
        _run,  # noqa: F401
        _store,  # noqa: F401
    )


_register_commands()


def main() -> None:
    app()
