"""`Study`: a base configuration, factors, seeds and a design; and its expansion into trials."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ablate.errors import StudyError
from ablate.metrics import (
    Evaluation,
    Metric,
    declare_metrics,
    default_direction,
    metric_declaration,
    test_name,
)
from ablate.study._augment_ops import describe_ops
from ablate.study._config import (
    FIELDS,
    METRICS,
    VIEW_METRIC_COLUMNS,
    VIEW_TRIAL_COLUMNS,
    TrialConfig,
    TrialSpec,
    check_field_name,
    check_selection,
    check_settings_used,
    coerce_value,
    did_you_mean,
    make_config,
)
from ablate.study._designs import Design, design_for
from ablate.study._space import Choice, IntRange, Space, Uniform, as_space, level_value

PRUNERS = ("none", "median", "sha")
# Study names become a SQL view (study_<name>, within PostgreSQL's 63-character identifiers, so
# never shortened and never shared) and a folder under runs/: fullmatch, so no trailing newline.
MAX_STUDY_NAME = 63 - len("study_")
_NAME = re.compile(rf"[a-z][a-z0-9_]{{0,{MAX_STUDY_NAME - 1}}}")
# Factor names become columns of that view: identifiers within the same limit.
MAX_FACTOR_NAME = 63
_FACTOR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
INT64_MAX = 2**63 - 1

Constraint = Callable[[TrialConfig], bool]
TrainFunction = Callable[..., Mapping[str, Any]]
# A model of the study's own: an nn.Module class or a function of (config, in_chans, num_classes).
ModelFactory = Callable[..., Any]


@dataclass
class Study:
    """An ablation study, as declared in a study file.

    ``base`` holds the constant configuration; ``factors`` maps a field name to its levels (a list,
    or a space from :func:`choice`, :func:`uniform`, ...). A level may also be a dict of fields
    that change together (``dict(model="resnet50", batch_size=64)``), standing for the factor's
    own value in it. ``design`` names a registered :class:`Design`: ``grid`` (every combination),
    ``ofat`` (the baseline, then one factor changed at a time), ``random`` or ``tpe`` (Optuna
    samplers, ``n_trials`` points).
    ``constraints`` drop combinations: each is called with a trial's config and keeps it when it
    returns true. ``train`` replaces the built-in trainer with your own function.
    ``models`` names models of your own (``{"my_net": MyNet}``, a class or a function of config,
    in_chans and num_classes) that ``model=`` may use like a library's.
    ``metrics`` declares the metrics a ``train`` function reports besides the built-in ones
    (``[Metric("f1", "macro F1", direction="maximize", objective=True)]``), so that ``metric``
    may name one. ``smoke`` is what ``--smoke`` changes in the base of a ``train`` study
    (``dict(epochs=1, samples=64)``); the built-in trainer knows its own smoke run.
    ``evaluations`` add the study's own metrics (:class:`ablate.Evaluation`): computed after
    every epoch, stored, and usable as ``metric``.
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
    models: Mapping[str, ModelFactory] = field(default_factory=dict)
    metrics: Sequence[Metric] = ()
    smoke: Mapping[str, Any] | None = None
    evaluations: Sequence[Evaluation] = ()
    source: str = "<python>"

    def __post_init__(self) -> None:
        self.base = dict(self.base)
        self.factors = dict(self.factors)
        self.seeds = list(self.seeds)
        self.constraints = list(self.constraints)
        if isinstance(self.models, Mapping):
            self.models = dict(self.models)
        if isinstance(self.metrics, (list, tuple)):
            self.metrics = list(self.metrics)
        self.evaluations = list(self.evaluations)
        if self.direction is None:
            # A study's own metric (or its test_ twin) has the direction it is declared with.
            own = {n: m.direction for e in self.evaluations if isinstance(e, Evaluation)
                   for m in e.metrics if isinstance(m, Metric) for n in (m.name, test_name(m.name))}
            declared = self.declared_metric(self.metric)
            if declared is not None and declared.direction:
                own[self.metric] = declared.direction
            self.direction = own.get(self.metric) or default_direction(self.metric)

    def declared_metric(self, name: str) -> Metric | None:
        """The metric of that name the study declares (``metrics=``), if any."""
        if not isinstance(self.metrics, list):
            return None
        return next((m for m in self.metrics if isinstance(m, Metric) and m.name == name), None)

    # ----------------------------------------------------------------- validation
    @property
    def where(self) -> str:
        return f"{self.source}: study {self.name!r}"

    @property
    def strategy(self) -> Design:
        """The registered :class:`Design` named by ``design`` (StudyError with close matches if none)."""
        return design_for(self.design, where=self.where)

    @property
    def spaces(self) -> dict[str, Space]:
        return {name: as_space(name, value) for name, value in self.factors.items()}

    def validate(self) -> list[TrialSpec]:
        """Check the declaration and every trial it expands to; return the planned trials.

        Raises :class:`StudyError` naming the file, the study and the field on the first problem.
        Adaptive designs return an empty plan, after checking every level and bound of the space.
        """
        w = self.where
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise StudyError(
                f"{self.source}: study name {self.name!r} must be lower-case letters, digits and "
                f"underscores, starting with a letter, at most {MAX_STUDY_NAME} characters (it "
                "names a SQL view and a folder)"
            )
        design = self.strategy
        self._check_own_code()
        own = self._check_evaluations()
        allowed = [*METRICS, *own]
        if self.metric not in allowed and self.declared_metric(self.metric) is None:
            raise StudyError(
                f"{w}: metric {self.metric!r}{did_you_mean(str(self.metric), allowed)}; "
                f"allowed: {', '.join(allowed)} (a metric of your own is declared by an evaluation: "
                "evaluations=[Evaluation(fn, metrics=[Metric(...)])])"
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
            check_storable(value, where=f"{w}: base {key!r}")
            if key in FIELDS:
                coerce_value(key, value, where=f"{w}: base")
        spaces = self.spaces
        self._check_factor_names(spaces)
        for factor, space in spaces.items():
            check_field_name(factor, where=f"{w}: factors", allow_extra=allow_extra)
            if isinstance(space, Choice):
                self._check_distinct_levels(factor, space)
            design.check_factor(self, factor, space)
            for level in space.examples():
                self._check_level(factor, level, allow_extra)
        self._check_factors_set_distinct_fields(spaces)
        design.check(self, spaces)
        if design.adaptive:
            for config in self.example_configs():
                self._check_selection(config)
            return design.plan(self)
        specs = design.plan(self)
        if not specs:
            raise StudyError(f"{w}: the constraints drop every trial; nothing to run")
        if self.baseline is not None:
            # The report compares every row with the declared baseline: it must be planned.
            wanted = {k: level_value(k, v) for k, v in self.baseline_levels().items()}
            if not any(s.params == wanted for s in specs):
                text = ", ".join(f"{k}={v!r}" for k, v in wanted.items())
                raise StudyError(f"{w}: baseline ({text}) is excluded by the constraints; declare another baseline")
        for spec in specs:
            self._check_selection(spec.config)
        if self.train is None:
            check_settings_used([*self.base, *self.factors], [t.config for t in specs], where=w)
        return specs

    def _check_own_code(self) -> None:
        """``models``, ``metrics`` and ``smoke``: what each may hold."""
        self._check_models()
        self._check_declared_metrics()
        self._check_smoke()

    def _check_models(self) -> None:
        # A name against the libraries' is checked by the trainer, which knows them.
        w = self.where
        if not isinstance(self.models, Mapping):
            raise StudyError(f"{w}: models must be a dict of name: model class or function, got {_shown(self.models)}")
        for name, factory in self.models.items():
            if not isinstance(name, str) or not name.strip() or name != name.strip():
                raise StudyError(f"{w}: models has the name {name!r}; a model's name is a non-empty string")
            if not callable(factory):
                raise StudyError(
                    f"{w}: models[{name!r}] is {_shown(factory)}; give an nn.Module class or a "
                    "function of (config, in_chans, num_classes) returning one"
                )
        if self.models and self.train is not None:
            raise StudyError(
                f"{w}: models= names models for the built-in trainer; a train= function builds its own"
            )

    def _check_declared_metrics(self) -> None:
        w = self.where
        if not isinstance(self.metrics, list) or not all(isinstance(m, Metric) for m in self.metrics):
            raise StudyError(
                f"{w}: metrics must be a list of ablate.metrics.Metric(...), got {_shown(self.metrics)}"
            )
        names = [m.name for m in self.metrics]
        for m in self.metrics:
            if m.name in METRICS or m.name in VIEW_METRIC_COLUMNS or names.count(m.name) > 1:
                why = "a built-in metric's" if m.name in METRICS or m.name in VIEW_METRIC_COLUMNS else "declared twice, a"
                raise StudyError(f"{w}: metrics declares {m.name!r}, {why} name; name it differently")
        if self.metrics and self.train is None:
            raise StudyError(
                f"{w}: metrics= declares what a train= function reports; the built-in trainer "
                f"reports its own ({', '.join(METRICS)})"
            )
        own = self.declared_metric(self.metric)
        if own is not None and not own.objective:
            raise StudyError(
                f"{w}: metric {self.metric!r} is declared without objective=True; declare it "
                "Metric(..., direction=..., objective=True) to optimise it"
            )

    def _check_smoke(self) -> None:
        w = self.where
        if self.smoke is not None:
            if self.train is None:
                raise StudyError(
                    f"{w}: smoke= says what --smoke does for a train= function; the built-in "
                    "trainer's smoke run is its own (one epoch on synthetic data)"
                )
            if not isinstance(self.smoke, Mapping) or not all(isinstance(k, str) for k in self.smoke):
                raise StudyError(
                    f"{w}: smoke must be a dict of the base fields --smoke changes, such as "
                    f"dict(epochs=1), got {_shown(self.smoke)}"
                )
            for key in self.smoke:
                check_field_name(key, where=f"{w}: smoke", allow_extra=True)

    def own_metrics(self) -> list[Metric]:
        """The metrics the study's evaluations produce (val_x per epoch, test_x once), declared."""
        return [m for e in self.evaluations if isinstance(e, Evaluation) for m in e.declared()]

    def _check_evaluations(self) -> list[str]:
        """Check the evaluations and put their metrics in the metric table; their names."""
        if not self.evaluations:
            return []
        w = self.where
        if self.train is not None:
            raise StudyError(
                f"{w}: evaluations run in the built-in trainer; a train= function reports its "
                "own metrics (return them, or report them each epoch)"
            )
        seen: dict[str, str] = {}
        factors = {str(f).lower() for f in self.factors}
        for e in self.evaluations:
            if not isinstance(e, Evaluation):
                raise StudyError(f"{w}: evaluations holds {e!r}; each is an ablate.Evaluation (or @evaluation)")
            e.check(where=w)
            for m in e.declared():
                if m.name in seen:
                    raise StudyError(
                        f"{w}: metric {m.name!r} is declared by evaluations {seen[m.name]!r} and {e.name!r}; "
                        "each metric has one"
                    )
                if m.name in factors:
                    raise StudyError(f"{w}: metric {m.name!r} is also a factor; name one differently")
                seen[m.name] = e.name
        own = self.own_metrics()
        declare_metrics(own)
        return [m.name for m in own]

    def _check_selection(self, config: TrialConfig) -> None:
        if self.train is None:  # a custom train function decides itself what it evaluates on
            check_selection(
                config, metric=self.metric, design=self.design,
                selects_on_metric=self.strategy.selects_on_metric, pruner=self.pruner, where=self.where,
            )

    def _check_factor_names(self, spaces: Mapping[str, Space]) -> None:
        # A factor named like a view column takes the name and the column becomes trial_<name>;
        # so trial_<column> itself is not free, and SQLite compares column names without case.
        reserved = {f"trial_{c}" for c in VIEW_TRIAL_COLUMNS + VIEW_METRIC_COLUMNS}
        seen: dict[str, str] = {}
        for factor in spaces:
            where = f"{self.where}: factor {factor!r}"
            if not isinstance(factor, str) or not _FACTOR_NAME.fullmatch(factor):
                raise StudyError(
                    f"{where}: a factor name is letters, digits and underscores, not starting "
                    "with a digit (it names a column of the study's SQL view)"
                )
            if len(factor) > MAX_FACTOR_NAME:
                raise StudyError(
                    f"{where}: {len(factor)} characters; at most {MAX_FACTOR_NAME} (SQL identifier)"
                )
            if factor.lower() in reserved:
                raise StudyError(
                    f"{where}: the study's view already has a column {factor.lower()!r}; "
                    "name the factor differently"
                )
            if factor.lower() in seen:
                raise StudyError(
                    f"{where}: same name as factor {seen[factor.lower()]!r} but for case, which "
                    "SQL column names do not tell apart"
                )
            seen[factor.lower()] = factor

    def _check_factors_set_distinct_fields(self, spaces: Mapping[str, Space]) -> None:
        """Each field is set by one factor at most: a coupled level setting another factor's
        field (or a field another factor's coupled levels set too) would win or lose by the
        order of the factors, and the trial would be recorded with a value it did not train at.
        (A factor setting a field of ``base`` is what a factor is for.)"""
        owner: dict[str, str] = {}
        for factor, space in spaces.items():
            fields = {factor}
            if isinstance(space, Choice):
                fields.update(k for level in space.values if isinstance(level, dict) for k in level)
            for name in sorted(fields, key=lambda k: (k != factor, k)):
                other = owner.setdefault(name, factor)
                if other != factor:
                    how = ", ".join(
                        f"{f!r} is that field" if f == name else f"a level of {f!r} sets it" for f in (other, factor)
                    )
                    raise StudyError(
                        f"{self.where}: factors {other!r} and {factor!r} both set field {name!r} ({how}); "
                        f"which value trains would depend on the order of the factors: set {name!r} "
                        "in one factor only"
                    )

    def _check_distinct_levels(self, factor: str, space: Choice) -> None:
        """Each level has its own value: it names the level in the results and the report."""
        seen: dict[str, Any] = {}
        for level in space.values:
            coupled_without_key = isinstance(level, dict) and factor not in level
            value = level if coupled_without_key else level_value(factor, level)
            key = json.dumps(value, sort_keys=True, default=repr)
            if key in seen:
                same = seen[key] == level
                what = "repeats the level" if same else "has two levels with the value"
                raise StudyError(
                    f"{self.where}: factor {factor!r} {what} {value!r}; each level needs a "
                    "value of its own"
                )
            seen[key] = level

    def _check_level(self, factor: str, level: Any, allow_extra: bool) -> None:
        where = f"{self.where}: factor {factor!r}"
        check_storable(level, where=f"{where} level")
        if isinstance(level, dict) and "seed" in level:
            raise StudyError(
                f"{where}: the level {level!r} sets 'seed'; set replicates with seeds=[...]"
            )
        if isinstance(level, dict):
            if factor == "augment_ops" and "op" in level:
                raise StudyError(
                    f"{where}: the level {level!r} is one operation, but each level of augment_ops is a "
                    f"list of them: augment_ops=[[{level!r}], ...]"
                )
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
        return self.strategy.combinations(self)

    def example_configs(self) -> list[TrialConfig]:
        """The configs an adaptive design is checked on before it proposes any: each factor's
        levels and bounds, one factor at a time, the others at the base (or their default)."""
        return [
            self.config_for({factor: level}, self.seeds[0])
            for factor, space in self.spaces.items()
            for level in space.examples()
        ]

    def baseline_levels(self) -> dict[str, Any]:
        """The baseline (grid or OFAT) as declared levels: ``baseline`` values, else each factor's first level."""
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
        first: dict[str, dict[str, Any]] = {}
        for seed in self.seeds:
            for levels, params in configs:
                config = self.config_for(levels, seed)
                if seed == self.seeds[0]:
                    if config.config_hash in first:
                        raise StudyError(
                            f"{self.where}: levels {first[config.config_hash]} and {params} give "
                            "the same configuration; each trial must differ (drop one, or make "
                            "the coupled levels differ)"
                        )
                    first[config.config_hash] = params
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
            # Keys present only when used, so that the definitions of other studies are unchanged.
            **({"models": sorted(self.models)} if self.models else {}),
            **({"evaluations": [e.name for e in self.evaluations]} if self.evaluations else {}),
            **({"metrics": [metric_declaration(m) for m in [*self.metrics, *self.own_metrics()]]}
               if self.metrics or self.evaluations else {}),
            **({"smoke": _jsonable(dict(self.smoke))} if self.smoke else {}),
        }

    def base_hash(self) -> str:
        """Identity of what the results depend on besides factors and seeds: base and trainer."""
        identity: dict[str, Any] = {"base": _jsonable(self.base), "train": self.definition()["custom_train"]}
        if self.models:  # the same names, built by other code, are other results
            identity["models"] = {k: getattr(v, "__qualname__", repr(v)) for k, v in sorted(self.models.items())}
        if self.evaluations:  # what the results depend on, like train=
            identity["evaluations"] = [getattr(e.fn, "__qualname__", e.name) for e in self.evaluations]
        blob = json.dumps(
            identity,
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def check_storable(value: Any, *, where: str) -> None:
    """Raise StudyError for a value the database cannot hold as given: NaN or an infinity
    (stored as NULL, so two levels would look alike), an integer past 64 bits."""
    if isinstance(value, float) and not math.isfinite(value):
        raise StudyError(f"{where}: {value} cannot be stored; use a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
        raise StudyError(f"{where}: {value} is past 64 bits and cannot be stored")
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_storable(item, where=f"{where}: {key!r}")
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_storable(item, where=where)


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
    """For each factor, how many planned trials use each level (shown by `ablate plan`). A list
    or dict level (``cnn_kernel_sizes``) is keyed by its JSON text, an op list (``augment_ops``)
    by its ops, as the report labels them."""
    counts: dict[str, dict[Any, int]] = {}
    for spec in specs:
        for factor, value in spec.params.items():
            if isinstance(value, (list, dict)):
                value = describe_ops(value) or json.dumps(value, sort_keys=True)
            per = counts.setdefault(factor, {})
            per[value] = per.get(value, 0) + 1
    return counts
