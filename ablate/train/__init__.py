"""The trainer: ``train_trial(config)`` trains one trial config and returns its metrics.

Data comes from :mod:`ablate.data`; models are the small CNN, timm or torchvision by name (the
:data:`MODELS` registry, one more family per :func:`model_family`); freeze
depth and per-stage learning rates are resolved per architecture; checkpoints make every trial
resumable.
"""

from ablate.train._checks import check_trial_config, smoke_config
from ablate.train._env import environment
from ablate.train._models import (
    MODELS,
    ModelFamily,
    check_model_name,
    list_model_names,
    model_family,
    use_models,
)
from ablate.train._trainer import train_trial, trial_precision
from ablate.trial import EpochMetrics, TrainResult, TrialPruned

__all__ = [
    "MODELS",
    "EpochMetrics",
    "ModelFamily",
    "TrainResult",
    "TrialPruned",
    "check_model_name",
    "check_trial_config",
    "environment",
    "list_model_names",
    "model_family",
    "smoke_config",
    "train_trial",
    "trial_precision",
    "use_models",
]
