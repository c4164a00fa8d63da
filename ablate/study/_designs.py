"""`Design`: how a study chooses its trials, one registered class per ``design=`` name."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ablate.errors import StudyError
from ablate.registry import Registry
from ablate.study._space import Choice, IntRange, level_value

if TYPE_CHECKING:
    from ablate.study._config import TrialSpec
    from ablate.study._space import Space

# More trials than this is a mistake (a grid with one factor too many), refused before the
# combinations are built rather than after they fill the memory.
MAX_PLANNED_TRIALS = 100_000


class Study(Protocol):
    """What a design reads of a study (:class:`ablate.study.Study` is the one implementation).

    Designs sit below the study class that holds them, so they name it by this protocol, not by
    an import back up."""

    design: str
    seeds: Sequence[int]
    baseline: Mapping[str, Any] | None
    n_trials: int | None

    @property
    def where(self) -> str: ...

    @property
    def spaces(self) -> dict[str, Space]: ...

    def expand(self) -> list[TrialSpec]: ...

    def baseline_levels(self) -> dict[str, Any]: ...


class Design:
    """Base class of the designs: the rule that turns a study's factors into trials.

    A design either plans every trial before anything runs (``adaptive = False``: grid, OFAT) or
    proposes them one at a time from the results so far (``adaptive = True``: Optuna's samplers).
    Designs hold no state; each method is given the study. They are called in this order:

    1. :meth:`check_factor` by :meth:`Study.validate` (so by ``ablate plan`` and ``ablate run``
       alike) for each factor before its levels are checked, then :meth:`check` once all are,
       before any trial is built: they refuse what this design cannot do (a range in a grid, a
       search without ``n_trials``).
    2. :meth:`plan` right after, by the same call: the trials written to the database before any
       runs. A fixed design returns all of them (constraints applied, seed-major); an adaptive
       design returns ``[]``, its trials being proposed later.
    3. :meth:`planned_trials` wherever a count is shown or a budget is set (``ablate plan``,
       ``ablate run``, ``ablate status``): how many trials the study will have in all.
    4. :meth:`sampler` (adaptive designs only) by a worker each time it needs a new trial: the
       Optuna sampler of a fresh Optuna study that is given every trial so far, then asked for
       the next point (``ablate.run.make_proposer``). ``seed`` differs per proposal, so two
       workers proposing at once draw different points.

    ``selects_on_metric`` says whether the design chooses configurations by the study's metric
    (then a test metric is refused: it would select on test images).

    To add a design, subclass this and register it: ``@DESIGNS.register("name")``.
    """

    adaptive: ClassVar[bool] = False
    selects_on_metric: ClassVar[bool] = False

    def check_factor(self, study: Study, factor: str, space: Space) -> None:
        """Raise a StudyError for a factor this design cannot vary so."""

    def check(self, study: Study, spaces: dict[str, Space]) -> None:
        """Raise a StudyError for a declaration this design cannot run."""

    def plan(self, study: Study) -> list[TrialSpec]:
        """The trials to write before anything runs (``[]`` for an adaptive design)."""
        return study.expand()

    def planned_trials(self, study: Study, specs: Sequence[TrialSpec] | None = None) -> int:
        """How many trials the study plans in all; ``specs`` is its :meth:`plan`, if at hand."""
        return len(specs if specs is not None else self.plan(study))

    def combinations(self, study: Study) -> list[dict[str, Any]]:
        """The factor-level combinations of a fixed design, before constraints."""
        raise StudyError(f"{study.where}: design {study.design!r} has no fixed plan")

    def configurations(self, study: Study) -> int:
        """How many configurations an adaptive design proposes (each runs once per seed)."""
        raise StudyError(f"{study.where}: design {study.design!r} plans its trials; it proposes none")

    def sampler(self, study: Study, seed: int) -> Any:
        """The Optuna sampler that proposes this design's next point (adaptive designs)."""
        raise StudyError(f"{study.where}: design {study.design!r} plans its trials; it proposes none")


DESIGNS: Registry[type[Design]] = Registry("design")


class _FixedDesign(Design):
    """Every trial planned up front from the declared levels."""

    def check_factor(self, study: Study, factor: str, space: Space) -> None:
        if not space.discrete:
            raise StudyError(
                f"{study.where}: factor {factor!r} is {space.describe()}, but design {study.design!r} "
                f"needs a list of levels (ranges are for design {_adaptive_names()})"
            )

    def check(self, study: Study, spaces: dict[str, Space]) -> None:
        sizes = [len(space.levels()) for space in spaces.values()]
        configs, shape = self.size(sizes)
        trials = configs * len(study.seeds)
        if trials > MAX_PLANNED_TRIALS:
            raise StudyError(
                f"{study.where}: the {study.design} has {shape} = {configs:,} configurations x "
                f"{len(study.seeds)} seeds = {trials:,} trials; at most {MAX_PLANNED_TRIALS:,} "
                f"can be planned (drop levels, or use design {_adaptive_names(' / ')} with n_trials)"
            )

    def size(self, sizes: list[int]) -> tuple[int, str]:
        """Configurations before constraints for factors of these level counts, and the sum shown."""
        raise NotImplementedError


@DESIGNS.register("grid")
class GridDesign(_FixedDesign):
    """Every combination of the factors' levels."""

    def size(self, sizes: list[int]) -> tuple[int, str]:
        return math.prod(sizes), " x ".join(map(str, sizes)) or "1"

    def combinations(self, study: Study) -> list[dict[str, Any]]:
        levels = {name: space.levels() for name, space in study.spaces.items()}
        names = list(levels)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*levels.values())]


