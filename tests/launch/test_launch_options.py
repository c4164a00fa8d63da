"""What `ablate launch` decides before it talks to any cluster: options, time limits, imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tests.run.processes import clean_env

from ablate.errors import LaunchError
from ablate.run._launch import get_launcher, launcher_names
from ablate.run._slurm import parse_minutes


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("90", 90), ("1:30:00", 90), ("30:00", 30), ("0:00:30", 1), ("2-00:00:00", 2880), ("1-12", 2160)],
)
def test_time_limits_read_as_sbatch_reads_them(text: str, minutes: int) -> None:
    assert parse_minutes(text) == minutes


@pytest.mark.parametrize("text", ["", "abc", "1h", "0", "1:2:3:4"])
def test_a_time_limit_sbatch_would_not_take_is_refused(text: str) -> None:
    with pytest.raises(LaunchError, match="time="):
        parse_minutes(text)


def test_slurm_options_parsed_and_checked_before_submitting() -> None:
    slurm = get_launcher("slurm")
    assert "slurm" in launcher_names()
    options = slurm.parse_options("partition=gpu, tasks=4,gpus_per_task=2,time=2:00:00,sbatch=qos:high;exclusive")
    assert options == {"partition": "gpu", "tasks": "4", "gpus_per_task": "2", "time": "2:00:00", "sbatch": "qos:high;exclusive"}
    for bad, message in [
        ("tasks=two", "tasks='two': not a whole number"),
        ("gpus_per_task=-1", "gpus_per_task=-1: must be at least 0"),
        ("sbatch=:x", "is not OPTION:VALUE"),
        ("partition", "'partition' is not KEY=VALUE"),
    ]:
        with pytest.raises(LaunchError, match=message.replace("(", r"\(").replace(")", r"\)")):
            slurm.parse_options(bad)


def test_importing_ablate_and_its_launchers_does_not_import_submitit() -> None:
    code = (
        "import sys, ablate, ablate.cli, ablate.run._slurm\n"
        "from ablate.run._launch import launcher_names\n"
        "launcher_names()\n"
        "assert 'submitit' not in sys.modules, 'submitit imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], env=clean_env(), check=True, timeout=60)


@pytest.mark.parametrize(
    ("gpus_per_task", "visible", "slots"),
    [
        (0, None, [None]),  # a CPU node: one worker
        (2, "3,5", ["3", "5"]),  # the GPUs SLURM allocated, one worker each
        (4, "1", ["1"]),  # what SLURM says wins over what was asked for
        (2, None, ["0", "1"]),  # a cluster without gres: the first N devices
        (0, "", [None]),
    ],
)
def test_each_task_runs_one_worker_per_gpu_it_holds(gpus_per_task: int, visible: str | None, slots: list[str | None]) -> None:
    from ablate.run._slurm_task import worker_slots

    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert worker_slots(gpus_per_task, environ) == slots
