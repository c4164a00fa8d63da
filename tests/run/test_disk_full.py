"""A full disk is named as such, leaves no temporary files, and fails no trial (a real tmpfs)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ablate.errors import DiskFullError
from ablate.store import load_trials

STUDIES = Path(__file__).parent / "studies"
ABLATE = [sys.executable, "-m", "ablate"]
ROOT = Path(__file__).parents[2]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (mounting needs root: elsewhere the test is skipped, saying why)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_checkpoint_that_does_not_fit_is_named_and_leaves_nothing(tiny_disk: Path) -> None:
    import torch

    from ablate.train._checkpoint import atomic_save

    target = tiny_disk / "last.pt"
    with pytest.raises(DiskFullError) as caught:
        atomic_save({"model": {"w": torch.zeros(2**20 // 4 * 3)}}, target)  # 3 MB
    assert str(caught.value) == f"no space left on device: {target} (needs ~3 MB)"
    assert caught.value.exit_code == 3
    assert list(tiny_disk.iterdir()) == []  # the temporary file is gone


@pytest.mark.slow
def test_a_full_runs_folder_hands_the_trial_back_and_exits_3(sqlite_url: str, tiny_disk: Path) -> None:
    (tiny_disk / "filler").write_bytes(b"x" * 56 * 1024)  # room for the identity file, not a checkpoint
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([*ABLATE, "run", str(STUDIES / "short_train.py"), "--db", sqlite_url,
                           "--runs-dir", str(tiny_disk)], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "error: no space left on device: " in proc.stderr and "Traceback" not in proc.stderr
    assert "MB)" in proc.stderr
    assert set(load_trials("short_train", db=sqlite_url)["status"]) == {"queued"}  # none failed
    assert not [p for p in tiny_disk.rglob("*") if ".tmp" in p.name]