@DESIGNS.register("ofat")
class OfatDesign(_FixedDesign):
    """The baseline, then one factor changed at a time to each of its other levels."""

    def size(self, sizes: list[int]) -> tuple[int, str]:
        shape = f"1 + {' + '.join(str(n - 1) for n in sizes)}" if sizes else "1"
        return 1 + sum(n - 1 for n in sizes), shape

    def combinations(self, study: Study) -> list[dict[str, Any]]:
        base = study.baseline_levels()
        combos = [dict(base)]
        for factor, space in study.spaces.items():
            for value in space.levels():
                if level_value(factor, value) != level_value(factor, base[factor]):
                    combos.append({**base, factor: value})
        return combos


class _SearchDesign(Design):
    """``n_trials`` points of the factors' space, proposed by an Optuna sampler as trials finish."""

    adaptive = True
    selects_on_metric = True

    def check(self, study: Study, spaces: dict[str, Space]) -> None:
        w = study.where
        if study.baseline is not None:
            raise StudyError(f"{w}: baseline is used by designs {_fixed_names()}, not {study.design!r}")
        if not isinstance(study.n_trials, int) or study.n_trials < 1:
            raise StudyError(f"{w}: design {study.design!r} needs n_trials >= 1, got {study.n_trials!r}")
        if not spaces:
            raise StudyError(f"{w}: design {study.design!r} needs at least one factor to search")

    def plan(self, study: Study) -> list[TrialSpec]:
        return []

    def configurations(self, study: Study) -> int:
        """``n_trials``, or the whole space when it holds fewer configurations (a sampler asked
        for more would find nothing left)."""
        n = study.n_trials or 0
        size = space_size(study.spaces)
        return n if size is None else min(n, size)

    def planned_trials(self, study: Study, specs: Sequence[TrialSpec] | None = None) -> int:
        # Each proposed point runs once per seed.
        return self.configurations(study) * len(study.seeds)


@DESIGNS.register("random")
class RandomDesign(_SearchDesign):
    """Points drawn uniformly from the space (Optuna's RandomSampler)."""

    def sampler(self, study: Study, seed: int) -> Any:
        import optuna

        return optuna.samplers.RandomSampler(seed=seed)


@DESIGNS.register("tpe")
class TpeDesign(_SearchDesign):
    """Points chosen by a Tree-structured Parzen Estimator from the results so far; running
    trials count as pending (constant liar), so parallel workers spread out."""

    def sampler(self, study: Study, seed: int) -> Any:
        import optuna

        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=5)


def space_size(spaces: Mapping[str, Space]) -> int | None:
    """How many configurations the factors' space holds (before constraints): the product of
    each factor's number of values; None when a factor is continuous (``uniform``)."""
    size = 1
    for space in spaces.values():
        if isinstance(space, Choice):
            size *= len(space.values)
        elif isinstance(space, IntRange):  # Optuna's IntDistribution: low, low + step, ... <= high
            size *= (space.high - space.low) // space.step + 1
        else:
            return None
    return size


def design_for(name: str, *, where: str) -> Design:
    """The design registered as ``name``; a StudyError with close matches when there is none."""
    return DESIGNS.get(name, where=where)()


def _adaptive_names(sep: str = " or ") -> str:
    return sep.join(repr(n) for n, d in DESIGNS.items() if d.adaptive)


def _fixed_names() -> str:
    return " and ".join(repr(n) for n, d in DESIGNS.items() if not d.adaptive)
