"""`ablate dashboard`: optuna-dashboard over the result database, live in the browser."""

from __future__ import annotations

from typing import Annotated

import typer

from ablate.cli._app import app
from ablate.cli._options import DbOption, StudyArgument, StudyOption


@app.command()
def dashboard(
    study_arg: StudyArgument = None,
    study_opt: StudyOption = None,
    db: DbOption = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. The dashboard has no login: anything but 127.0.0.1 "
            "shows the results to whoever reaches this machine.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
) -> None:
    """Watch studies live in optuna-dashboard: curves, history, importance, the trial table.

    Reads the database on every page request and never writes it (notes typed in the
    dashboard are kept in memory until it stops). With STUDY, only that study is shown.
    """
    from ablate.cli._options import study_name
    from ablate.dashboard import serve_dashboard

    study = study_name(study_arg, study_opt, "dashboard") if (study_arg or study_opt) else None

    def ready(url: str) -> None:
        typer.echo(f"optuna-dashboard at {url} (Ctrl+C stops it)", err=False)

    serve_dashboard(db, study=study, host=host, port=port, ready=ready)
