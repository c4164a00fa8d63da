"""Declaring studies: the typed trial configuration, factor spaces, designs (a registry), study files."""

from ablate.study._augment_ops import (
    AUGMENT_OPS,
    describe_op,
    describe_ops,
    op_params,
    sizes_training_images,
)
from ablate.study._config import (
    FIELD_UNITS,
    VIEW_METRIC_COLUMNS,
    VIEW_TRIAL_COLUMNS,
    TrialConfig,
    TrialSpec,
    config_hash,
    make_config,
    parse_warm_start,
    split_source,
    tta_crop_side,
)
from ablate.study._designs import (
    DESIGNS,
    Design,
    GridDesign,
    OfatDesign,
    RandomDesign,
    TpeDesign,
    design_for,
    space_size,
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
    Study,
    iter_level_counts,
    study_from_definition,
)

__all__ = [
    "AUGMENT_OPS",
    "DESIGNS",
    "FIELD_UNITS",
    "VIEW_METRIC_COLUMNS",
    "VIEW_TRIAL_COLUMNS",
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
    "choice",
    "config_hash",
    "describe_op",
    "describe_ops",
    "describe_overrides",
    "design_for",
    "intrange",
    "iter_level_counts",
    "jsonable",
    "level_value",
    "load_studies",
    "loguniform",
    "make_config",
    "op_params",
    "parse_warm_start",
    "select_study",
    "sizes_training_images",
    "space_size",
    "split_source",
    "study_from_definition",
    "tta_crop_side",
    "uniform",
    "with_overrides",
]
