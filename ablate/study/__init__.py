"""Declaring studies: the typed trial configuration, factor spaces, designs (a registry), study files."""

from ablate.study._config import TrialConfig, config_hash, make_config
from ablate.study._designs import (
    DESIGNS,
    Design,
    GridDesign,
    OfatDesign,
    RandomDesign,
    TpeDesign,
    design_for,
)
from ablate.study._load import load_studies, select_study
from ablate.study._models import cache_dir, check_model_name, list_model_names
from ablate.study._overrides import describe_overrides, with_overrides
from ablate.study._space import (
    Choice,
    IntRange,
    Space,
    Uniform,
    choice,
    intrange,
    loguniform,
    uniform,
)
from ablate.study._study import (
    Study,
    TrialSpec,
    iter_level_counts,
    study_from_definition,
)

__all__ = [
    "DESIGNS",
    "Choice",
    "Design",
    "GridDesign",
    "IntRange",
    "OfatDesign",
    "RandomDesign",
    "Space",
    "Study",
    "TpeDesign",
    "TrialConfig",
    "TrialSpec",
    "Uniform",
    "cache_dir",
    "check_model_name",
    "choice",
    "config_hash",
    "describe_overrides",
    "design_for",
    "intrange",
    "iter_level_counts",
    "list_model_names",
    "load_studies",
    "loguniform",
    "make_config",
    "select_study",
    "study_from_definition",
    "uniform",
    "with_overrides",
]
