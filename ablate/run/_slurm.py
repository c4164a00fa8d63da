"""SLURM through submitit: ``ablate launch STUDY_FILE --slurm partition=gpu,tasks=8,gpus_per_task=4``.

One launch is one job array of ``tasks`` tasks. Each task runs one ``ablate worker`` process per
GPU SLURM gave it (``CUDA_VISIBLE_DEVICES``; on a node without GPUs, one worker), against the
study's database; the claim protocol decides who runs what.

The workers are subprocesses rather than code run inside submitit's Python, because

- a worker process per GPU needs ``CUDA_VISIBLE_DEVICES`` set before CUDA is first touched;
- each worker hands its trial back on SIGTERM itself (``ablate worker``'s own handler), while
  submitit's Python keeps its own handlers (it ignores SIGTERM and checkpoints on SIGUSR2);
- a worker is then exactly the process a user starts by hand, with the same exit codes.

Stopping: ``scancel`` (and a node going down in an orderly way) sends SIGTERM to every process
of the task, so each worker hands its trial back and exits; the trial resumes from its last
epoch checkpoint in whichever worker claims it next. Preemption and the time limit arrive as
SIGUSR2 (``#SBATCH --signal=USR2@90``, submitit's default) at submitit's Python, which calls
:meth:`ablate.run._slurm_task.WorkerTask.checkpoint`: that hands the trials back (SIGTERM to the workers, which ignore
SIGUSR2 themselves), and submitit requeues the same task, whose new workers claim again.

submitit is imported inside the methods only: importing ablate never imports it.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from ablate.errors import LaunchError
from ablate.run._launch import Launcher, LaunchRequest, register_launcher

# A task requeued after this many time limits stops being requeued (preemptions do not count):
# each requeue makes progress, as trials resume from their checkpoints.
MAX_TIMEOUTS = 100
DEFAULT_TIME_MIN = 60
SLURM_ANSWER_S = 20.0


def parse_minutes(text: str) -> int:
    """``"90"`` (minutes), ``"1:30:00"``, ``"30:00"`` (MM:SS), ``"2-00:00:00"`` as whole minutes."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise LaunchError(f"--slurm time={text!r}: give minutes (90) or HH:MM:SS (1:30:00)")
    days, a, b, c = match.groups()
    if b is None:  # minutes, or D-HH
        minutes = int(a) * (60 if days else 1)
        seconds = 0
    elif c is None:  # MM:SS, or D-HH:MM
        minutes, seconds = (int(a) * 60 + int(b), 0) if days else (int(a), int(b))
    else:
        minutes, seconds = int(a) * 60 + int(b), int(c)
    total = (int(days or 0) * 24 * 60) + minutes + (1 if seconds else 0)
    if total < 1:
        raise LaunchError(f"--slurm time={text!r}: the time limit must be at least one minute")
    return total


def _int(options: Mapping[str, str], key: str, default: int | None, minimum: int) -> int | None:
    if key not in options:
        return default
    try:
        value = int(options[key])
    except ValueError:
        raise LaunchError(f"--slurm {key}={options[key]!r}: not a whole number") from None
    if value < minimum:
        raise LaunchError(f"--slurm {key}={value}: must be at least {minimum}")
    return value


def _sbatch_extra(text: str) -> dict[str, str | bool]:
    """``"qos:high;constraint:a100;exclusive"`` as sbatch options (a bare name is a flag)."""
    extra: dict[str, str | bool] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        key, sep, value = part.partition(":")
        key = key.strip().lstrip("-")
        if not key:
            raise LaunchError(f"--slurm sbatch: {part!r} is not OPTION:VALUE (e.g. sbatch=qos:high;constraint:a100)")
        extra[key] = value.strip() if sep else True
    return extra


_CHECK = ": is slurmctld running, and does $SLURM_CONF (or /etc/slurm/slurm.conf) name it?"


def _run_slurm(args: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=SLURM_ANSWER_S, check=False)
    except FileNotFoundError:
        raise LaunchError(f"{args[0]} is not on PATH: run ablate launch --slurm on a SLURM login node") from None
    except subprocess.TimeoutExpired:
        raise LaunchError(f"SLURM does not answer ({' '.join(args)} took over {SLURM_ANSWER_S:.0f} s){_CHECK}") from None


