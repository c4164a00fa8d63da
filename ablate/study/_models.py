"""Model names a study may use, checked without importing torch on every call.

timm and torchvision know their model names only once imported (one to two seconds with torch).
The lists are computed once per installed version and cached in a small text file, so `ablate plan`
stays quick while an unknown model is still reported with its close matches.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import os
from importlib import metadata
from pathlib import Path

from ablate.errors import StudyError

BUILTIN_MODELS = ("cnn",)
TORCHVISION_PREFIX = "tv:"


def cache_dir() -> Path:
    """Where ablate keeps derived files (model name lists, decoded datasets)."""
    root = os.environ.get("ABLATE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ablate"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached_names(kind: str, version: str, compute: functools.partial[list[str]]) -> frozenset[str]:
    path = cache_dir() / f"{kind}-{version}-models.txt"
    if path.exists():
        return frozenset(path.read_text().split())
    names = compute()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text("\n".join(sorted(names)))
    os.replace(tmp, path)
    return frozenset(names)


def _timm_names() -> list[str]:
    import timm

    return list(timm.list_models())


def _torchvision_names() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models())


@functools.cache
def timm_model_names() -> frozenset[str]:
    return _cached_names("timm", metadata.version("timm"), functools.partial(_timm_names))


@functools.cache
def torchvision_model_names() -> frozenset[str]:
    return _cached_names(
        "torchvision", metadata.version("torchvision"), functools.partial(_torchvision_names)
    )


def list_model_names(pattern: str = "*") -> list[str]:
    """All model names a study may use, filtered by a shell-style wildcard."""
    names = [*BUILTIN_MODELS, *timm_model_names()]
    names += [TORCHVISION_PREFIX + n for n in torchvision_model_names()]
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def check_model_name(name: str, *, where: str) -> None:
    """Raise a StudyError naming close matches when ``name`` is not a known model."""
    if name in BUILTIN_MODELS:
        return
    if name.startswith(TORCHVISION_PREFIX):
        known = torchvision_model_names()
        bare = name[len(TORCHVISION_PREFIX) :]
        if bare in known:
            return
        close = difflib.get_close_matches(bare, known, n=3, cutoff=0.6)
        close = [TORCHVISION_PREFIX + c for c in close]
    else:
        known = timm_model_names()
        if name in known:
            return
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise StudyError(
        f"{where}: field 'model' is {name!r}, which is not a known model{hint} "
        "(allowed: cnn, any timm name, or tv:<torchvision name>; list them with `ablate models`)"
    )
