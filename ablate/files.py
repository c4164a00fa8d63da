"""Files ablate writes outside the database: written atomically, cached under one folder.

Every file a crash could leave half-written (checkpoints, cached arrays, stamps) goes through
:func:`write_atomic`: a temporary file next to the target, then ``os.replace``, so a reader sees
the old file or the new one, never a torn one; a full disk is named as such
(:class:`~ablate.errors.DiskFullError`). Nothing here imports torch.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ablate.errors import DiskFullError


def cache_dir() -> Path:
    """Where ablate keeps derived files (decoded datasets, dataset statistics), created on use:
    ``$ABLATE_CACHE``, else ``$XDG_CACHE_HOME/ablate``, else ``~/.cache/ablate``."""
    root = os.environ.get("ABLATE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ablate"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_atomic(
    path: Path,
    data: bytes | str | Callable[[BinaryIO], None],
    *,
    needed_bytes: Callable[[], int] | None = None,
) -> Path:
    """Write ``data`` (bytes, text as UTF-8, or a function writing to an open binary file) to
    ``path`` atomically, creating its folder. The temporary file keeps the target's suffix, for
    writers that look at it (numpy adds ``.npz`` to names without one). A write that fails for
    want of space raises DiskFullError with the size ``needed_bytes()`` estimates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        # Our own file object: closed even when a writer fails halfway (else the descriptor of
        # the removed temporary file would keep its disk space taken).
        with open(tmp, "wb") as f:
            if isinstance(data, str):
                f.write(data.encode())
            elif isinstance(data, bytes):
                f.write(data)
            else:
                data(f)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        size = needed_bytes() if needed_bytes is not None else _size(data)
        if isinstance(e, (OSError, RuntimeError)) and _disk_full(e, path, size):
            raise DiskFullError(f"no space left on device: {path} (needs ~{max(1, round(size / 2**20))} MB)") from e
        raise
    return path


def _size(data: bytes | str | Callable[[BinaryIO], None]) -> int:
    return len(data) if isinstance(data, (bytes, str)) else 4096


def _disk_full(error: BaseException, path: Path, needed: int) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # torch's zip writer reports a short write as "unexpected pos N vs M" (a RuntimeError that
    # hides the ENOSPC): check the free space instead of trusting the message.
    try:
        return shutil.disk_usage(path.parent).free < needed
    except OSError:
        return False


def human_bytes(n: float) -> str:
    """A size for people: 512 B, 15 KB, 61.0 MB, 1.2 GB."""
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit != "MB" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
