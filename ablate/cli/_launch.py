"""`ablate launch`: start a study's workers on a cluster's scheduler (SLURM, Ray) and return."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from ablate.cli._app import app
from ablate.cli._options import DbOption, RunsDir, SetOption, parse_overrides
from ablate.cli._run import LeaseS
from ablate.errors import LaunchError


@app.command()
def launch(
    study_file: Annotated[
        Path | None, typer.Argument(help="Study file, e.g. studies/digits_quick.py.", show_default=False)
    ] = None,
    slurm: Annotated[
        str | None,
        typer.Option(
            "--slurm", metavar="KEY=VALUE,...",
            help="Submit a SLURM job array of workers through submitit. Keys: partition, tasks, "
            "gpus_per_task, cpus_per_task, time (minutes or HH:MM:SS), account, mem, "
            "sbatch (OPTION:VALUE;...), folder.",
            show_default=False,
        ),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray", metavar="KEY=VALUE,...", help="Run the workers as Ray actors on a Ray cluster. Keys: address (HOST:PORT or auto; "
            "default: a local cluster), workers, gpus_per_worker, cpus_per_worker, namespace.",
            show_default=False,
        ),
    ] = None,
    cancel: Annotated[
        str | None,
        typer.Option("--cancel", metavar="STUDY", help="Cancel every job launched for this study.", show_default=False),
    ] = None,
    study: Annotated[str | None, typer.Option("--study", "-s", help="Which study, when the file defines several.")] = None,
    db: DbOption = None,
    runs_dir: RunsDir = None,
    lease_s: LeaseS = None,
    new_version: Annotated[bool, typer.Option("--new-version", help="Accept a changed `base` as a new version of the study.")] = False,
    set_fields: SetOption = None,
) -> None:
    """Plan a study into its PostgreSQL database and start its workers on a scheduler; returns at once.

    The workers claim trials exactly as `ablate worker` does; a preempted or cancelled worker
    hands its trial back and it resumes from its last checkpoint. Watch them with `ablate status`,
    stop them with `ablate launch --cancel STUDY`. The runs folder must be on a filesystem every
    node sees at the same path. Exit codes: 0 submitted; 2 refused (nothing planned or claimed).
    """
    from ablate.run import cancel_launches, launch_study

    if cancel is not None:
        if study_file is not None or slurm is not None or ray is not None:
            raise LaunchError("--cancel STUDY takes no study file and no --slurm/--ray")
        cancelled = cancel_launches(cancel, db=db)
        if not cancelled:
            typer.echo(f"{cancel}: no launch left to cancel.")
        for launcher, job_id in cancelled:
            typer.echo(f"{cancel}: cancelled {launcher} job {job_id}.")
        return
    chosen = [(name, text) for name, text in (("slurm", slurm), ("ray", ray)) if text is not None]
    if study_file is None:
        raise LaunchError("give the study file: ablate launch STUDY_FILE --slurm KEY=VALUE,...")
    if len(chosen) != 1:
        raise LaunchError("give exactly one launcher: --slurm KEY=VALUE,... or --ray KEY=VALUE,...")
    name, text = chosen[0]
    launched = launch_study(
        study_file, name, text, study_name=study, db=db, runs_dir=runs_dir, lease_s=lease_s,
        new_version=new_version, overrides=parse_overrides(set_fields),
    )  # fmt: skip
    for note in launched.notes:
        typer.secho(note, err=True, fg="yellow")
    tasks = ", ".join(launched.task_ids)
    typer.echo(f"{launched.study}: submitted {launched.launcher} job {launched.job_id} ({len(launched.task_ids)} task(s): {tasks})")
    if launched.log_dir is not None:
        typer.echo(f"  logs:   {launched.log_dir}")
    db_arg = shlex.quote(launched.db)  # the URL's ? and & are the shell's otherwise
    typer.echo(f"  watch:  ablate status {launched.study} --db {db_arg}")
    typer.echo(f"  cancel: ablate launch --cancel {launched.study} --db {db_arg}")
