"""Declaring studies: the typed trial configuration, factor spaces, designs, study files."""

from ablate.study._config import (
    VIEW_METRIC_COLUMNS,
    VIEW_TRIAL_COLUMNS,
    TrialConfig,
    config_hash,
    make_config,
    split_source,
)
from ablate.study._json import jsonable
from ablate.study._load import load_studies, select_study
from ablate.study._overrides import describe_overrides, with_overrides
from ablate.study._space import (
    Choice,
    IntRange,
    Space,
    Uniform,
    choice,
    intrange,
    level_value,
    loguniform,
    uniform,
)
from ablate.study._study import (
    ADAPTIVE_DESIGNS,
    DESIGNS,
    Study,
    TrialSpec,
    iter_level_counts,
    study_from_definition,
)

__all__ = [
    "ADAPTIVE_DESIGNS",
    "DESIGNS",
    "VIEW_METRIC_COLUMNS",
    "VIEW_TRIAL_COLUMNS",
    "Choice",
    "IntRange",
    "Space",
    "Study",
    "TrialConfig",
    "TrialSpec",
    "Uniform",
    "choice",
    "config_hash",
    "describe_overrides",
    "intrange",
    "iter_level_counts",
    "jsonable",
    "level_value",
    "load_studies",
    "loguniform",
    "make_config",
    "select_study",
    "split_source",
    "study_from_definition",
    "uniform",
    "with_overrides",
]
