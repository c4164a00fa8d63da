"""The Typer app every command registers on, with ablate's conventions: errors as one line and
an exit code, commands listed in workflow order, ``--version``, stdout that survives ``| head``."""


from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from ablate.errors import AblateError
from ablate.version import __version__

# The order a user meets the commands in: declare, run, watch, read; then the reference ones.
WORKFLOW_ORDER = (
    "plan", "run", "worker", "launch", "status", "dashboard", "retry", "report", "sql", "ls", "export", "db",
    "fields", "models", "cache",
)  # fmt: skip


# Click's exception base, whether Typer vendors Click (recent versions) or depends on it.
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


class _AblateGroup(TyperGroup):
    """ablate's conventions on top of Typer: errors as one line, commands in workflow order."""

    # Typer vendors its own click; the context's type is whatever TyperGroup.invoke takes.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AblateError as e:
            typer.secho(f"error: {e}", err=True, fg="red")
            raise typer.Exit(e.exit_code) from None

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Click's usage errors (unknown option, missing argument) as one line and exit code 2."""
        standalone_mode = kwargs.get("standalone_mode", True)
        kwargs.setdefault("prog_name", "ablate")
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except _ClickException as e:
            if not standalone_mode:
                raise
            error: Any = e
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `ablate`: the help, as Click does
                error.show()
                sys.exit(2)
            command = getattr(getattr(e, "ctx", None), "command_path", None) or "ablate"
            message = str(error.format_message()).rstrip(".")
            typer.secho(f"error: {message} (see `{command} -h`)", err=True, fg="red")
            sys.exit(int(getattr(e, "exit_code", 2)))
        except typer.Abort:
            if not standalone_mode:
                raise
            typer.secho("aborted", err=True, fg="yellow")
            sys.exit(1)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

    def list_commands(self, ctx: Any) -> list[str]:
        names = list(self.commands)
        return sorted(names, key=lambda n: WORKFLOW_ORDER.index(n) if n in WORKFLOW_ORDER else len(names))

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # Click cuts each summary to the terminal width with "..."; wrap the whole first
        # paragraph of the docstring instead.
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, " ".join((command.help or "").split("\n\n")[0].split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"ablate {__version__}")
        raise typer.Exit()


app = typer.Typer(
    cls=_AblateGroup,
    name="ablate",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print ablate's version and exit."
    ),
) -> None:
    """Run deep-learning ablation studies end to end and keep every result in SQL.

    A session: ablate plan FILE, ablate run FILE, ablate status STUDY, ablate report STUDY.
    """


class ReaderGoneTolerantStream:
    """stdout that keeps working after its reader exits (``ablate report ... | head``).

    Without it the first write after ``head`` has quit raises BrokenPipeError in the middle of
    a command, before the report files are written; with it the rest of the output is dropped
    and the command finishes its work.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._reader_gone = False

    def write(self, text: str) -> int:
        if not self._reader_gone:
            try:
                return int(self._stream.write(text))
            except BrokenPipeError:
                self._drop_output()
        return len(text)

    def flush(self) -> None:
        if not self._reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop_output()

    def _drop_output(self) -> None:
        self._reader_gone = True
        # The interpreter flushes the real stdout once more at exit: let that go to /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
