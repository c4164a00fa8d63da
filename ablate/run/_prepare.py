"""The one validation of a study before anything runs: `ablate plan` and `ablate run` both call
:func:`plan_trials`, so plan refuses exactly what run refuses, with the same line.

The pipeline, in order: the declaration and every planned trial (fields, cross-field rules, the
design's own rules: :meth:`Study.validate`); the trainer's checks of every planned config (the
model builds, ``freeze`` and ``lr_groups`` fit its stages: ``ablate.train.check_trial_config``);
the study's metric against the dataset (``val_top5`` needs more than 5 classes); the data itself.
Adaptive designs, which plan no trial, are checked on every level and bound of their space.
The one difference between the commands: ``ablate run`` refuses a dataset that is not on this
machine, ``ablate plan`` shows it as a line (the plan of a study for another machine).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field

from ablate.errors import AblateError, StudyError
from ablate.study import Choice, IntRange, Study, TrialConfig, TrialSpec

SMOKE_SUFFIX = "_smoke"
# Adaptive studies in --smoke mode sample only this many points: enough to exercise the sampler
# with history, few enough for a CPU check of every study in CI.
SMOKE_ADAPTIVE_TRIALS = 3
# --smoke of an adaptive study counts its smoke configurations when its space is finite and
# holds at most this many points (a larger one holds more than SMOKE_ADAPTIVE_TRIALS anyway).
SMOKE_COUNT_MAX = 1000
# val_top5 ranks the true class among the top five: with five classes or fewer it is always 1.
TOP5_MIN_CLASSES = 6


@dataclass(frozen=True)
class PlannedStudy:
    """A validated study and what it plans: the trials to write (``[]`` for an adaptive design),
    and one line per data declaration saying what each split holds."""

    study: Study
    specs: list[TrialSpec]
    data: list[str] = field(default_factory=list)
    # Lines saying where the plan is not what was asked (both commands show them): a space
    # holding fewer configurations than n_trials, configurations that --smoke runs as one.
    notes: list[str] = field(default_factory=list)

    @property
    def planned(self) -> int:
        """How many trials the study will have in all (adaptive: points x seeds)."""
        return self.study.strategy.planned_trials(self.study, self.specs)


def smoke_study(study: Study) -> Study:
    """The same study under another name, for one short epoch per configuration on synthetic data
    (a ``train=`` study: with its base changed as its ``smoke=`` says).

    Only the first seed runs: other seeds are replicates that take the same code path, and a
    smoke run is a check of the code path, quick enough to run before every GPU session. An
    adaptive study samples at most SMOKE_ADAPTIVE_TRIALS points, fewer when its space holds
    fewer smoke configurations (levels that differ only in what --smoke sets are one).
    """
    n_trials = min(study.n_trials or 0, SMOKE_ADAPTIVE_TRIALS) or None
    base = {**study.base, **dict(study.smoke or {})}
    if n_trials is not None and study.train is None:
        groups = _smoke_groups(study, limit=n_trials)
        if groups:
            n_trials = min(n_trials, len(groups))
    return dataclasses.replace(
        study, name=study.name + SMOKE_SUFFIX, n_trials=n_trials, seeds=list(study.seeds[:1]), base=base
    )


def plan_trials(study: Study, *, smoke: bool = False, missing_data_ok: bool = False) -> PlannedStudy:
    """Validate the study and every trial it plans, before anything touches the database.

    Raises :class:`StudyError` (one line naming the file, the study and the field) on the first
    problem. ``smoke`` returns the ``--smoke`` variant (its own name, synthetic data, so the data
    is not checked); ``missing_data_ok`` turns an absent dataset into a line (``ablate plan``).
    """
    specs = study.validate()
    notes = _space_notes(study)
    if study.train is not None:  # a custom train function checks its own configs
        if not smoke:
            return PlannedStudy(study, specs, notes=notes)
        if study.smoke is None:
            raise StudyError(
                f"{study.where}: --smoke runs a train= function as the study says: declare what it "
                "changes, e.g. Study(smoke=dict(epochs=1), ...)"
            )
        smoked = smoke_study(study)
        specs = smoked.validate()
        return PlannedStudy(smoked, [s for s in specs if s.seed == study.seeds[0]], notes=notes)
    from ablate.data import expected_classes
    from ablate.train import check_trial_config, smoke_config, use_models

    try:
        use_models(study.models)
    except StudyError as e:
        raise StudyError(f"{study.where}: {e}") from None

    configs = [s.config for s in specs] if specs else study.example_configs()
    for config in configs:
        try:
            check_trial_config(config)
        except StudyError as e:
            raise StudyError(f"{study.where}: {e}") from None
        _check_metric(study, config, expected_classes(config))
    notes = [*notes, *_augment_notes(configs)]
    data: list[str] = []
    if not smoke:  # data absent, a split contradicting the folders, a bad image: before any row
        from ablate.data import check_study_data

        try:
            data = check_study_data(configs, missing_ok=missing_data_ok)
            data += _feed_notes(configs)
        except AblateError as e:
            raise StudyError(f"{study.where}: {e}") from None
        data += _precheck_evaluations(study, configs, missing_ok=missing_data_ok)
        return PlannedStudy(study, specs, data, notes)
    smoked = smoke_study(study)
    if specs:
        groups: dict[str, list[TrialConfig]] = {}
        kept: list[TrialSpec] = []
        for s in specs:
            if s.seed != study.seeds[0]:
                continue
            config = smoke_config(s.config)
            if config.config_hash not in groups:
                kept.append(dataclasses.replace(s, number=len(kept), config=config))
            groups.setdefault(config.config_hash, []).append(s.config)
        specs = kept
    elif (smoked.n_trials or 0) < min(study.n_trials or 0, SMOKE_ADAPTIVE_TRIALS):  # merged points
        groups = _smoke_groups(study, limit=SMOKE_ADAPTIVE_TRIALS)
    else:
        groups = {}
    return PlannedStudy(smoked, specs, notes=[*notes, *_smoke_merge_note(smoked, groups)])


# The fields that decide how an image folder feeds a trial (which caches, at which size).
_FEED_FIELDS = (
    "dataset", "data_root", "train_split", "val_split", "test_split", "split_seed", "max_train_samples",
    "image_size", "train_resize", "eval_resize", "crop_ratio", "auto_augment", "augment_ops", "image_cache",
    "skip_bad_images", "num_workers",
)  # fmt: skip


def _feed_notes(configs: list[TrialConfig]) -> list[str]:
    """One line per distinct image-folder feed: the decoded cache (its size, how much of it is
    still to be built, the free space) or the DataLoader path and why (the trainer decides the
    same way when the trial starts). Datasets absent here are left to check_study_data's line."""
    from ablate.data import DatasetMissingError, check_data, dataset_source, describe_feed

    lines: list[str] = []
    seen: set[str] = set()
    for config in configs:
        if dataset_source(config).in_memory:
            continue
        key = json.dumps([getattr(config, f) for f in _FEED_FIELDS], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            line = describe_feed(config, check_data(config))
        except DatasetMissingError:
            continue
        if line not in lines:
            lines.append(line)
    return lines


def _augment_notes(configs: list[TrialConfig]) -> list[str]:
    """One line per distinct augment_ops list: which operations run batched on the device, which
    image by image, which in the DataLoader workers (the trainer chooses; the plan says)."""
    from ablate.data import dataset_source, describe_augment_ops

    lines: list[str] = []
    seen: set[str] = set()
    for config in configs:
        if not config.augment_ops:
            continue
        in_memory = dataset_source(config).in_memory
        key = json.dumps([config.augment_ops, in_memory, config.image_size], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        line = describe_augment_ops(config, in_memory=in_memory)
        if line is not None and line not in lines:
            lines.append(line)
    return lines


def _space_notes(study: Study) -> list[str]:
    """A line when an adaptive study's space holds fewer configurations than ``n_trials``."""
    design = study.strategy
    if not design.adaptive or design.configurations(study) >= (study.n_trials or 0):
        return []
    size = design.configurations(study)
    return [
        f"{study.name}: the space holds {size} configurations, fewer than n_trials={study.n_trials}: "
        f"{size} points x {len(study.seeds)} seed(s) = {design.planned_trials(study)} trials"
    ]



def _smoke_groups(study: Study, *, limit: int) -> dict[str, list[TrialConfig]]:
    """An adaptive study's points (their configs as declared) grouped by their --smoke config,
    up to the point where a group past ``limit`` would start; {} when the space is
    continuous or too large to go through."""
    from ablate.study import space_size
    from ablate.train import smoke_config

    spaces = study.spaces
    size = space_size(spaces)
    if size is None or size > SMOKE_COUNT_MAX:
        return {}
    values = [
        space.levels() if isinstance(space, Choice) else list(range(space.low, space.high + 1, space.step))
        for space in spaces.values()
        if isinstance(space, (Choice, IntRange))
    ]
    groups: dict[str, list[TrialConfig]] = {}
    for combo in itertools.product(*values):
        config = study.config_for(dict(zip(spaces, combo, strict=True)), study.seeds[0], cross_checks=False)
        smoked = smoke_config(config)
        if not study.keeps(smoked):  # as the sampler does (ablate.run._adaptive)
            continue
        if smoked.config_hash not in groups and len(groups) >= limit:
            break
        groups.setdefault(smoked.config_hash, []).append(config)
    return groups


def _smoke_merge_note(study: Study, groups: dict[str, list[TrialConfig]]) -> list[str]:
    """A line when configurations that differ only in fields --smoke sets (epochs, batch_size,
    ...) run as one smoke trial."""
    merged = [configs for configs in groups.values() if len(configs) > 1]
    if not merged:
        return []
    fields = sorted({
        f for configs in merged for c in configs[1:]
        for f, v in dataclasses.asdict(c).items() if v != getattr(configs[0], f)
    })  # fmt: skip
    n = sum(len(configs) for configs in merged)
    return [
        f"{study.name}: {n} configurations differ only in {'/'.join(fields)}, which --smoke sets, "
        f"and run as {len(merged)} smoke trial(s)"
    ]


def _precheck_evaluations(study: Study, configs: list[TrialConfig], *, missing_ok: bool) -> list[str]:
    """The evaluations' own plan-time checks (a verification pairs file is there); with
    ``missing_ok`` a missing file is a line, as a missing dataset is."""
    from ablate.errors import DataNotFoundError

    lines: list[str] = []
    for evaluation in study.evaluations:
        if evaluation.precheck is None:
            continue
        for config in configs:
            try:
                evaluation.precheck(config)
            except DataNotFoundError as e:
                if not missing_ok:
                    raise StudyError(f"{study.where}: evaluation {evaluation.name!r}: {e}") from None
                if str(e) not in lines:
                    lines.append(str(e))
            except AblateError as e:
                raise StudyError(f"{study.where}: evaluation {evaluation.name!r}: {e}") from None
    return lines


def _check_metric(study: Study, config: TrialConfig, classes: int | None) -> None:
    """The study's metric against the dataset's class count (None: known once the folder is read)."""
    if study.metric == "val_top5" and classes is not None and classes < TOP5_MIN_CLASSES:
        raise StudyError(
            f"{study.where}: metric 'val_top5' needs more than 5 classes; dataset {config.dataset!r} "
            f"has {classes} (use val_acc)"
        )
