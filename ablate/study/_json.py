"""The JSON form of the values ablate stores and hashes: study definitions, configs, levels."""

from __future__ import annotations

import json
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON: tuples become lists, keys strings, and anything
    JSON has no type for (a path, a class) its ``str``. What is stored is what is compared."""
    return json.loads(json.dumps(value, default=str))
