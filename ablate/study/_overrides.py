"""``--set field=value`` from the command line: a study with some base fields replaced."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ablate.errors import StudyError
from ablate.study._config import FIELDS, check_field_name, coerce_value
from ablate.study._study import Study


def with_overrides(study: Study, overrides: Mapping[str, Any]) -> Study:
    """``study`` with ``overrides`` merged into its base, each checked like a value in the file.

    A factor cannot be overridden: its levels are the point of the study (edit the file, or
    name the level with ``--baseline`` in the report).
    """
    if not overrides:
        return study
    for key, value in overrides.items():
        where = f"--set {key}={value!r} ({study.where})"
        if key in study.factors:
            raise StudyError(f"{where}: {key!r} is a factor of the study; --set changes base fields only")
        check_field_name(key, where=where, allow_extra=study.train is not None)
        if key in FIELDS:
            coerce_value(key, value, where=where)
    return dataclasses.replace(study, base={**study.base, **overrides})


def describe_overrides(overrides: Mapping[str, Any]) -> str:
    """``--set epochs=2 --set lr=0.01``, as a user would type it."""
    return " ".join(f"--set {k}={v}" for k, v in overrides.items())
