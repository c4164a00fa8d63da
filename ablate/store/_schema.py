"""Which schema revision this ablate expects, and whether a database's revisions are it.

Nothing here imports SQLAlchemy or Alembic: the revision ids are read from the migration files
with :mod:`ast`, so the read-only commands can check a database (one query on the version table)
without paying for either. :mod:`ablate.store._migrate` runs the migrations themselves.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path
from typing import Any

from ablate.errors import NotAblateDatabaseError, StoreError

VERSION_TABLE = "ablate_alembic_version"


def script_location() -> Path:
    """The folder with Alembic's ``env.py`` and ``versions/``, wherever ablate is installed.

    In a source checkout (editable install, or ``PYTHONPATH`` on a worktree) that is the
    top-level ``alembic/`` next to the package, so the checkout's own migrations are used; a
    wheel ships the same folder as the ``ablate._migrations`` subpackage. Finding none is a
    packaging bug, never a database at "revision empty".
    """
    package = Path(__file__).resolve().parents[1]  # ablate/, this being ablate/store/_schema.py
    checkout = package.parent / "alembic"
    if _has_migrations(checkout):
        return checkout
    # alembic/ has no __init__.py (with one, the checkout's folder could shadow the Alembic
    # library), so the shipped copy is a namespace package: its folder is the spec's location.
    spec = importlib.util.find_spec("ablate._migrations")
    for shipped in spec.submodule_search_locations or [] if spec else []:
        if _has_migrations(Path(shipped)):
            return Path(shipped)
    raise StoreError(
        f"internal error: ablate at {package} has no "
        "migrations (neither alembic/ next to it nor the ablate._migrations package); "
        "reinstall ablate"
    )


def _has_migrations(folder: Path) -> bool:
    # site-packages/alembic (the library itself) is next to an installed ablate: it has no env.py.
    return (folder / "env.py").is_file() and any((folder / "versions").glob("*.py"))


@functools.cache
def revision_graph() -> dict[str, tuple[str, ...]]:
    """Revision -> its parents, read from the migration files without importing Alembic."""
    graph = {}
    for path in sorted((script_location() / "versions").glob("*.py")):
        values = _module_constants(path, ("revision", "down_revision"))
        if "revision" in values:
            down = values.get("down_revision")
            graph[values["revision"]] = (down,) if isinstance(down, str) else tuple(down or ())
    return graph


def head_revisions() -> tuple[str, ...]:
    """The latest revision(s) of the migration scripts."""
    graph = revision_graph()
    parents = {p for ps in graph.values() for p in ps}
    return tuple(sorted(set(graph) - parents))


def _module_constants(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            target, value = node.target.id, node.value
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            target, value = node.targets[0].id, node.value
        else:
            continue
        if target in names and value is not None:
            found[target] = ast.literal_eval(value)
    return found


def refuse_unknown_revisions(revisions: tuple[str, ...], where: str) -> None:
    """Raise StoreError if the database is at a revision this ablate does not know (a newer one)."""
    unknown = [r for r in revisions if r not in revision_graph()]
    if unknown:
        raise StoreError(
            f"database {where} is at schema revision {unknown[0]}, which this "
            f"version of ablate does not know (its latest is {', '.join(head_revisions())}); "
            "it was written by a newer ablate: upgrade ablate to use it"
        )


def require_head(revisions: tuple[str, ...], where: str) -> None:
    """Raise NotAblateDatabaseError unless ``revisions`` (a database's) are ablate's latest.

    For the read-only commands, which must neither create a schema in a database they were
    pointed at by mistake (another application's file, an empty database) nor migrate one.
    ``where`` names the database in messages.
    """
    if not revisions:
        raise NotAblateDatabaseError(
            f"{where}: not an ablate database; `ablate db upgrade` creates one"
        )
    refuse_unknown_revisions(revisions, where)
    if set(revisions) != set(head_revisions()):
        raise NotAblateDatabaseError(
            f"{where}: not an ablate database of this version (schema revision "
            f"{', '.join(revisions)}, latest {', '.join(head_revisions())}); `ablate db upgrade` "
            "migrates it"
        )
