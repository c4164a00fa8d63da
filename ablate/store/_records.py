"""Plain objects handed out by the store: database rows never leave it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ablate.errors import StoreError
from ablate.study import TrialConfig

_CONFIG_FIELDS = {f.name for f in dataclasses.fields(TrialConfig)}


@dataclass(frozen=True)
class StudyInfo:
    """The current version of a registered study."""

    study_id: int
    name: str
    version: int
    design: str
    metric: str
    direction: str
    factors: list[str]
    seeds: list[int]
    # OFAT baseline as factor -> value; None for other designs.
    baseline: dict[str, Any] | None
    definition: dict[str, Any]
    description: str
    view_name: str
    created_at: datetime
    updated_at: datetime
    # Factor -> kind of its values (int, float, bool, text, json, mixed).
    factor_kinds: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClaimedTrial:
    """A trial this worker now holds a lease on."""

    trial_id: int
    study_name: str
    number: int
    seed: int
    params: dict[str, Any]
    config: TrialConfig
    config_hash: str
    attempt: int  # 1 on the first run; more when reclaimed after a lost lease or a retry
    lease_s: float
    replicate: int = 0
    study_id: int = 0
    # The epoch last reported by heartbeat(): where a resumed trial's checkpoint should be.
    current_epoch: int | None = None
    # Names the trial's checkpoint folder and is stored in it (see ablate.run._folders.trial_dir).
    run_token: str | None = None


@dataclass(frozen=True)
class TrialRecord:
    """What an adaptive sampler sees of an existing trial."""

    trial_id: int
    number: int
    seed: int
    status: str
    params: dict[str, Any]
    config_hash: str
    # Final metrics that have a value (val_acc, val_loss, ... and extra metrics).
    metrics: dict[str, Any]
    replicate: int = 0


@dataclass(frozen=True)
class StoredTrial:
    """One trial as a warm start reads it (:meth:`ResultStore.find_trial`): where its
    checkpoints are, how it ended, and the config it trained with (as stored JSON)."""

    trial_id: int
    study_name: str
    study_version: int
    number: int
    seed: int
    status: str
    config: dict[str, Any]
    run_token: str | None
    # kind ("best_checkpoint", "last_checkpoint", ...) -> path, as the worker recorded them.
    artifacts: dict[str, str]


@dataclass(frozen=True)
class EnvironmentRecord:
    """Where a trial ran, in the shape of the ``environments`` table: one field per column
    (None when unknown), anything else in ``extra``. The trainer builds it; the store writes
    it as given."""

    python: str | None = None
    torch: str | None = None
    torchvision: str | None = None
    timm: str | None = None
    cuda: str | None = None
    git_revision: str | None = None
    git_dirty: bool | None = None
    ablate_version: str | None = None
    study_sha256: str | None = None
    device_name: str | None = None
    hostname: str | None = None
    platform: str | None = None
    # Other facts (CPU count, torch threads, ...), stored as JSON.
    extra: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """The column values, without ``extra``."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"
        }


def config_from_json(data: dict[str, Any], *, trial_id: int) -> TrialConfig:
    """Rebuild a TrialConfig from its stored JSON; an unknown field is an error, never dropped."""
    unknown = sorted(set(data) - _CONFIG_FIELDS)
    if unknown:
        raise StoreError(
            f"trial {trial_id}: stored config has field {unknown[0]!r}, which this version of "
            "ablate does not know; upgrade ablate or re-run the study as a new version"
        )
    return TrialConfig(**data)


@dataclass(frozen=True)
class LaunchRecord:
    """One ``ablate launch``: the scheduler job that runs a study's workers."""

    launch_id: int
    launcher: str  # "slurm", "ray"
    job_id: str
    task_ids: list[str]
    options: dict[str, str]
    log_dir: str | None
    submitted_at: datetime
    cancelled_at: datetime | None
