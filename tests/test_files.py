"""ablate.files: the one atomic write (bytes, text, a writer function) and the cache folder."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from ablate.errors import DiskFullError
from ablate.files import cache_dir, write_atomic


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (mounting needs root: elsewhere the test is skipped, saying why)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_bytes_text_and_a_writer_function_are_written_and_the_folder_created(tmp_path: Path) -> None:
    assert write_atomic(tmp_path / "a" / "b.bin", b"\x00\x01") == tmp_path / "a" / "b.bin"
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    write_atomic(tmp_path / "t.txt", "ünïcode")
    assert (tmp_path / "t.txt").read_bytes() == "ünïcode".encode()

    def writer(f: BinaryIO) -> None:
        f.write(b"first ")
        f.write(b"second")

    write_atomic(tmp_path / "w.dat", writer)
    assert (tmp_path / "w.dat").read_bytes() == b"first second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "t.txt", "w.dat"]  # no temporary left


def test_a_writer_sees_a_temporary_file_with_the_targets_suffix(tmp_path: Path) -> None:
    seen: list[str] = []
    write_atomic(tmp_path / "arrays.npz", lambda f: seen.append(f.name))  # type: ignore[func-returns-value]
    assert seen[0].endswith(".npz") and Path(seen[0]).parent == tmp_path and Path(seen[0]).name != "arrays.npz"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.txt"
    write_atomic(target, "old")

    def broken(f: BinaryIO) -> None:
        f.write(b"half")
        raise ValueError("writer broke")

    with pytest.raises(ValueError, match="writer broke"):
        write_atomic(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.txt"]


def test_an_error_that_is_not_a_full_disk_is_raised_as_it_is(tmp_path: Path) -> None:
    def fails(f: BinaryIO) -> None:
        raise RuntimeError("unexpected pos 10 vs 5")  # torch's message, with plenty of space left

    with pytest.raises(RuntimeError, match="unexpected pos"):
        write_atomic(tmp_path / "x.pt", fails, needed_bytes=lambda: 1)


def test_a_full_disk_is_named_with_the_size_and_leaves_nothing(tiny_disk: Path) -> None:
    target = tiny_disk / "big.bin"
    with pytest.raises(DiskFullError) as caught:
        write_atomic(target, b"x" * (2 * 2**20))
    assert str(caught.value) == f"no space left on device: {target} (needs ~2 MB)"
    assert isinstance(caught.value.__cause__, OSError)
    assert list(tiny_disk.iterdir()) == []


def test_a_short_write_on_a_full_disk_is_named_by_the_estimated_size(tiny_disk: Path) -> None:
    # torch's zip writer hides ENOSPC behind a RuntimeError: the free space decides.
    def torch_like(f: BinaryIO) -> None:
        try:
            f.write(b"x" * (128 * 1024))
            f.flush()
        except OSError:
            raise RuntimeError("unexpected pos 65536 vs 131072") from None

    target = tiny_disk / "last.pt"
    with pytest.raises(DiskFullError) as caught:
        write_atomic(target, torch_like, needed_bytes=lambda: 5 * 2**20)
    assert str(caught.value) == f"no space left on device: {target} (needs ~5 MB)"
    assert list(tiny_disk.iterdir()) == []


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABLATE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "ablate" and cache_dir().is_dir()
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own" and cache_dir().is_dir()
