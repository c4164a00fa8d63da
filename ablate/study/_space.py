"""Factor declarations: discrete levels for grids, and search spaces for adaptive designs.

A plain list in ``factors`` is a :func:`choice`. Grid and OFAT designs need discrete levels;
``random`` and ``tpe`` accept every kind and hand it to Optuna as a distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ablate.errors import StudyError


class Space:
    """One factor's possible values."""

    discrete: bool = False

    def levels(self) -> list[Any]:
        """The values a grid visits (only for discrete spaces)."""
        raise NotImplementedError

    def examples(self) -> list[Any]:
        """Values that validation builds a config from (the bounds of a range)."""
        return self.levels()

    def optuna_distribution(self, factor: str) -> Any:
        """The equivalent Optuna distribution (imports optuna)."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Choice(Space):
    values: tuple[Any, ...]
    discrete = True

    def levels(self) -> list[Any]:
        return list(self.values)

    def optuna_distribution(self, factor: str) -> Any:
        from optuna.distributions import CategoricalDistribution

        # A coupled level (a dict) is represented by the factor's own value in it.
        return CategoricalDistribution([level_value(factor, v) for v in self.values])

    def level_for(self, factor: str, value: Any) -> Any:
        """The declared level whose factor value is ``value`` (inverse of level_value)."""
        for level in self.values:
            if level_value(factor, level) == value:
                return level
        raise KeyError(value)

    def describe(self) -> str:
        return "{" + ", ".join(_label(v) for v in self.values) + "}"


@dataclass(frozen=True)
class Uniform(Space):
    low: float
    high: float
    log: bool = False

    def examples(self) -> list[Any]:
        return [self.low, self.high]

    def optuna_distribution(self, factor: str) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log)

    def describe(self) -> str:
        return f"{'loguniform' if self.log else 'uniform'}({self.low:g}, {self.high:g})"


@dataclass(frozen=True)
class IntRange(Space):
    low: int
    high: int
    step: int = 1
    log: bool = False

    def examples(self) -> list[Any]:
        return [self.low, self.high]

    def optuna_distribution(self, factor: str) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def describe(self) -> str:
        return f"int({self.low}, {self.high}{f', step={self.step}' if self.step != 1 else ''})"


def choice(*values: Any) -> Choice:
    """A categorical factor: ``choice("relu", "gelu")`` (same as the list ``["relu", "gelu"]``)."""
    if len(values) == 1 and isinstance(values[0], (list, tuple)):
        values = tuple(values[0])
    if not values:
        raise StudyError("choice() needs at least one value")
    return Choice(tuple(values))


def uniform(low: float, high: float) -> Uniform:
    """A float factor drawn uniformly from [low, high] (random / tpe designs)."""
    if not low < high:
        raise StudyError(f"uniform({low}, {high}): low must be < high")
    return Uniform(float(low), float(high))


def loguniform(low: float, high: float) -> Uniform:
    """A float factor drawn log-uniformly from [low, high], e.g. a learning rate."""
    if not 0 < low < high or math.isinf(high):
        raise StudyError(f"loguniform({low}, {high}): need 0 < low < high")
    return Uniform(float(low), float(high), log=True)


def intrange(low: int, high: int, step: int = 1, log: bool = False) -> IntRange:
    """An integer factor in [low, high] (random / tpe designs)."""
    if not low < high or step < 1:
        raise StudyError(f"intrange({low}, {high}, step={step}): need low < high and step >= 1")
    return IntRange(int(low), int(high), int(step), log)


def as_space(factor: str, value: Any) -> Space:
    """A factor's declaration as a Space: lists become choices."""
    if isinstance(value, Space):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            raise StudyError(f"factor {factor!r} has no levels")
        return Choice(tuple(value))
    raise StudyError(
        f"factor {factor!r} must be a list of levels or choice/uniform/loguniform/intrange, "
        f"got {value!r}"
    )


def level_value(factor: str, level: Any) -> Any:
    """The value a level stands for: a coupled level (a dict of fields) stands for its own
    factor's entry, e.g. ``dict(model="resnet50", batch_size=64)`` is the level ``"resnet50"``."""
    return level[factor] if isinstance(level, dict) else level


def _label(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)
