"""The trainer: ``train_trial(config)`` trains one trial config and returns its metrics.

Data comes from :mod:`ablate.data`; models are the small CNN, timm or torchvision by name (the
:data:`MODELS` registry, one more family per :func:`model_family`); freeze
depth and per-stage learning rates are resolved per architecture; checkpoints make every trial
resumable.
"""

from ablate.train._checks import check_trial_config, check_warm_start, smoke_config
from ablate.train._env import environment
from ablate.train._evaluation import EvalSplit, EvaluationError
from ablate.train._models import (
    MODELS,
    ModelFamily,
    check_model_name,
    list_model_names,
    model_family,
    use_models,
)
from ablate.train._trainer import train_trial, trial_precision
from ablate.train._verification import (
    VERIFICATION_METRICS,
    embeddings,
    read_pairs,
    smoke_faces,
    verification,
    verification_scores,
)
from ablate.trial import EpochMetrics, TrainResult, TrialPruned

__all__ = [
    "MODELS",
    "VERIFICATION_METRICS",
    "EpochMetrics",
    "EvalSplit",
    "EvaluationError",
    "ModelFamily",
    "TrainResult",
    "TrialPruned",
    "check_model_name",
    "check_trial_config",
    "check_warm_start",
    "embeddings",
    "environment",
    "list_model_names",
    "model_family",
    "read_pairs",
    "smoke_config",
    "smoke_faces",
    "train_trial",
    "trial_precision",
    "use_models",
    "verification",
    "verification_scores",
]