@register_launcher
class SlurmLauncher(Launcher):
    """A job array of workers submitted through submitit."""

    name = "slurm"
    keys: ClassVar[Mapping[str, str]] = {
        "partition": "partition to run in (default: the cluster's default partition)",
        "tasks": "tasks in the job array, each on one node (default 1)",
        "gpus_per_task": "GPUs per task; one worker runs per GPU (default 0: one CPU worker)",
        "cpus_per_task": "CPU cores per task (default: the partition's)",
        "time": f"time limit per task, minutes or HH:MM:SS (default {DEFAULT_TIME_MIN}); a task "
        "that reaches it hands its trials back and is requeued",
        "account": "account to charge",
        "mem": "memory per node, as sbatch takes it (e.g. 32G)",
        "sbatch": "more sbatch options, OPTION:VALUE separated by ';' (e.g. qos:high;constraint:a100)",
        "folder": "where submitit writes the tasks' scripts and logs (default RUNS_DIR/STUDY/slurm)",
    }

    def parse_options(self, text: str) -> dict[str, str]:
        options = super().parse_options(text)
        # Every value checked now, so that a typo is one line before anything is submitted.
        _int(options, "tasks", 1, 1)
        _int(options, "gpus_per_task", 0, 0)
        _int(options, "cpus_per_task", None, 1)
        if "time" in options:
            parse_minutes(options["time"])
        _sbatch_extra(options.get("sbatch", ""))
        return options

    def check(self, options: Mapping[str, str]) -> None:
        if importlib.util.find_spec("submitit") is None:
            raise LaunchError("--slurm needs submitit: pip install 'ablate[slurm]'")
        for tool in ("sbatch", "sinfo", "scancel"):
            if shutil.which(tool) is None:
                raise LaunchError(f"{tool} is not on PATH: run ablate launch --slurm on a SLURM login node")
        answer = _run_slurm(["sinfo", "--noheader", "--format=%P"])
        if answer.returncode != 0:
            # sinfo's last line is its verdict ("fatal: Could not establish a configuration source").
            why = (answer.stderr or answer.stdout).strip().splitlines()
            said = why[-1].removeprefix("sinfo: ") if why else f"exit code {answer.returncode}"
            raise LaunchError(f"SLURM does not answer (sinfo: {said}){_CHECK}")
        partitions = [p.strip().rstrip("*") for p in answer.stdout.split()]
        wanted = options.get("partition")
        if wanted and wanted not in partitions:
            raise LaunchError(
                f"--slurm partition={wanted!r} does not exist (partitions: {', '.join(partitions) or 'none'})"
            )

    def job_id(self, ids: list[str]) -> str:
        return array_job_id(ids)

    def log_dir(self, request: LaunchRequest, options: Mapping[str, str]) -> Path:
        """submitit's folder: the tasks' scripts and their output."""
        given = options.get("folder")
        return Path(given).absolute() if given else request.runs_dir / request.study / "slurm"

    def submit(self, request: LaunchRequest, options: Mapping[str, str]) -> list[str]:
        import submitit

        from ablate.run._slurm_task import WorkerTask

        tasks = _int(options, "tasks", 1, 1) or 1
        gpus = _int(options, "gpus_per_task", 0, 0) or 0
        cpus = _int(options, "cpus_per_task", None, 1)
        extra: dict[str, Any] = dict(_sbatch_extra(options.get("sbatch", "")))
        if "mem" in options:  # as sbatch takes it ("32G"); submitit's own mem wants gigabytes
            extra["mem"] = options["mem"]
        executor = submitit.SlurmExecutor(folder=self.log_dir(request, options), max_num_timeout=MAX_TIMEOUTS)
        parameters: dict[str, Any] = dict(
            job_name=f"ablate-{request.study}",
            time=parse_minutes(options.get("time", str(DEFAULT_TIME_MIN))),
            nodes=1,
            ntasks_per_node=1,  # one submitit process per node; it starts the workers
            array_parallelism=tasks,
            additional_parameters=extra,
        )
        if options.get("partition"):
            parameters["partition"] = options["partition"]
        if options.get("account"):
            parameters["account"] = options["account"]
        if gpus:
            parameters["gpus_per_node"] = gpus
        if cpus:
            parameters["cpus_per_task"] = cpus
        try:
            executor.update_parameters(**parameters)
            jobs = executor.map_array(WorkerTask(request, gpus), range(tasks))
        except (ValueError, subprocess.CalledProcessError) as e:
            raise LaunchError(f"sbatch refused the job: {str(e).strip().splitlines()[-1]}") from None
        return [str(job.job_id) for job in jobs]

    def cancel(self, ids: list[str], options: Mapping[str, str]) -> None:
        if not ids:
            return
        # scancel of an id SLURM no longer knows is a warning and exit 0 (or 1 on old SLURMs).
        answer = _run_slurm(["scancel", *ids])
        unknown = "Invalid job id" in answer.stderr or "does not exist" in answer.stderr
        if answer.returncode != 0 and not unknown:
            raise LaunchError(f"scancel {' '.join(ids)}: {answer.stderr.strip() or answer.returncode}")


def array_job_id(task_ids: list[str]) -> str:
    """The array's job id ("1234") of its tasks' ids ("1234_0", "1234_1")."""
    return task_ids[0].split("_")[0] if task_ids else ""
