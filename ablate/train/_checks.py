"""Checks before any trial is written (``check_model_config``) and the ``--smoke`` variant of a
trial (``smoke_config``)."""

from __future__ import annotations

import dataclasses
import functools

from ablate.data import dataset_channels
from ablate.errors import StudyError
from ablate.study import TrialConfig
from ablate.study._config import split_source
from ablate.train._models import build_model, model_in_chans
from ablate.train._stages import Stages, check_freeze, check_lr_groups, resolve_stages

# Smoke runs: the largest batch; each split holds two batches (at least 8 images).
SMOKE_BATCH = 4
_KNOWN_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100}


def expected_classes(config: TrialConfig) -> int | None:
    """Class count of ``config.dataset`` without reading it (None: an image folder, unknown)."""
    if config.dataset in _KNOWN_CLASSES:
        return _KNOWN_CLASSES[config.dataset]
    return config.num_classes


# The fields that shape a model; check_model_config caches the stage layout on them.
_SHAPE_FIELDS = (
    "model", "image_size", "cifar_stem", "cnn_blocks", "cnn_filters", "cnn_organisation",
    "cnn_activation", "cnn_batch_norm", "cnn_dense",
)


@functools.lru_cache(maxsize=256)
def _model_stages(shape: tuple[tuple[str, object], ...], in_chans: int, num_classes: int) -> Stages:
    import torch

    config = TrialConfig(**dict(shape))  # type: ignore[arg-type]
    with torch.device("meta"):
        model = build_model(config, in_chans=in_chans, num_classes=num_classes, load_weights=False)
    return resolve_stages(model)


def check_model_config(config: TrialConfig) -> None:
    """Raise a StudyError unless the model builds (on the meta device, no weights), ``freeze``
    names one of its stages and ``lr_groups`` fits its stages. Data and weights are not read."""
    in_chans = model_in_chans(config, dataset_channels(config))
    classes = expected_classes(config) or 2
    shape = tuple((name, getattr(config, name)) for name in _SHAPE_FIELDS)
    stages = _model_stages(shape, in_chans, classes)
    check_freeze(stages, config.freeze, model=config.model)
    check_lr_groups(stages, config.lr_groups, model=config.model)


def smoke_config(config: TrialConfig) -> TrialConfig:
    """The same trial on a few dozen synthetic images of the same size, channels and class count,
    one epoch, no pretrained weights, no workers, no compile: a quick check of the whole code path
    (model, freeze, lr_groups, augmentation, mixup... unchanged)."""
    classes = expected_classes(config)
    if classes is None:
        raise StudyError(
            f"field 'num_classes' must be set to smoke-test dataset {config.dataset!r} "
            "(its class count is only known once the folder is read)"
        )
    extra = dict(config.extra)
    channels = dataset_channels(config)
    if channels != 3:
        extra["synthetic_channels"] = channels
    batch = min(config.batch_size, SMOKE_BATCH)
    # Each split keeps its role (present or not) on synthetic data's own train/val/test sets: a
    # hold-out of a few dozen images could leave classes out of a split.
    # "auto" sizing means crop for image folders and squash in memory: keep the folder's.
    folder = config.dataset.startswith("imagefolder:")
    train_resize = "crop" if folder and config.train_resize == "auto" else config.train_resize
    eval_resize = "crop" if folder and config.eval_resize == "auto" else config.eval_resize
    val = "val" if split_source(config.val_split) is not None else None
    test = "test" if split_source(config.test_split) is not None else None
    return dataclasses.replace(
        config,
        dataset="synthetic",
        num_classes=classes,
        synthetic_samples=max(8, 2 * batch),
        max_train_samples=None,
        batch_size=batch,
        epochs=1,
        warmup_epochs=0,
        early_stopping=0,
        time_limit_s=0.0,
        pretrained=False,
        weights_path=None,
        num_workers=0,
        eval_workers=None,
        train_split="train",
        val_split=val,
        test_split=test,
        train_resize=train_resize,
        eval_resize=eval_resize,
        compile=False,
        # A study pinned to CUDA is still smoke-tested on a laptop; auto picks the GPU when there is one.
        device="auto" if config.device == "cuda" else config.device,
        prediction_samples=min(config.prediction_samples, max(8, 2 * batch)),
        extra=extra,
    )
