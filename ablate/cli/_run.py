"""`ablate run`, `ablate worker`, `ablate status`, `ablate retry`: turning studies into results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ablate.cli._app import app
from ablate.cli._options import (
    DbOption,
    RunsDir,
    SetOption,
    StudyArgument,
    StudyOption,
    parse_overrides,
    study_name,
)

MaxTrials = Annotated[
    int | None, typer.Option("--max-trials", min=1, help="Stop after this many trials (this run, all workers).")
]
Budget = Annotated[
    float | None,
    typer.Option("--budget-hours", min=0.0, help="Claim no trial whose estimated end is past this budget."),
]
LeaseS = Annotated[
    float | None,
    typer.Option(
        "--lease-s", envvar="ABLATE_LEASE_S", min=1.0,
        help="Seconds a worker holds a trial between heartbeats (default 60): a worker silent for "
        "this long loses its trial to another, which resumes it from its checkpoint.",
    ),
]


def _report_hint(study: str, db: str | None) -> str:
    db_part = f" --db {db}" if db else ""
    return f"ablate report {study}{db_part}"


def _why_stopped(stopped_by: str) -> str:
    """The worker's reason as a sentence: "no trial is left to run", "stopped at --max-trials 3"."""
    if stopped_by == "nothing left":
        return "no trial is left to run"
    if stopped_by.startswith("--"):
        return f"stopped at {stopped_by}"
    return f"stopped by the {stopped_by}" if stopped_by.startswith("budget") else f"stopped by {stopped_by}"


@app.command()
def run(
    study_file: Annotated[Path, typer.Argument(help="Study file, e.g. studies/digits_quick.py.", show_default=False)],
    study: Annotated[str | None, typer.Option("--study", "-s", help="Which study, when the file defines several.")] = None,
    db: DbOption = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker processes on this machine (one per GPU).")] = 1,
    smoke: Annotated[bool, typer.Option("--smoke", help="Every trial for one short epoch on synthetic data of the same shape, into <study>_smoke.")] = False,
    max_trials: MaxTrials = None,
    budget_hours: Budget = None,
    new_version: Annotated[bool, typer.Option("--new-version", help="Accept a changed `base` as a new version of the study.")] = False,
    wandb: Annotated[str | None, typer.Option("--wandb", help="Log each trial to this W&B project (offline without an API key).")] = None,
    runs_dir: RunsDir = None,
    lease_s: LeaseS = None,
    set_fields: SetOption = None,
) -> None:
    """Plan a study's trials into the database and run every one exactly once (resumable).

    Exit codes: 0 every trial finished; 1 some trials failed; 2 configuration error; 3 database
    or disk fault (trials went back to the queue); 130/143 stopped by SIGINT/SIGTERM.
    """
    from ablate.run import run_study
    from ablate.store import mask_url

    overrides = parse_overrides(set_fields)
    try:
        outcomes = run_study(
            study_file, study_name=study, db=db, workers=workers, smoke=smoke, max_trials=max_trials,
            budget_hours=budget_hours, new_version=new_version, wandb_project=wandb, runs_dir=runs_dir,
            lease_s=lease_s,
            overrides=overrides,
        )
    except KeyboardInterrupt as e:
        _stopped(e, "run the same command again to resume it from its last checkpoint")
    failed = 0
    for o in outcomes:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(o.counts.items()))
        typer.echo(f"{o.study}: {counts}; {_why_stopped(o.summary.stopped_by)}.")
        typer.echo(f"  results: {o.db}  (ablate sql, ablate status {o.study})")
        typer.echo(f"  report:  {_report_hint(o.study, mask_url(db) if db else None)}")
        if o.counts.get("failed"):
            failed += o.counts["failed"]
            typer.secho(
                f"{o.study}: {o.counts['failed']} trial(s) failed: see `ablate status {o.study}`, "
                f"re-queue with `ablate retry {o.study}`",
                err=True, fg="red",
            )
    if failed:
        raise typer.Exit(1)


def _stopped(error: KeyboardInterrupt, then: str) -> NoReturn:
    from ablate.run import stop_exit_code

    code = stop_exit_code(error)
    name = "SIGTERM" if code == 143 else "SIGINT" if code == 130 else f"signal {code - 128}"
    typer.secho(f"stopped by {name}: the running trial went back to the queue; {then}", err=True, fg="yellow")
    raise typer.Exit(code) from None


