"""The result tables' column groups, without SQLAlchemy: the models and the readers share them.

The metric columns of ``trials`` and ``epochs`` come from the metric table
(``tests/test_metrics.py`` checks that the models hold exactly these, typed as the table says).
"""

from __future__ import annotations

from ablate.metrics import METRICS, metric_names

# Trial statuses, in the order `ablate ls` shows them.
STATUSES = ("queued", "running", "completed", "failed", "pruned")
FINISHED_STATUSES = ("completed", "failed", "pruned")

TRIAL_METRICS = metric_names(per_trial=True, column=True)
# JSON values stored as they are (not numbers).
TRIAL_JSON = ("data",)
EPOCH_JSON = ("group_lrs",)
EPOCH_METRICS = metric_names(per_epoch=True, column=True)
ENVIRONMENT_FIELDS = (
    "python", "torch", "torchvision", "timm", "cuda", "git_revision", "git_dirty", "ablate_version",
    "study_sha256", "device_name", "hostname", "platform",
)  # fmt: skip
# Metric columns holding integers.
INT_METRICS = tuple(name for name, m in METRICS.items() if m.column and m.is_int)
