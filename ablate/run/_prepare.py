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
from dataclasses import dataclass, field

from ablate.errors import AblateError, StudyError
from ablate.study import Study, TrialConfig, TrialSpec

SMOKE_SUFFIX = "_smoke"
# Adaptive studies in --smoke mode sample only this many points: enough to exercise the sampler
# with history, few enough for a CPU check of every study in CI.
SMOKE_ADAPTIVE_TRIALS = 3
# val_top5 ranks the true class among the top five: with five classes or fewer it is always 1.
TOP5_MIN_CLASSES = 6


@dataclass(frozen=True)
class PlannedStudy:
    """A validated study and what it plans: the trials to write (``[]`` for an adaptive design),
    and one line per data declaration saying what each split holds."""

    study: Study
    specs: list[TrialSpec]
    data: list[str] = field(default_factory=list)

    @property
    def planned(self) -> int:
        """How many trials the study will have in all (adaptive: points x seeds)."""
        return self.study.strategy.planned_trials(self.study, self.specs)


def smoke_study(study: Study) -> Study:
    """The same study under another name, for one short epoch per configuration on synthetic data.

    Only the first seed runs: other seeds are replicates that take the same code path, and a
    smoke run is a check of the code path, quick enough to run before every GPU session.
    """
    n_trials = min(study.n_trials or 0, SMOKE_ADAPTIVE_TRIALS) or None
    return dataclasses.replace(
        study, name=study.name + SMOKE_SUFFIX, n_trials=n_trials, seeds=list(study.seeds[:1])
    )


def plan_trials(study: Study, *, smoke: bool = False, missing_data_ok: bool = False) -> PlannedStudy:
    """Validate the study and every trial it plans, before anything touches the database.

    Raises :class:`StudyError` (one line naming the file, the study and the field) on the first
    problem. ``smoke`` returns the ``--smoke`` variant (its own name, synthetic data, so the data
    is not checked); ``missing_data_ok`` turns an absent dataset into a line (``ablate plan``).
    """
    specs = study.validate()
    if study.train is not None:  # a custom train function checks its own configs
        if smoke:
            raise StudyError(f"{study.where}: --smoke needs the built-in trainer (this study has train=...)")
        return PlannedStudy(study, specs)
    from ablate.data import expected_classes
    from ablate.train import check_trial_config, smoke_config

    configs = [s.config for s in specs] if specs else study.example_configs()
    for config in configs:
        try:
            check_trial_config(config)
        except StudyError as e:
            raise StudyError(f"{study.where}: {e}") from None
        _check_metric(study, config, expected_classes(config))
    data: list[str] = []
    if not smoke:  # data absent, a split contradicting the folders, a bad image: before any row
        from ablate.data import check_study_data

        try:
            data = check_study_data(configs, missing_ok=missing_data_ok)
        except AblateError as e:
            raise StudyError(f"{study.where}: {e}") from None
        data += _precheck_evaluations(study, configs, missing_ok=missing_data_ok)
        return PlannedStudy(study, specs, data)
    specs = [dataclasses.replace(s, config=smoke_config(s.config)) for s in specs if s.seed == study.seeds[0]]
    return PlannedStudy(smoke_study(study), specs)


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
