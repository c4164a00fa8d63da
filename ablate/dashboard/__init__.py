"""Watching studies live: ablate's database as a read-only Optuna storage, served by optuna-dashboard.

:class:`AblateStorage` is an ``optuna.storages.BaseStorage`` reading ablate's tables (no copy);
:func:`optuna_study` opens one study through it as an ``optuna.Study``; :func:`serve_dashboard`
runs optuna-dashboard over it (``ablate dashboard``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ablate.dashboard._server import serve_dashboard
    from ablate.dashboard._storage import AblateStorage, ReadOnlyStorageError, optuna_study

# optuna is imported on first use, optuna-dashboard only by serve_dashboard.
_WHERE = {
    "AblateStorage": "ablate.dashboard._storage",
    "ReadOnlyStorageError": "ablate.dashboard._storage",
    "optuna_study": "ablate.dashboard._storage",
    "serve_dashboard": "ablate.dashboard._server",
}

__all__ = ["AblateStorage", "ReadOnlyStorageError", "optuna_study", "serve_dashboard"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
