"""`Study`: a base configuration, factors, seeds and a design; and its expansion into trials."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ablate.errors import StudyError
from ablate.study._config import (
    FIELDS,
    METRICS,
    TrialConfig,
    check_field_name,
    check_selection,
    check_settings_used,
    coerce_value,
    did_you_mean,
    make_config,
)
from ablate.study._space import Choice, IntRange, Space, Uniform, as_space, level_value

DESIGNS = ("grid", "ofat", "random", "tpe")
ADAPTIVE_DESIGNS = ("random", "tpe")
PRUNERS = ("none", "median", "sha")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

Constraint = Callable[[TrialConfig], bool]
TrainFunction = Callable[..., Mapping[str, Any]]


@dataclass(frozen=True)
class TrialSpec:
    """One planned trial: its number in the study, factor values, seed and full configuration."""

    number: int
    params: dict[str, Any]
    seed: int
    config: TrialConfig

    @property
    def config_hash(self) -> str:
        return self.config.config_hash


@dataclass
class Study:
    """An ablation study, as declared in a study file.

    ``base`` holds the constant configuration; ``factors`` maps a field name to its levels (a list,
    or a space from :func:`choice`, :func:`uniform`, ...). A level may also be a dict of fields
    that change together (``dict(model="resnet50", batch_size=64)``), standing for the factor's
    own value in it. ``design`` is ``grid`` (every combination), ``ofat`` (the baseline, then one
    factor changed at a time), ``random`` or ``tpe`` (Optuna samplers, ``n_trials`` points).
    ``constraints`` drop combinations: each is called with a trial's config and keeps it when it
    returns true. ``train`` replaces the built-in trainer with your own function.
    """

    name: str
    base: Mapping[str, Any] = field(default_factory=dict)
    factors: Mapping[str, Any] = field(default_factory=dict)
    seeds: Sequence[int] = (0,)
    design: str = "grid"
    metric: str = "val_acc"
    direction: str | None = None
    baseline: Mapping[str, Any] | None = None
    constraints: Sequence[Constraint] = ()
    n_trials: int | None = None
    pruner: str = "none"
    description: str = ""
    train: TrainFunction | None = None
    wandb: Mapping[str, Any] | None = None
    source: str = "<python>"

    def __post_init__(self) -> None:
        self.base = dict(self.base)
        self.factors = dict(self.factors)
        self.seeds = list(self.seeds)
        self.constraints = list(self.constraints)
        if self.direction is None:
            self.direction = "minimize" if self.metric.endswith("loss") else "maximize"

    # ----------------------------------------------------------------- validation
    @property
    def where(self) -> str:
        return f"{self.source}: study {self.name!r}"

    @property
    def spaces(self) -> dict[str, Space]:
        return {name: as_space(name, value) for name, value in self.factors.items()}

    def validate(self) -> list[TrialSpec]:
        """Check the declaration and every trial it expands to; return the planned trials.

        Raises :class:`StudyError` naming the file, the study and the field on the first problem.
        Adaptive designs return an empty plan, after checking every level and bound of the space.
        """
        w = self.where
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise StudyError(
                f"{self.source}: study name {self.name!r} must be lower-case letters, digits and "
                "underscores, starting with a letter (it names a SQL view)"
            )
        if self.design not in DESIGNS:
            raise StudyError(
                f"{w}: design {self.design!r}{did_you_mean(str(self.design), DESIGNS)}; "
                f"allowed: {', '.join(DESIGNS)}"
            )
        if self.metric not in METRICS:
            raise StudyError(
                f"{w}: metric {self.metric!r}{did_you_mean(str(self.metric), METRICS)}; "
                f"allowed: {', '.join(METRICS)}"
            )
        if self.direction not in ("maximize", "minimize"):
            raise StudyError(f"{w}: direction {self.direction!r}; allowed: maximize, minimize")
        if self.pruner not in PRUNERS:
            raise StudyError(f"{w}: pruner {self.pruner!r}; allowed: {', '.join(PRUNERS)}")
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds):
            raise StudyError(f"{w}: seeds must be a non-empty list of integers >= 0, got {self.seeds!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise StudyError(f"{w}: seeds {self.seeds!r} repeat a value")
        if "seed" in self.base or "seed" in self.factors:
            raise StudyError(f"{w}: set replicates with seeds=[...], not a 'seed' field")
        if self.train is not None and not callable(self.train):
            raise StudyError(f"{w}: train must be a function, got {self.train!r}")
        allow_extra = self.train is not None
        for key, value in self.base.items():
            check_field_name(key, where=f"{w}: base", allow_extra=allow_extra)
            if key in FIELDS:
                coerce_value(key, value, where=f"{w}: base")
        spaces = self.spaces
        for factor, space in spaces.items():
            check_field_name(factor, where=f"{w}: factors", allow_extra=allow_extra)
            if self.design not in ADAPTIVE_DESIGNS and not space.discrete:
                raise StudyError(
                    f"{w}: factor {factor!r} is {space.describe()}, but design {self.design!r} "
                    "needs a list of levels (ranges are for design 'random' or 'tpe')"
                )
            for level in space.examples():
                self._check_level(factor, level, allow_extra)
        if self.design in ADAPTIVE_DESIGNS:
            if not isinstance(self.n_trials, int) or self.n_trials < 1:
                raise StudyError(f"{w}: design {self.design!r} needs n_trials >= 1, got {self.n_trials!r}")
            if not spaces:
                raise StudyError(f"{w}: design {self.design!r} needs at least one factor to search")
            for factor, space in spaces.items():
                for level in space.examples():
                    self._check_selection(self.config_for({factor: level}, self.seeds[0]))
            return []
        if self.baseline is not None and self.design != "ofat":
            raise StudyError(f"{w}: baseline is only used by design 'ofat'")
        specs = self.expand()
        if not specs:
            raise StudyError(f"{w}: the constraints drop every trial; nothing to run")
        for spec in specs:
            self._check_selection(spec.config)
        if self.train is None:
            check_settings_used([*self.base, *self.factors], [t.config for t in specs], where=w)
        return specs

    def _check_selection(self, config: TrialConfig) -> None:
        if self.train is None:  # a custom train function decides itself what it evaluates on
            check_selection(config, metric=self.metric, design=self.design, pruner=self.pruner, where=self.where)

    def _check_level(self, factor: str, level: Any, allow_extra: bool) -> None:
        where = f"{self.where}: factor {factor!r}"
        if isinstance(level, dict):
            if factor not in level:
                raise StudyError(
                    f"{where}: the coupled level {level!r} must contain the factor's own key {factor!r}"
                )
            for key, value in level.items():
                check_field_name(key, where=where, allow_extra=allow_extra)
                if key in FIELDS:
                    coerce_value(key, value, where=where)
        elif factor in FIELDS:
            coerce_value(factor, level, where=where)

    # ----------------------------------------------------------------- expansion
    def config_for(self, levels: Mapping[str, Any], seed: int, *, cross_checks: bool = True) -> TrialConfig:
        """The validated config for one combination of factor levels (declared levels)."""
        values = dict(self.base)
        for factor, level in levels.items():
            if isinstance(level, dict):
                values.update(level)
            else:
                values[factor] = level
        values["seed"] = seed
        label = ", ".join(f"{k}={level_value(k, v)!r}" for k, v in levels.items())
        where = f"{self.where}: trial ({label})" if label else f"{self.where}: base"
        return make_config(
            values, where=where, allow_extra=self.train is not None, cross_checks=cross_checks
        )

    def level_combinations(self) -> list[dict[str, Any]]:
        """The factor-level combinations of a grid or OFAT design, before constraints."""
        spaces = self.spaces
        levels = {name: space.levels() for name, space in spaces.items()}
        if self.design == "grid":
            names = list(levels)
            return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*levels.values())]
        if self.design == "ofat":
            return self._ofat_combinations(levels)
        raise StudyError(f"{self.where}: design {self.design!r} has no fixed plan")

    def baseline_levels(self) -> dict[str, Any]:
        """The OFAT baseline as declared levels: ``baseline`` values, else each factor's first level."""
        spaces = self.spaces
        chosen = dict(self.baseline or {})
        unknown = set(chosen) - set(spaces)
        if unknown:
            name = sorted(unknown)[0]
            raise StudyError(
                f"{self.where}: baseline names {name!r}, which is not a factor"
                f"{did_you_mean(name, spaces)} (factors: {', '.join(spaces)})"
            )
        result = {}
        for factor, space in spaces.items():
            assert isinstance(space, Choice)
            if factor in chosen:
                try:
                    result[factor] = space.level_for(factor, chosen[factor])
                except KeyError:
                    allowed = ", ".join(repr(level_value(factor, v)) for v in space.values)
                    raise StudyError(
                        f"{self.where}: baseline {factor}={chosen[factor]!r} is not one of its levels ({allowed})"
                    ) from None
            else:
                result[factor] = space.values[0]
        return result

    def _ofat_combinations(self, levels: dict[str, list[Any]]) -> list[dict[str, Any]]:
        base = self.baseline_levels()
        combos = [dict(base)]
        for factor, values in levels.items():
            for value in values:
                if level_value(factor, value) == level_value(factor, base[factor]):
                    continue
                combos.append({**base, factor: value})
        return combos

    def expand(self) -> list[TrialSpec]:
        """Every trial of a grid/OFAT design: configs in declaration order, seed-major.

        All configurations' first seed come before any second seed, so a study cut short by a
        budget still has one replicate of everything.
        """
        configs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for levels in self.level_combinations():
            candidate = self.config_for(levels, self.seeds[0], cross_checks=False)
            if self.keeps(candidate):
                params = {k: level_value(k, v) for k, v in levels.items()}
                configs.append((levels, params))
        specs: list[TrialSpec] = []
        for seed in self.seeds:
            for levels, params in configs:
                config = self.config_for(levels, seed)
                specs.append(TrialSpec(len(specs), params, seed, config))
        return specs

    def keeps(self, config: TrialConfig) -> bool:
        """Whether every constraint keeps this configuration."""
        for keep in self.constraints:
            try:
                if not keep(config):
                    return False
            except Exception as e:
                name = getattr(keep, "__name__", repr(keep))
                raise StudyError(f"{self.where}: constraint {name} raised {type(e).__name__}: {e}") from None
        return True

    # ----------------------------------------------------------------- identity
    def definition(self) -> dict[str, Any]:
        """JSON-able description stored with the study (and hashed to detect edits)."""
        return {
            "name": self.name,
            "design": self.design,
            "metric": self.metric,
            "direction": self.direction,
            "base": _jsonable(self.base),
            "factors": {k: _jsonable_space(v) for k, v in self.spaces.items()},
            "seeds": list(self.seeds),
            "baseline": _jsonable(dict(self.baseline)) if self.baseline else None,
            "n_trials": self.n_trials,
            "pruner": self.pruner,
            "description": self.description,
            "constraints": len(self.constraints),
            "custom_train": getattr(self.train, "__qualname__", None) if self.train else None,
        }

    def base_hash(self) -> str:
        """Identity of what the results depend on besides factors and seeds: base and trainer."""
        blob = json.dumps(
            {"base": _jsonable(self.base), "train": self.definition()["custom_train"]},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _jsonable_space(space: Space) -> Any:
    if isinstance(space, Choice):
        return {"levels": _jsonable(list(space.values))}
    if isinstance(space, Uniform):
        return {"uniform": [space.low, space.high], "log": space.log}
    assert isinstance(space, IntRange)
    return {"int": [space.low, space.high], "step": space.step, "log": space.log}


def _space_from_json(value: Mapping[str, Any]) -> Space:
    if "levels" in value:
        return Choice(tuple(value["levels"]))
    if "uniform" in value:
        low, high = value["uniform"]
        return Uniform(low, high, log=value["log"])
    low, high = value["int"]
    return IntRange(low, high, step=value["step"], log=value["log"])


def study_from_definition(definition: Mapping[str, Any], *, source: str = "<database>") -> Study:
    """Rebuild a Study from its stored definition, so a worker needs no study file.

    Constraints and a custom train function are Python code and are not stored: a study that
    uses them must be run with its file.
    """
    return Study(
        name=definition["name"],
        base=definition["base"],
        factors={k: _space_from_json(v) for k, v in definition["factors"].items()},
        seeds=definition["seeds"],
        design=definition["design"],
        metric=definition["metric"],
        direction=definition["direction"],
        baseline=definition.get("baseline"),
        n_trials=definition.get("n_trials"),
        pruner=definition.get("pruner", "none"),
        description=definition.get("description", ""),
        source=source,
    )


def iter_level_counts(specs: Iterable[TrialSpec]) -> dict[str, dict[Any, int]]:
    """For each factor, how many planned trials use each level (shown by `ablate plan`)."""
    counts: dict[str, dict[Any, int]] = {}
    for spec in specs:
        for factor, value in spec.params.items():
            per = counts.setdefault(factor, {})
            per[value] = per.get(value, 0) + 1
    return counts
