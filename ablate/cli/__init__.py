"""The `ablate` command line: a thin Typer app, each command calling one library function.

Commands live in one module per stage (``_plan``, ``_store``, ``_run``, ``_report``), each
registering on :data:`app` (``_app``); options shared by several commands are in ``_options``. Heavy
libraries (torch, pandas, SQLAlchemy, rich) are imported inside the commands, so ``ablate -h``,
``ablate sql`` and ``ablate status`` start fast (``bench/startup.py`` measures it).
"""

from __future__ import annotations

import sys

# Each command module registers its commands on the app when imported.
from ablate.cli import _cache, _dashboard, _launch, _plan, _report, _run, _store  # noqa: F401
from ablate.cli._app import WORKFLOW_ORDER, ReaderGoneTolerantStream, app

__all__ = ["WORKFLOW_ORDER", "app", "main"]


def main() -> None:
    if not isinstance(sys.stdout, ReaderGoneTolerantStream) and hasattr(sys.stdout, "fileno"):
        sys.stdout = ReaderGoneTolerantStream(sys.stdout)
    app(prog_name="ablate")
