"""The result schema as SQLAlchemy 2.0 typed models.

Written for people who query it by hand: readable table names, one typed column per metric,
factor values stored as their real values, timestamps in UTC. ``docs/schema.md`` describes every
table and the per-study views. Alembic (``alembic/versions``) owns every change to it: after
editing a model, add a migration and a fixture database (see ``docs/schema.md``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ablate.store._columns import STATUSES

# Stable constraint names, so that migrations can address them on both engines.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both engines.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as naive
    UTC text and come back marked UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: ablate stores UTC-aware timestamps")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        float: Double(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Study(Base):
    """One version of a declared study. The highest ``version`` of a name is the current one."""

    __tablename__ = "studies"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column(Integer, default=1)
    description: Mapped[str] = mapped_column(Text, default="")
    design: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(8))
    # Study.definition(): base, factors, seeds, design... as declared in the study file.
    definition: Mapped[dict[str, Any]]
    definition_hash: Mapped[str] = mapped_column(String(64))
    # Hash of what results depend on besides factors and seeds (base config, trainer).
    base_hash: Mapped[str] = mapped_column(String(64))
    # Factor name -> kind of its values: int, float, bool, text, json or mixed (in order).
    factors: Mapped[dict[str, Any]]
    seeds: Mapped[list[Any]]
    # OFAT baseline: factor -> value; null for other designs.
    baseline: Mapped[dict[str, Any] | None]
    view_name: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    trials: Mapped[list[Trial]] = relationship(back_populates="study", passive_deletes=True)


class Trial(Base):
    """One configuration and seed of a study: its plan, its run, and its final metrics."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "config_hash", "seed"),
        UniqueConstraint("study_id", "number"),
        CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")", name="status"),
        # claim_next_trial: queued trials of a study in (replicate, number) order, and
        # running ones whose lease expired.
        Index("ix_trials_claim", "study_id", "status", "replicate", "number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    # Position of the seed in the study's seeds: 0 for the first replicate of a config.
    replicate: Mapped[int] = mapped_column(Integer, default=0)
    config_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    # The full resolved TrialConfig (TrialConfig.to_dict()).
    config: Mapped[dict[str, Any]]
    worker: Mapped[str | None] = mapped_column(String(200))
    host: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(64))
    # How many times the trial was claimed: 1 on its first run, +1 per reclaim or retry.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    current_epoch: Mapped[int | None] = mapped_column(Integer)
    # Names this trial's checkpoint folder and is stored in it: a checkpoint is resumed only by
    # the trial of this database that wrote it (set at the first claim, kept across attempts).
    run_token: Mapped[str | None] = mapped_column(String(32))
    # Why the latest attempt trained from epoch 1 although epochs had been recorded before.
    restart_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_s: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(Text)
    # Final metrics.
    train_loss: Mapped[float | None]
    train_acc: Mapped[float | None]
    val_loss: Mapped[float | None]
    val_acc: Mapped[float | None]
    val_top5: Mapped[float | None]
    best_val_acc: Mapped[float | None]
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    test_acc: Mapped[float | None]
    test_loss: Mapped[float | None]
    epochs_run: Mapped[int | None] = mapped_column(Integer)
    images_per_s: Mapped[float | None]
    peak_mem_mb: Mapped[float | None]
    n_params: Mapped[int | None] = mapped_column(BigInteger)
    # Parameters with requires_grad (what a freeze strategy leaves to train).
    n_trainable_params: Mapped[int | None] = mapped_column(BigInteger)
    # Images in each split; NULL for a split the study does not have.
    n_train: Mapped[int | None] = mapped_column(Integer)
    n_val: Mapped[int | None] = mapped_column(Integer)
    n_test: Mapped[int | None] = mapped_column(Integer)
    # completed | early_stopped | time_limit | diverged | pruned
    stop_reason: Mapped[str | None] = mapped_column(String(64))
    # Where each split came from, its class counts, and the normalisation used:
    # {"splits": {"train": {"n", "source", "per_class"}, ...}, "normalization": {"how", "mean", "std"}},
    # and "image_size" (px) where native_input_size chose it.
    data: Mapped[dict[str, Any] | None]
    # Final metrics without a column of their own (from a custom train function).
    extra_metrics: Mapped[dict[str, Any] | None]

    study: Mapped[Study] = relationship(back_populates="trials")
    params: Mapped[list[TrialParam]] = relationship(
        back_populates="trial", cascade="all, delete-orphan", passive_deletes=True
    )


class TrialParam(Base):
    """One factor value of a trial, in the column of its type (never an index into levels)."""

    __tablename__ = "trial_params"

    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value_num: Mapped[float | None]
    value_text: Mapped[str | None] = mapped_column(Text)
    value_bool: Mapped[bool | None] = mapped_column(Boolean)
    # Lists and dicts (e.g. lr_groups=[1, 0.5]).
    value_json: Mapped[Any | None] = mapped_column(JSON)

    trial: Mapped[Trial] = relationship(back_populates="params")


class Epoch(Base):
    """Metrics of one epoch of one trial."""

    __tablename__ = "epochs"

    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based
    train_loss: Mapped[float | None]
    train_acc: Mapped[float | None]
    val_loss: Mapped[float | None]
    val_acc: Mapped[float | None]
    val_top5: Mapped[float | None]
    lr: Mapped[float | None]
    # Learning rate of every parameter group at the end of the epoch: {"head": 0.1, "layer4": 0.05}.
    group_lrs: Mapped[dict[str, Any] | None]
    seconds: Mapped[float | None]
    images_per_s: Mapped[float | None]
    peak_mem_mb: Mapped[float | None]
    extra: Mapped[dict[str, Any] | None]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(Base):
    """A file a trial produced: checkpoints, predictions, plots."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("trial_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Environment(Base):
    """The software and hardware a trial ran on."""

    __tablename__ = "environments"

    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    python: Mapped[str | None] = mapped_column(String(64))
    torch: Mapped[str | None] = mapped_column(String(64))
    torchvision: Mapped[str | None] = mapped_column(String(64))
    timm: Mapped[str | None] = mapped_column(String(64))
    cuda: Mapped[str | None] = mapped_column(String(64))
    git_revision: Mapped[str | None] = mapped_column(String(64))
    # Whether the repository's tracked files differed from git_revision (None: no repository).
    git_dirty: Mapped[bool | None] = mapped_column(Boolean)
    ablate_version: Mapped[str | None] = mapped_column(String(64))
    # SHA-256 of the study file the trial was run from (None: rebuilt from the database).
    study_sha256: Mapped[str | None] = mapped_column(String(64))
    device_name: Mapped[str | None] = mapped_column(String(255))
    hostname: Mapped[str | None] = mapped_column(String(255))
    platform: Mapped[str | None] = mapped_column(String(255))
    extra: Mapped[dict[str, Any] | None]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Launch(Base):
    """One ``ablate launch`` of a study's workers on a scheduler (SLURM job array, Ray actors)."""

    __tablename__ = "launches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    launcher: Mapped[str] = mapped_column(String(32))  # "slurm", "ray"
    # The engine's id of the whole launch: the SLURM array job id, the Ray job's name.
    job_id: Mapped[str] = mapped_column(String(255))
    # The ids of what was started, as the engine names them ("1234_0", "1234_1"; actor names),
    # so that `ablate status` can match them to the workers they run.
    task_ids: Mapped[list[Any]]
    # The --slurm/--ray KEY=VALUE options as given (no secret is among them).
    options: Mapped[dict[str, Any]]
    # Where the engine writes the tasks' logs (submitit's folder), when it has one.
    log_dir: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None]
