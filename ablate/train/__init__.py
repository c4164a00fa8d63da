"""The trainer: ``train_trial(config)`` trains one trial config and returns its metrics.

Data comes from :mod:`ablate.data`; models are the small CNN, timm or torchvision by name; freeze
depth and per-stage learning rates are resolved per architecture; checkpoints make every trial
resumable.
"""

from ablate.train._checks import check_model_config, expected_classes, smoke_config
from ablate.train._env import environment
from ablate.train._result import EpochMetrics, TrainResult, TrialPruned
from ablate.train._trainer import train_trial

check_trial_config = check_model_config  # the name the validation pipeline calls

__all__ = [
    "EpochMetrics",
    "TrainResult",
    "TrialPruned",
    "check_model_config",
    "check_trial_config",
    "environment",
    "expected_classes",
    "smoke_config",
    "train_trial",
]
