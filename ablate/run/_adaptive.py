"""Optuna as the sampler and pruner library, with our database as the only source of truth.

Nothing of Optuna's is persisted: for every proposal or pruning decision an in-memory Optuna
study is rebuilt from the trials in our database, so any number of workers on any machine
agree, and the proposal happens under the store's claim lock so no two workers propose the
same point.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ablate.study import Choice, Study, TrialSpec

if TYPE_CHECKING:
    from ablate.store import ResultStore

# Tries before concluding that the sampler keeps returning configurations that already ran
# (a small categorical space can be exhausted).
_MAX_DUPLICATE_DRAWS = 50
_RUNG_KEY = "completed_rung_{}"
# PruningHistory reads again the epochs stamped this long before the newest one it has seen: a
# row becomes visible when its transaction commits, which can be after rows stamped later were
# read (a writer that waited for SQLite's lock, up to its 30 s busy timeout; a slow commit on
# PostgreSQL, whose now() is the transaction's start).
EPOCH_READ_OVERLAP = timedelta(seconds=120)


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _study_seed(name: str, salt: int) -> int:
    return int(hashlib.sha256(f"{name}:{salt}".encode()).hexdigest()[:8], 16)


def _field(record: Any, name: str) -> Any:
    return record[name] if isinstance(record, Mapping) else getattr(record, name)


def make_proposer(study: Study, *, transform: Callable[[Any], Any] | None = None) -> Callable[[Sequence[Any]], TrialSpec | None]:
    """A `propose(existing)` callback for the store's claim: the next point of a random/TPE study.

    ``existing`` are the study's trial records (number, seed, status, params, config_hash,
    metrics). While fewer than ``n_trials`` configurations exist (the space's size, if smaller),
    the sampler proposes a new one (first seed); then configurations missing a later seed get
    it, replicate by replicate.
    ``transform`` maps each config (``--smoke`` swaps in synthetic data).
    """
    spaces = study.spaces
    seeds = list(study.seeds)
    assert study.n_trials is not None
    n_configs = study.strategy.configurations(study)  # n_trials, or the whole space if smaller

    def spec_for(levels: dict[str, Any], number: int, seed: int) -> TrialSpec:
        config = study.config_for(levels, seed)
        if transform is not None:
            config = transform(config)
        params = {k: (v[k] if isinstance(v, dict) else v) for k, v in levels.items()}
        return TrialSpec(number, params, seed, config)

    def levels_from_params(params: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for factor, space in spaces.items():
            value = params[factor]
            out[factor] = space.level_for(factor, value) if isinstance(space, Choice) else value
        return out

    def propose(existing: Sequence[Any]) -> TrialSpec | None:
        number = 1 + max((_field(r, "number") for r in existing), default=-1)
        by_config: dict[str, list[Any]] = {}
        for r in existing:
            by_config.setdefault(_field(r, "config_hash"), []).append(r)
        if len(by_config) < n_configs:
            levels = _sample(study, existing, set(by_config), transform)
            if levels is not None:
                return spec_for(levels, number, seeds[0])
        for seed in seeds[1:]:
            for records in by_config.values():
                if all(_field(r, "seed") != seed for r in records):
                    return spec_for(levels_from_params(_field(records[0], "params")), number, seed)
        return None

    return propose


def _metric_value(record: Any, metric: str) -> float | None:
    metrics = _field(record, "metrics") or {}
    value = metrics.get(metric)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _sample(
    study: Study, existing: Sequence[Any], taken: set[str], transform: Callable[[Any], Any] | None
) -> dict[str, Any] | None:
    optuna = _quiet_optuna()
    from optuna.trial import TrialState, create_trial

    spaces = study.spaces
    distributions = {name: space.optuna_distribution(name) for name, space in spaces.items()}
    seed = _study_seed(study.name, len(existing))
    sampler = study.strategy.sampler(study, seed)
    ostudy = optuna.create_study(direction=study.direction, sampler=sampler)
    for record in existing:
        if _field(record, "seed") != study.seeds[0]:
            continue
        params = {k: v for k, v in (_field(record, "params") or {}).items() if k in distributions}
        if len(params) != len(distributions):
            continue
        value = _metric_value(record, study.metric)
        status = _field(record, "status")
        if status == "completed" and value is not None:
            ostudy.add_trial(create_trial(params=params, distributions=distributions, value=value))
        elif status in ("queued", "running"):
            # Running trials count as pending points so TPE's constant liar steers away from them.
            ostudy.add_trial(create_trial(state=TrialState.RUNNING, params=params, distributions=distributions))
        else:
            ostudy.add_trial(create_trial(state=TrialState.FAIL, params=params, distributions=distributions))
    for _ in range(_MAX_DUPLICATE_DRAWS):
        trial = ostudy.ask(distributions)
        levels = {}
        for factor, space in spaces.items():
            value = trial.params[factor]
            levels[factor] = space.level_for(factor, value) if isinstance(space, Choice) else value
        config = study.config_for(levels, study.seeds[0], cross_checks=False)
        if transform is not None:
            config = transform(config)
        if config.config_hash not in taken and study.keeps(config):
            study.config_for(levels, study.seeds[0])  # full validation of the chosen point
            return levels
        # Tell the sampler this point is no use, so it moves elsewhere.
        ostudy.tell(trial, state=TrialState.FAIL)
    return None


class PruningCheck:
    """Decides after each epoch whether a trial should stop, with an Optuna pruner.

    ``others`` are, for the other trials of the study, (status, {epoch: metric}) pairs (see
    :class:`PruningHistory`); the current trial's values are passed as ``current``.
    """

    def __init__(self, pruner: str, metric: str, direction: str) -> None:
        self.pruner_name = pruner
        self.metric = metric
        self.direction = direction

    def _pruner(self) -> Any:
        optuna = _quiet_optuna()
        if self.pruner_name == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
        if self.pruner_name == "sha":
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        raise ValueError(self.pruner_name)

    def should_prune(
        self, current: Mapping[int, float], others: Sequence[tuple[str, Mapping[int, float]]]
    ) -> bool:
        optuna = _quiet_optuna()
        from optuna.distributions import FloatDistribution
        from optuna.trial import TrialState, create_trial

        pruner = self._pruner()
        ostudy = optuna.create_study(direction=self.direction, pruner=pruner)
        dist: dict[str, Any] = {"_": FloatDistribution(0.0, 1.0)}
        for status, curve in others:
            if not curve:
                continue
            state = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(status, TrialState.RUNNING)
            last = curve[max(curve)]
            ostudy.add_trial(
                create_trial(
                    state=state,
                    value=last if state == TrialState.COMPLETE else None,
                    params={"_": 0.0},
                    distributions=dist,
                    intermediate_values=dict(curve),
                    system_attrs=self._rung_attrs(curve),
                )
            )
        ostudy.add_trial(
            create_trial(
                state=TrialState.RUNNING, params={"_": 0.0}, distributions=dist,
                intermediate_values=dict(current),
            )
        )
        (trial,) = ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,))[-1:]
        return bool(pruner.prune(ostudy, trial))

    def _rung_attrs(self, curve: Mapping[int, float]) -> dict[str, float]:
        # Successive halving remembers each trial's value at every rung it reached; rebuild
        # that memory from the per-epoch metrics (rung r is reached at epoch 3**r).
        if self.pruner_name != "sha":
            return {}
        attrs, rung = {}, 0
        while 3**rung in curve:
            attrs[_RUNG_KEY.format(rung)] = curve[3**rung]
            rung += 1
        return attrs


class PruningHistory:
    """The learning curves of a study's trials, as :meth:`PruningCheck.should_prune` compares
    them, kept up to date by reading only what changed since the last read.

    One per worker, across the trials it runs. Each read fetches every trial's status and the
    epochs recorded since the previous read (plus :data:`EPOCH_READ_OVERLAP`), not the whole
    study: the cost of a read grows with the number of trials, not with trials x epochs. The
    only rows that disappear are those of a trial restarted from epoch 1 (``start_fresh``); that
    happens on a later attempt, so such trials, while running or when their status or attempt
    changed, are read whole.
    """

    def __init__(self, store: ResultStore, study: str, metric: str) -> None:
        self.store, self.study, self.metric = store, study, metric
        self._epochs: dict[int, dict[int, float | None]] = {}  # trial_id -> epoch -> value
        self._states: dict[int, tuple[str, int]] = {}  # trial_id -> (status, attempt)
        self._newest: datetime | None = None

    def others(self, trial_id: int) -> list[tuple[str, dict[int, float]]]:
        """(status, {epoch: value}) of every trial but ``trial_id`` that has recorded epochs,
        by trial id; epochs without a value are left out of its curve."""
        since = None if self._newest is None else self._newest - EPOCH_READ_OVERLAP
        rows = self.store.epoch_values(self.study, self.metric, recorded_since=since)
        states = self.store.trial_states(self.study)  # after the epochs, as a full read has them
        whole: list[int] = []
        if since is not None and any(t not in states for t in self._epochs):
            # A new version of the study (or trials gone): start over, as a full read would.
            self._epochs, self._newest = {}, None
            rows = self.store.epoch_values(self.study, self.metric)
        elif since is not None:
            whole = [
                t
                for t, (status, attempt) in states.items()
                if t != trial_id
                and attempt > 1
                and (status == "running" or self._states.get(t) != (status, attempt))
            ]
        self._add(rows)
        if whole:
            for t in whole:
                self._epochs.pop(t, None)
            self._add(self.store.epoch_values(self.study, self.metric, trial_ids=whole))
        self._states = states
        return [
            (states.get(t, ("running", 0))[0], {e: v for e, v in sorted(curve.items()) if v is not None})
            for t, curve in sorted(self._epochs.items())
            if t != trial_id
        ]

    def _add(self, rows: Sequence[tuple[int, int, float | None, datetime]]) -> None:
        for t, epoch, value, recorded_at in rows:
            self._epochs.setdefault(t, {})[epoch] = value
            if self._newest is None or recorded_at > self._newest:
                self._newest = recorded_at
