"""What each task of an ``ablate launch --slurm`` job array runs: one ``ablate worker`` per GPU.

Imported by :meth:`ablate.run._slurm.SlurmLauncher.submit` and, through submitit's pickle, on
the nodes; never by ``import ablate`` (it imports submitit). See ablate.run._slurm for why the
workers are processes and how preemption hands their trials back.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from typing import Any

import submitit

from ablate.run._launch import LaunchRequest

# How long SIGTERM'd workers get to hand their trials back before submitit requeues the task
# (well under submitit's 90 s between SIGUSR2 and SLURM's kill).
HAND_BACK_S = 60.0


def worker_slots(gpus_per_task: int, environ: Mapping[str, str] = os.environ) -> list[str | None]:
    """The CUDA_VISIBLE_DEVICES of each worker the task starts: one per GPU SLURM gave it.

    SLURM sets CUDA_VISIBLE_DEVICES for the GPUs it allocated (gres); a cluster that does not
    gets devices 0..N-1 of the ``gpus_per_task`` asked for. None: one worker, CPU (or all GPUs).
    """
    visible = [g.strip() for g in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    if visible:
        return list(visible)
    return [str(i) for i in range(gpus_per_task)] or [None]


def _ignore_preemption_signal() -> None:  # in each worker process, before it execs Python
    # SLURM signals every process of the task; the workers hand back on SIGTERM only, and
    # SIGUSR2 (which would kill them) is for submitit's Python. Ignored survives exec.
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class WorkerTask(submitit.helpers.Checkpointable):
    """What one task of the array runs (pickled by submitit): the task's workers, until done."""

    def __init__(self, request: LaunchRequest, gpus_per_task: int = 0) -> None:
        self.request = request
        self.gpus_per_task = gpus_per_task
        self._procs: list[subprocess.Popen[bytes]] = []
        self._handing_back = False

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_procs"] = []  # processes stay on the node; a requeued task starts its own
        state["_handing_back"] = False
        return state

    def __call__(self, index: int) -> list[int]:
        task_id = _task_id(index)
        slots = worker_slots(self.gpus_per_task)
        cpus = int(os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_CPUS_ON_NODE") or os.cpu_count() or 1)
        threads = max(1, cpus // len(slots))
        request = self.request
        host = socket.gethostname()
        for i, gpu in enumerate(slots):
            env = {**os.environ, **request.worker_env(f"slurm-{task_id}-{host}-w{i}", threads)}
            if gpu is not None:
                env["CUDA_VISIBLE_DEVICES"] = gpu
            print(f"ablate: task {task_id} starts worker {env['ABLATE_WORKER']}", flush=True)
            self._procs.append(
                subprocess.Popen(request.worker_command(), env=env, preexec_fn=_ignore_preemption_signal)
            )
        while not all(_ended(p) for p in self._procs):
            time.sleep(0.5)
        codes = [int(p.returncode) for p in self._procs]
        print(f"ablate: task {task_id}: workers exited with {codes}", flush=True)
        # 0 done; 130/143 handed their trials back on a signal (scancel, a node stopping).
        bad = [c for c in codes if c not in (0, 128 + signal.SIGINT, 128 + signal.SIGTERM)]
        if bad:
            raise RuntimeError(f"task {task_id}: worker(s) exited with {bad}; their lines above say why")
        return codes

    def checkpoint(self, index: int) -> Any:
        """Preempted or at the time limit: hand the trials back, then let submitit requeue us.

        Runs in submitit's SIGUSR2 handler, maybe twice at once (SLURM signals the step, and
        srun passes the signal on too): hence polling with our own waitpid, never
        ``Popen.wait``, whose lock the interrupted call may hold.
        """
        if not self._handing_back:
            self._handing_back = True
            print("ablate: preempted or at the time limit: workers hand their trials back", flush=True)
            for p in self._procs:
                if not _ended(p):
                    p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + HAND_BACK_S
        while not all(_ended(p) for p in self._procs) and time.monotonic() < deadline:
            time.sleep(0.2)
        for p in self._procs:
            if not _ended(p):
                p.kill()  # its trial's lease expires and another worker resumes it
        return submitit.helpers.DelayedSubmission(WorkerTask(self.request, self.gpus_per_task), index)


def _ended(p: subprocess.Popen[bytes]) -> bool:
    """Whether the worker process exited (reaped here, its exit code in ``returncode``)."""
    if p.returncode is not None:
        return True
    try:
        pid, status = os.waitpid(p.pid, os.WNOHANG)
    except ChildProcessError:  # reaped already
        p.returncode = p.returncode if p.returncode is not None else -1
        return True
    if pid == 0:
        return False
    p.returncode = os.waitstatus_to_exitcode(status)
    return True


def _task_id(index: int) -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID", f"local{index}")
