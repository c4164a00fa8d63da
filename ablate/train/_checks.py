"""Checks before any trial is written (``check_trial_config``) and the ``--smoke`` variant of a
trial (``smoke_config``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ablate.data import dataset_source, expected_classes
from ablate.errors import StudyError
from ablate.study import TrialConfig, split_source
from ablate.train import _checkpoint as ckpt
from ablate.train._losses import class_weights, margin_embedding_dim
from ablate.train._models import (
    ModelFamily,
    build_model,
    check_model_name,
    check_model_output,
    model_in_chans,
    with_input_size,
)
from ablate.train._stages import (
    Stages,
    check_freeze,
    check_lr_groups,
    check_stage_settings,
    resolve_stages,
)

# Smoke runs: the largest batch; each split holds two batches (at least 8 images).
SMOKE_BATCH = 4

# Stage layouts by what shapes the model (see _shape_key); a study's configs share a few shapes.
_STAGES: dict[tuple[object, ...], Stages] = {}
_MAX_STAGES = 1024
# Fields that shape (or are checked on) every family's built model, besides its own shape_fields.
EVERY_FAMILY_FIELDS = ("drop_rate", "drop_path_rate", "head_widths", "head_norm", "image_size")


def check_trial_config(config: TrialConfig) -> None:
    """Raise a StudyError for what the built-in trainer would refuse, checked without reading
    data or weights: fp16/bf16 autocast on ``device="cpu"``, an unknown dataset or model name
    (with close matches), what the dataset refuses (synthetic data without num_classes),
    pretrained weights the model family has none of, a model that does not build (on the meta
    device), a study's own model whose factory raises, returns no module or whose logits are
    not (batch, num_classes), ``freeze``, ``lr_groups`` or ``train_last_stages`` not fitting the
    model's stages, a ``drop_rate`` / ``drop_path_rate`` the model has not, a replacement head
    for a classifier that is no Linear, ``native_input_size`` for a model without a size of its own.

    Cheap when called again for a config of the same shape: the stage layout is cached on every
    field the model's family says shapes it, plus input channels and class count."""
    if config.device == "cpu" and config.amp in ("fp16", "bf16"):
        raise StudyError(
            f"field 'amp' is {config.amp!r} but field 'device' is 'cpu': autocast on the CPU is many "
            "times slower than fp32 (bf16 measured 14-40x); allowed there: off, auto (off on the CPU)"
        )
    source = dataset_source(config)
    source.check(config)
    family = check_model_name(config.model)
    config = with_input_size(config)  # native_input_size: the model's own side from here on
    if config.pretrained and not family.pretrained:
        raise StudyError(f"field 'pretrained' is true but model {config.model!r} has no pretrained weights")
    if config.pretrained and family.own and not config.weights_path:
        raise StudyError(
            f"field 'pretrained' is true but model {config.model!r} is the study's own: set "
            "weights_path to a file of its weights"
        )
    in_chans = model_in_chans(config, source.channels_of(config))
    classes = expected_classes(config) or 2
    # The family itself is part of the key: a study file loaded again declares its models anew.
    key = (
        family, *_shape_key(config, family.shape_fields, in_chans, classes),
        *(_hashable(getattr(config, f)) for f in EVERY_FAMILY_FIELDS),
    )
    stages = _STAGES.get(key)
    if stages is None:
        stages = _model_stages(config, family, in_chans, classes)
        if len(_STAGES) >= _MAX_STAGES:
            _STAGES.clear()
        _STAGES[key] = stages
    check_freeze(stages, config.freeze, model=config.model)
    check_lr_groups(stages, config.lr_groups, model=config.model)
    check_stage_settings(stages, config)
    _check_loss(config, family, key, in_chans, classes)


# Per model shape (the key of _STAGES): the margin head's embedding width, or why there is none.
_MARGIN_DIMS: dict[tuple[object, ...], int | StudyError] = {}


def _check_loss(config: TrialConfig, family: ModelFamily, key: tuple[object, ...], in_chans: int, classes: int) -> None:
    """``focal_alpha`` against the class count (when known before the data is read), and a
    margin head against the model: it needs the classifier's input as the embedding."""
    if expected_classes(config) is not None:
        class_weights(config, classes)
    if config.margin_loss == "none":
        return
    found = _MARGIN_DIMS.get(key)
    if found is None:
        import torch

        with torch.device("meta"):
            model = build_model(config, in_chans=in_chans, num_classes=classes, load_weights=False)
        try:
            found = margin_embedding_dim(model, classes, model_name=config.model)
        except StudyError as e:
            found = e
        if len(_MARGIN_DIMS) >= _MAX_STAGES:
            _MARGIN_DIMS.clear()
        _MARGIN_DIMS[key] = found
    if isinstance(found, StudyError):
        raise StudyError(str(found))


