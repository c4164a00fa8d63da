"""What a result was produced on: library versions, device, code revision, host."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from ablate.store import EnvironmentRecord


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(directory: Path | None, *args: str) -> str | None:
    """``git -C directory args`` 's output; None when git or the repository is missing."""
    where = ["-C", str(directory)] if directory is not None else []
    try:
        out = subprocess.run(
            ["git", *where, *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _git_revision(directory: Path | None = None) -> str | None:
    return _git(directory, "rev-parse", "HEAD") or None


def code_provenance(study_file: str | os.PathLike[str] | None) -> dict[str, Any]:
    """ablate's version, the study file's SHA-256 and the git revision of the repository
    holding it, with ``git_dirty``: whether its tracked files differ from that revision.

    Without a readable study file (a study rebuilt from the database) the revision is the
    working directory's and the hash is None.
    """
    file = Path(study_file) if study_file is not None else None
    digest = None
    if file is not None and file.is_file():
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        directory: Path | None = file.resolve().parent
    else:
        directory = None
    revision = _git_revision(directory)
    dirty = None
    if revision is not None:
        # Tracked files only: build outputs and results beside the study file are not code.
        status = _git(directory, "status", "--porcelain", "--untracked-files=no")
        dirty = None if status is None else bool(status)
    from ablate.version import __version__

    return {"ablate_version": __version__, "study_sha256": digest, "git_revision": revision, "git_dirty": dirty}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(
    study_file: str | os.PathLike[str] | None = None, *, device: str | None = None
) -> EnvironmentRecord:
    """Where a result is produced, as the store records it: python/torch/torchvision/timm
    versions, CUDA version, device name (``device``, else the first GPU's or the CPU's name),
    hostname and platform, the code's provenance (:func:`code_provenance` of ``study_file``),
    and in ``extra`` the GPU count, CPU count and torch's thread count."""
    import torch

    cuda = torch.cuda.is_available()
    code = code_provenance(study_file)
    return EnvironmentRecord(
        python=platform.python_version(),
        torch=str(torch.__version__),
        torchvision=_version("torchvision"),
        timm=_version("timm"),
        cuda=torch.version.cuda if cuda else None,
        git_revision=code["git_revision"],
        git_dirty=code["git_dirty"],
        ablate_version=code["ablate_version"],
        study_sha256=code["study_sha256"],
        device_name=device or (torch.cuda.get_device_name(0) if cuda else _cpu_name()),
        hostname=socket.gethostname(),
        platform=platform.platform(),
        extra={
            "gpu_count": torch.cuda.device_count() if cuda else 0,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
    )
