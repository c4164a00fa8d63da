"""Loading study files: a Python file that defines one or more module-level `Study` objects."""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from pathlib import Path

from ablate.errors import StudyError
from ablate.study._study import Study


def load_studies(path: str | os.PathLike[str]) -> list[Study]:
    """Execute a study file and return the studies it defines, in definition order."""
    file = Path(path)
    shown = os.path.relpath(file) if file.is_absolute() else str(file)
    if not file.is_file():
        raise StudyError(f"{shown}: no such study file")
    if file.suffix != ".py":
        raise StudyError(f"{shown}: a study file is Python and ends in .py")
    module_name = f"ablate_study_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered so that functions defined in the file (constraints, train=fn) can be pickled
    # by name when trials run in worker processes.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except StudyError as e:
        raise StudyError(f"{shown}: {e}") from None
    except SyntaxError as e:
        # In the file itself, or in a module it imports: name the file the error is in.
        where = shown if not e.filename or _same_file(e.filename, file) else e.filename
        raise StudyError(f"{where}:{e.lineno}: syntax error: {e.msg}") from None
    except SystemExit as e:
        raise StudyError(
            f"{shown}{_line_in(e, file)}: the study file called sys.exit({e.code!r}) while "
            "loading; a study file defines studies and returns"
        ) from None
    except KeyboardInterrupt as e:
        # Raised by the file (or Ctrl-C while it loaded): no trial was claimed yet.
        raise StudyError(
            f"{shown}{_line_in(e, file)}: interrupted while loading the study file; nothing was run"
        ) from None
    except Exception as e:
        raise StudyError(f"{shown}{_line_in(e, file)}: {type(e).__name__}: {e}") from None
    studies: list[Study] = []
    for value in vars(module).values():
        if isinstance(value, Study) and all(value is not s for s in studies):
            studies.append(value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Study) for v in value):
            studies.extend(v for v in value if all(v is not s for s in studies))
    if not studies:
        raise StudyError(f"{shown}: defines no Study (assign one to a module-level name such as `study`)")
    names = [s.name for s in studies]
    for s in studies:
        s.source = shown
        if names.count(s.name) > 1:
            raise StudyError(f"{shown}: two studies are named {s.name!r}")
    return studies


def _same_file(name: str, file: Path) -> bool:
    try:
        return Path(name).resolve() == file.resolve()
    except OSError:
        return False


def _line_in(error: BaseException, file: Path) -> str:
    """``:N``, the line of the study file the error came from, or "" if not from it."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if _same_file(f.filename, file)]
    return f":{frames[-1].lineno}" if frames else ""


def select_study(studies: list[Study], name: str | None, *, source: str) -> Study:
    """The study named ``name``, or the only one; an error listing the names otherwise."""
    names = [s.name for s in studies]
    if name is None:
        if len(studies) == 1:
            return studies[0]
        raise StudyError(f"{source}: defines {len(studies)} studies ({', '.join(names)}); choose one with --study")
    for s in studies:
        if s.name == name:
            return s
    raise StudyError(f"{source}: no study named {name!r}; it defines: {', '.join(names)}")
