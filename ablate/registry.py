"""`Registry`: the one way ablate names its extension points (designs, datasets, models, metrics).

Each extension point keeps one registry. Entries are added by a decorator where they are defined,
listed with shell-style wildcards, and an unknown name fails with its close matches, as timm's
model registry does::

    DESIGNS: Registry[type[Design]] = Registry("design")

    @DESIGNS.register("grid")
    class GridDesign(Design): ...

    DESIGNS.get("gird", where="studies/x.py: study 'x'")
    # StudyError: studies/x.py: study 'x': design 'gird' is not known; did you mean 'grid'? (known: grid, ofat, random, tpe)

A name may be a pattern with one ``<placeholder>`` (``imagefolder:<path>``): it matches every name
with that prefix. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ablate.errors import StudyError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, in registration order."""

    def __init__(self, kind: str, *, field: str | None = None) -> None:
        self.kind = kind  # "design", "dataset", "model": said in errors
        self.field = field  # the config field that names an entry, if any: said in errors
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding ``name``; registering a name twice is a programming error."""

        def add(entry: T) -> T:
            self.add(name, entry)
            return entry

        return add

    def add(self, name: str, entry: T) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def replace(self, name: str, entry: T) -> None:
        """Add ``name``, or put ``entry`` in the place of the one registered under it."""
        self._entries[name] = entry

    def _key(self, name: str) -> str | None:
        if name in self._entries:
            return name
        for key in self._entries:
            if "<" in key and name.startswith(key.split("<", 1)[0]) and len(name) > key.index("<"):
                return key
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, in registration order."""
        return [n for n in self._entries if fnmatch.fnmatch(n, pattern)]

    def get(self, name: str, *, where: str) -> T:
        """The entry named ``name``; a StudyError naming close matches when there is none."""
        key = self._key(name) if isinstance(name, str) else None
        if key is None:
            raise StudyError(f"{where}: {self.unknown(name)}")
        return self._entries[key]

    def unknown(self, name: object, *, known: list[str] | None = None) -> str:
        """The text of an unknown-name error: the name, close matches, what is allowed."""
        known = list(self._entries) if known is None else known
        what = f"field {self.field!r} is {name!r}" if self.field else f"{self.kind} {name!r}"
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        return f"{what}, which is not a known {self.kind}{hint} (allowed: {shown})"
