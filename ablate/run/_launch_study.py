"""`ablate launch`: register and plan a study here, then start its workers on a scheduler.

Everything that can refuse does so before a trial is planned or a job submitted, each as one
line and exit code 2: the launcher's options, a SQLite database (nodes cannot share one), a
database this machine cannot reach, and the launcher's own check (SLURM answers, the partition
exists). The launch is recorded in the database next to the study, for ``ablate status`` and
``ablate launch --cancel``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.errors import AblateError, LaunchError
from ablate.run._launch import LaunchRequest, get_launcher

# Hosts only this machine can reach: a launch to them works on a one-machine cluster only.
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", ""}


@dataclass(frozen=True)
class Launched:
    study: str
    launcher: str
    job_id: str
    task_ids: list[str]
    log_dir: Path | None
    planned: int
    db: str  # masked
    notes: list[str]


def _refuse_sqlite_and_unreachable(db: str | None) -> tuple[str, Any]:
    """The database's full URL and an open store; LaunchError for SQLite or no answer."""
    from ablate.store import ResultStore, mask_url, resolve_url, unreachable_reason

    url = resolve_url(db)
    full = url.render_as_string(hide_password=False)
    if url.get_backend_name() == "sqlite":
        raise LaunchError(
            f"--db {mask_url(url)}: workers on other nodes cannot share a SQLite file safely (file "
            "locks do not hold over network filesystems); use PostgreSQL: --db postgresql://user@host/db"
        )
    reason = unreachable_reason(url)  # the driver's own words, before any query of the store
    if reason is not None:
        raise LaunchError(
            f"database {mask_url(url)} does not answer from here ({reason}); the cluster's nodes must reach it too"
        )
    try:
        store = ResultStore(full)
    except AblateError as e:
        raise LaunchError(str(e).strip().splitlines()[0]) from None
    return full, store


def launch_study(
    study_file: str | os.PathLike[str],
    launcher_name: str,
    options_text: str,
    *,
    study_name: str | None = None,
    db: str | None = None,
    runs_dir: Path | None = None,
    lease_s: float | None = None,
    new_version: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> Launched:
    """Check, register and plan the study, submit its workers, record the launch."""
    from ablate.run._dispatch import run_study
    from ablate.run._worker import WorkerOptions
    from ablate.store import mask_url, resolve_url
    from ablate.study import load_studies, select_study

    launcher = get_launcher(launcher_name)
    options = launcher.parse_options(options_text)
    # One study per launch: its name is what the jobs' workers claim from.
    study = select_study(load_studies(study_file), study_name, source=str(study_file))
    full_url, store = _refuse_sqlite_and_unreachable(db)
    launcher.check(options)
    runs = (runs_dir if runs_dir is not None else WorkerOptions().runs_dir).absolute()
    outcomes = run_study(
        study_file, study_name=study.name, db=full_url, runs_dir=runs, lease_s=lease_s,
        new_version=new_version, overrides=overrides, plan_only=True,
    )  # fmt: skip
    outcome = outcomes[0]
    request = LaunchRequest(
        study_file=Path(study_file).absolute(), study=outcome.study, db_url=full_url, runs_dir=runs,
        lease_s=lease_s,
    )  # fmt: skip
    ids = launcher.submit(request, options)
    job_id = launcher.job_id(ids)
    log_dir = launcher.log_dir(request, options)
    store.record_launch(outcome.study, launcher.name, job_id, ids, options, str(log_dir) if log_dir else None)
    notes = []
    host = resolve_url(full_url).host
    if (host or "") in _LOCAL_HOSTS:
        notes.append(
            f"note: the database host is {host or 'a local socket'}: only workers on this machine can "
            "reach it; give nodes a host name they resolve"
        )
    return Launched(
        study=outcome.study, launcher=launcher.name, job_id=job_id, task_ids=ids, log_dir=log_dir,
        planned=outcome.planned, db=mask_url(full_url), notes=notes,
    )  # fmt: skip


def cancel_launches(study: str, db: str | None = None) -> list[tuple[str, str]]:
    """Cancel every recorded launch of the study not cancelled yet; (launcher, job id) of each."""
    from ablate.store import ResultStore

    store = ResultStore(db)
    cancelled = []
    for launch in store.launches(study, active_only=True):
        get_launcher(launch.launcher).cancel(launch.task_ids, launch.options)
        store.mark_launch_cancelled(launch.launch_id)
        cancelled.append((launch.launcher, launch.job_id))
    return cancelled