@app.command()
def worker(
    study_file: Annotated[Path | None, typer.Argument(help="The study file; needed only when the study uses train= or constraints.")] = None,
    study: Annotated[str, typer.Option("--study", "-s", help="Name of the study in the database.", show_default=False)] = ...,  # type: ignore[assignment]
    db: DbOption = None,
    max_trials: MaxTrials = None,
    budget_hours: Budget = None,
    runs_dir: RunsDir = None,
    lease_s: LeaseS = None,
) -> None:
    """Join a study's run from any machine: claim and run trials until none is left.

    Exit codes: 0 done; 2 configuration error; 3 database or disk fault (its trial went back to
    the queue); 130/143 stopped by SIGINT/SIGTERM (likewise).
    """
    from ablate.run import WorkerOptions, load_study_for_worker, make_progress, run_worker
    from ablate.store import ResultStore
    from ablate.study import study_from_definition

    store = ResultStore(db)
    info = store.load_study(study)
    counts = store.status_counts(study)
    total = sum(counts.values())
    stored = study_from_definition(info.definition)
    if stored.strategy.adaptive:
        total = max(total, stored.strategy.planned_trials(stored))
    done = sum(counts.get(s, 0) for s in ("completed", "failed", "pruned"))
    smoke = study.endswith("_smoke")
    the_study = load_study_for_worker(store, str(study_file) if study_file else None, study, smoke)
    options = WorkerOptions(
        max_trials=max_trials, budget_s=budget_hours * 3600 if budget_hours is not None else None, smoke=smoke,
    )
    if runs_dir is not None:
        options.runs_dir = runs_dir
    if lease_s is not None:
        options.lease_s = lease_s
    progress = make_progress(total=total, done=done)
    try:
        summary = run_worker(store, the_study, options, progress=progress)
    except KeyboardInterrupt as e:
        progress.close()
        _stopped(e, "any worker resumes it from its last checkpoint")
    finally:
        progress.close()
    typer.echo(
        f"worker {options.worker}: {summary.completed} completed, {summary.failed} failed, "
        f"{summary.pruned} pruned; {_why_stopped(summary.stopped_by)} (study {info.name})."
    )
    if summary.errors:
        raise typer.Exit(2)


@app.command()
def status(
    study_arg: StudyArgument = None,
    study: StudyOption = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON for scripts.")] = False,
) -> None:
    """Counts by status, running trials and their workers, failures, time left."""
    from ablate.run import format_duration, study_status

    name = study_name(study_arg, study, "status")
    s = study_status(db, name)
    order = ["queued", "running", "completed", "failed", "pruned"]
    if as_json:
        import dataclasses
        import json

        payload = dataclasses.asdict(s)
        payload["counts"] = {k: s.counts.get(k, 0) for k in order}
        payload["failures"] = [{"number": n, "error": line} for n, line in s.failures]
        typer.echo(json.dumps(payload, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{escape(s.study)}[/bold]: " + ", ".join(f"{s.counts.get(k, 0)} {k}" for k in order))
    if s.running:
        launched = any(r.job for r in s.running)
        table = Table("trial", "seed", "worker", *(["job"] if launched else []), "epoch", "last heartbeat")
        for r in s.running:
            epoch = f"{r.epoch or 0}/{r.epochs}" if r.epochs else str(r.epoch or 0)
            age = f"{r.lease_age_s:.0f} s ago" if r.lease_age_s is not None else "-"
            job = [escape(r.job or "-")] if launched else []
            table.add_row(str(r.number), str(r.seed), escape(r.worker or "-"), *job, epoch, age)
        console.print(table)
    for launch in s.launches:
        state = "cancelled" if launch.cancelled else "submitted"
        console.print(
            f"{launch.launcher} job {escape(launch.job_id)} ({len(launch.task_ids)} task(s): "
            f"{escape(', '.join(launch.task_ids))}), {state} {launch.submitted_at or ''}".rstrip(),
            highlight=False,
        )
    for number, line in s.failures:
        console.print(f"[red]trial {number} failed[/red]: {escape(line)}", highlight=False)
    if s.failures:
        console.print(f"re-queue them with: ablate retry {s.study} --failed", highlight=False)
    if s.eta_s is not None:
        console.print(f"{format_duration(s.eta_s)} left at the pace of finished trials", highlight=False)


@app.command()
def retry(
    study_arg: StudyArgument = None,
    study: StudyOption = None,
    db: DbOption = None,
    failed: Annotated[bool, typer.Option("--failed/--no-failed", help="Re-queue failed trials.")] = True,
    pruned: Annotated[bool, typer.Option("--pruned", help="Re-queue pruned trials too.")] = False,
) -> None:
    """Put failed (and optionally pruned) trials back in the queue for the next run or worker."""
    from ablate.run import retry_trials

    name = study_name(study_arg, study, "retry")
    n = retry_trials(name, db=db, failed=failed, pruned=pruned)
    typer.echo(f"{name}: {n} trial(s) re-queued; run them with `ablate run` or `ablate worker --study {name}`.")