def _shape_key(config: TrialConfig, fields: tuple[str, ...] | None, in_chans: int, classes: int) -> tuple[object, ...]:
    if fields is None:  # a family that may read any field: the whole config
        return (config.model, in_chans, classes, json.dumps(dataclasses.asdict(config), sort_keys=True, default=str))
    return (config.model, in_chans, classes, *(_hashable(getattr(config, f)) for f in fields))


def _hashable(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def _model_stages(config: TrialConfig, family: ModelFamily, in_chans: int, num_classes: int) -> Stages:
    import torch

    with torch.device("meta"):
        model = build_model(config, in_chans=in_chans, num_classes=num_classes, load_weights=False)
    if family.own:  # a library's models give logits; a study's own is checked to
        check_model_output(config, model, in_chans=in_chans, num_classes=num_classes)
    return resolve_stages(model)


def check_warm_start(config: TrialConfig, source: TrialConfig, checkpoint: Path | None) -> int | None:
    """Raise a StudyError when the weights of ``checkpoint`` (a trial trained with ``source``)
    would not load into the model of ``config``: another model, another class count, other input
    channels, or any weight's name or shape (the model built on the meta device, the checkpoint
    read memory-mapped; without ``checkpoint``, a trial still to run: the source's model built
    on the meta device too). Return the epoch the checkpoint is from.

    Fields that change no weight (dropout, activation, everything about training) may differ."""
    what = f"field 'warm_start' is {config.warm_start!r}"
    if source.model != config.model:
        raise StudyError(
            f"{what} but that trial trained model {source.model!r}, this one {config.model!r}: a "
            "warm start loads the weights into the same model"
        )
    classes, source_classes = expected_classes(config), expected_classes(source)
    if classes is not None and source_classes is not None and classes != source_classes:
        raise StudyError(
            f"{what} but that trial has {source_classes} classes ({source.dataset}), this one "
            f"{classes} ({config.dataset}): its head would not fit"
        )
    in_chans = model_in_chans(config, dataset_source(config).channels_of(config))
    source_chans = model_in_chans(source, dataset_source(source).channels_of(source))
    if in_chans != source_chans:
        raise StudyError(
            f"{what} but that trial's model takes {source_chans}-channel images ({source.dataset}), "
            f"this one {in_chans}-channel ({config.dataset})"
        )
    import torch

    heads = classes or source_classes or 2
    if checkpoint is None:
        epoch = None
        with torch.device("meta"):
            planned = build_model(source, in_chans=source_chans, num_classes=source_classes or heads, load_weights=False)
        found = {k: tuple(v.shape) for k, v in planned.state_dict().items()}
    else:
        try:
            epoch, found = ckpt.weight_shapes(checkpoint)
        except (OSError, RuntimeError) as e:
            raise StudyError(f"{what} but its checkpoint {checkpoint} does not read: {e}") from None
    with torch.device("meta"):
        model = build_model(config, in_chans=in_chans, num_classes=heads, load_weights=False)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if classes is None and source_classes is None:  # the heads' sizes are known once data is read
        expected = {k: found.get(k, shape) for k, shape in expected.items()}
    why = ckpt.weights_mismatch(expected, found, source="the checkpoint" if checkpoint else "that trial's model")
    if why is not None:
        fields = check_model_name(config.model).shape_fields or ()
        differ = [f"{f} {getattr(source, f)!r} there, {getattr(config, f)!r} here"
                  for f in fields if getattr(source, f) != getattr(config, f)]
        raise StudyError(
            f"{what} but that trial's model has other weights: {why}"
            + (f" (shape fields that differ: {'; '.join(differ)})" if differ else "")
        )
    return epoch


def smoke_config(config: TrialConfig) -> TrialConfig:
    """The same trial on a few dozen synthetic images of the same size, channels and class count,
    one epoch, no pretrained weights, no workers, no compile: a quick check of the whole code path
    (model, freeze, lr_groups, augmentation, mixup... unchanged). ``amp`` is kept: on a GPU the
    smoke trial takes the same fp16/bf16 path; on a machine without CUDA the trainer runs it at
    fp32 and says so (``trial_precision``), as it does every trial there."""
    classes = expected_classes(config)
    if classes is None:
        raise StudyError(
            f"field 'num_classes' must be set to smoke-test dataset {config.dataset!r} "
            "(its class count is only known once the folder is read)"
        )
    extra = dict(config.extra)
    source = dataset_source(config)
    channels = source.channels_of(config)
    if channels != 3:
        extra["synthetic_channels"] = channels
    batch = min(config.batch_size, SMOKE_BATCH)
    # Each split keeps its role (present or not) on synthetic data's own train/val/test sets: a
    # hold-out of a few dozen images could leave classes out of a split.
    # "auto" sizing means crop for image folders and squash in memory: keep the folder's.
    folder = not source.in_memory
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
        # Gradual unfreezing: two epochs, so the smoke trial unfreezes a stage once.
        epochs=2 if config.unfreeze_every else 1,
        unfreeze_every=min(config.unfreeze_every, 1),
        warmup_epochs=0,
        warmup_steps=0,
        accumulate_steps=min(config.accumulate_steps, 2),  # each split holds two batches
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
