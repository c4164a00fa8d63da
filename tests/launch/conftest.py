"""A real one-node SLURM cluster (tools/slurm-cluster) for the tests that launch on it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
CLUSTER = ROOT / "tools" / "slurm-cluster"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "slurm_conf" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slurm)


def _free_port_pair() -> int:
    """A port p with p and p + 1 free (slurmctld and slurmd), so a cluster already running here
    (a user's, or another session's) is left alone."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two free ports in a row for slurmctld and slurmd")


@pytest.fixture(scope="session")
def slurm_conf() -> Iterator[str]:
    """SLURM_CONF of a cluster started for this session (munged, slurmctld, slurmd), stopped after.

    Never skipped: a machine without SLURM fails these tests with the line saying what to install
    (tools/test-services installs slurm-wlm and munge when run as root)."""
    # Not under pytest's tmp folder: that is private to root, and munged runs as user munge.
    folder = Path(tempfile.mkdtemp(prefix="ablate-slurm-"))
    env = {**os.environ, "ABLATE_SLURM_DIR": str(folder), "ABLATE_SLURM_PORT": str(_free_port_pair())}
    started = subprocess.run([str(CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        pytest.fail(f"tools/slurm-cluster start failed: {started.stderr.strip()}", pytrace=False)
    try:
        yield str(folder / "slurm.conf")
    finally:
        subprocess.run([str(CLUSTER), "stop"], env=env, capture_output=True, timeout=60, check=False)
        shutil.rmtree(folder, ignore_errors=True)
