"""The import structure of ``ablate/``, read with ``ast`` (nothing is imported).

Three rules, each failing with every offender listed:

* no import circle between modules (imports inside functions and under ``if TYPE_CHECKING:``
  count: a circle of type names is still two modules that cannot be understood apart);
* a module never imports another package's private module (``from ablate.study._config import
  X`` inside ``ablate/train/``): what a package offers is exported by its ``__init__.py``;
* no arrow runs back up the package order: the bottom floor (errors, registry, files, metrics,
  trial) -> study -> store / data -> train / report -> run -> cli -> the ``ablate`` facade.
  Here ``TYPE_CHECKING`` imports count too: a lower layer does not name a higher one's types.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "ablate"

#: The floor of each package (a module's floor is its package's); higher imports lower.
FLOORS: dict[str, int] = {
    "errors": 0, "version": 0, "registry": 0, "files": 0, "metrics": 0, "trial": 0,
    "study": 1,
    "store": 2, "data": 2,
    "train": 3, "report": 3, "dashboard": 3,
    "run": 4,
    "cli": 5,
    "__main__": 6, "": 6,  # "": the facade, ablate/__init__.py
}  # fmt: skip
@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. "ablate.train._env"
    target: str  # the imported module, e.g. "ablate.study._config"
    line: int
    type_checking: bool  # inside ``if TYPE_CHECKING:``
    names: tuple[str, ...] = ()  # for ``from ablate import x``: the names

    def __str__(self) -> str:
        return f"{path_of(self.source)}:{self.line}: {self.source} -> {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def path_of(module: str) -> str:
    return str(MODULES[module].relative_to(ROOT.parent))


def package_of(module: str) -> str:
    """The package: study for ablate.study._config and ablate.study, files for ablate.files, "" for ablate."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def is_private(module: str) -> bool:
    return any(part.startswith("_") and part != "__main__" for part in module.split(".")[1:])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _known(name: str) -> str | None:
    """The module ``name`` is, or the package holding it (a name imported from a package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> Iterator[Import]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST, type_checking: bool) -> Iterator[Import]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, True)
            for child in node.orelse:
                yield from visit(child, type_checking)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known(alias.name)
                if target is not None:
                    yield Import(module, target, node.lineno, type_checking)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "ablate":
                return
            for alias in node.names:
                # ``from ablate.store import _migrate`` imports a module, ``from ablate.store
                # import ResultStore`` a name of the package.
                target = _known(f"{base}.{alias.name}") or _known(base)
                if target is not None:
                    yield Import(module, target, node.lineno, type_checking, (alias.name,))
        for child in ast.iter_child_nodes(node):
            yield from visit(child, type_checking)

    for imp in visit(tree, False):
        if imp.target != module:
            yield imp


IMPORTS: list[Import] = [imp for m in MODULES for imp in imports_of(m)]


def circles(imports: list[Import]) -> list[list[str]]:
    """Every strongly connected group of modules (Tarjan), as a sorted list of names."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in imports:
        graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(groups)


def private_imports(imports: list[Import]) -> list[Import]:
    return [
        imp
        for imp in imports
        if is_private(imp.target) and package_of(imp.target) != package_of(imp.source)
    ]


def upward_imports(imports: list[Import]) -> list[Import]:
    out = []
    for imp in imports:
        if FLOORS[package_of(imp.target)] > FLOORS[package_of(imp.source)]:
            out.append(imp)
    return out


def _listing(title: str, offenders: list[str]) -> str:
    return f"{title} ({len(offenders)}):\n  " + "\n  ".join(offenders)


def test_every_package_has_a_floor() -> None:
    assert {package_of(m) for m in MODULES} <= set(FLOORS), sorted(
        {package_of(m) for m in MODULES} - set(FLOORS)
    )


def test_the_imports_are_read() -> None:
    # The checks below are only as good as the import reading: a few imports that must be seen.
    seen = {(i.source, i.target, i.type_checking) for i in IMPORTS}
    assert ("ablate.store._store", "ablate.store._engine", False) in seen
    assert ("ablate.store", "ablate.store._store", True) in seen  # under TYPE_CHECKING
    assert ("ablate.cli._app", "ablate.version", False) in seen  # from ablate.version import __version__
    assert any(i.source == "ablate.store._load" and i.target == "ablate.store._store" for i in IMPORTS)


def test_the_checks_find_what_they_look_for() -> None:
    # The rules on made-up imports: each kind of offence is caught, and only that.
    circle = [Import("ablate.store._read", "ablate.store._store", 1, False),
              Import("ablate.store._store", "ablate.store._read", 2, False)]  # fmt: skip
    assert circles(circle) == [["ablate.store._read", "ablate.store._store"]]
    # A circle closed by a type-only import is a circle too.
    assert circles([circle[0], Import("ablate.store._store", "ablate.store._read", 2, True)]) == [
        ["ablate.store._read", "ablate.store._store"]
    ]
    assert circles([circle[0]]) == []
    private = Import("ablate.train._checks", "ablate.study._config", 1, False)
    assert private_imports([private, Import("ablate.store._store", "ablate.store._read", 1, False)]) == [private]
    up = Import("ablate.study._study", "ablate.run", 1, True)
    down = Import("ablate.run._worker", "ablate.study", 1, False)
    version = Import("ablate.train._env", "ablate", 1, False, ("__version__",))
    assert upward_imports([up, down, version]) == [up, version]  # the facade is the top floor


def _circle_lines(imports: list[Import]) -> list[str]:
    lines = []
    for group in circles(imports):
        members = set(group)
        lines.append(" <-> ".join(group))
        lines += [f"    {i}" for i in _unique(
            i for i in imports if i.source in members and i.target in members and not i.type_checking
        )]  # fmt: skip
    return lines


def _unique(imports: Iterable[Import]) -> list[str]:
    return sorted({str(i) for i in imports})


def test_no_import_circles() -> None:
    lines = _circle_lines(IMPORTS)
    if lines:
        pytest.fail(_listing("import circles", lines))


def test_no_private_cross_package_imports() -> None:
    found = _unique(private_imports(IMPORTS))
    if found:
        pytest.fail(_listing("imports of another package's private module", found))


def test_no_arrow_runs_back_up_the_package_order() -> None:
    found = _unique(upward_imports(IMPORTS))
    if found:
        order = " -> ".join(
            "/".join(sorted(p or "ablate" for p, f in FLOORS.items() if f == floor))
            for floor in sorted(set(FLOORS.values()))
        )
        pytest.fail(_listing(f"imports of a higher package (order: {order})", found))
