"""The typed configuration of one trial: every knob the trainer reads, with its default and unit.

A study's ``base`` dict, each factor level and the seed are merged into one :class:`TrialConfig`
by :func:`make_config`, which checks every field (type, range, allowed choices) and reports the
first problem as a :class:`~ablate.errors.StudyError` naming the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ablate.errors import StudyError
from ablate.metrics import metric_names
from ablate.study._augment_ops import (
    AUGMENT_OPS,
    RESIZED_CROP,
    check_augment_ops,
    sizes_training_images,
)

# "ops": no preset; the operations listed in augment_ops (set by giving augment_ops).
AUGMENT_PRESETS = ("none", "basic", "heavy", "ops")
AUTO_AUGMENT = ("none", "randaugment", "trivialaugment")
NORMALIZE = ("dataset", "computed", "imagenet", "custom", "none")
RESIZE_MODES = ("auto", "crop", "squash", "none")
IMAGE_CACHE_MODES = ("auto", "on", "off")
# "study": the study metric's epoch value; or a per-epoch metric of the table.
PLATEAU_METRICS = ("study", *metric_names(plateau=True))
OPTIMIZERS = ("sgd", "adamw", "adam")
# What an epoch-stepped schedule is evaluated at: each epoch's start, or every optimizer step.
SCHEDULE_STEPS = ("epoch", "batch")
# Early stopping watches the same per-epoch metrics a plateau schedule may.
EARLY_STOPPING_METRICS = PLATEAU_METRICS
SCHEDULERS = ("none", "step", "multistep", "plateau", "cosine", "cosine_restarts", "onecycle")
AMP_MODES = ("auto", "off", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")
CNN_ORGANISATION = ("same", "double", "half")
CNN_ACTIVATIONS = ("relu", "gelu", "silu", "mish", "tanh", "leaky_relu", "selu", "elu")
# The dense layers' activation: "same" as the conv blocks', one of theirs, or none (linear).
CNN_DENSE_ACTIVATIONS = ("same", *CNN_ACTIVATIONS, "none")
CNN_PADDING = ("same", "valid")
CNN_POOLS = ("max", "avg", "none")
CNN_BN_POSITIONS = ("before_act", "after_act")
CNN_DROPOUT_POSITIONS = ("before_dense", "after_dense")
# Batch norm of frozen layers: eval (running statistics kept) or train (updated from each batch).
FREEZE_BN = ("eval", "train")
# The replacement head's norm after each hidden layer.
HEAD_NORMS = ("none", "batch", "layer")
# Which checkpoint of the source trial a warm start loads: its best epoch's or its last epoch's.
WARM_START_FROM = ("best", "last")
# The training loss, the auxiliary margin head on the embedding, the test split's weights, TTA.
LOSSES = ("cross_entropy", "focal")
MARGIN_LOSSES = ("none", "arcface", "cosface")
TEST_CHECKPOINTS = ("best", "last")
TTA_MODES = ("none", "flip", "crops")
# torchvision's FiveCrop (four corners and the centre) and TenCrop (those and their mirror images).
TTA_CROP_COUNTS = (5, 10)
CNN_INITS = ("default", "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "trunc_normal")
# What a study may name as its metric.
METRICS = metric_names(objective=True)
# The columns every study's SQL view has besides its factors (the store builds the view; a
# study checks its factor names against them before anything is written).
VIEW_TRIAL_COLUMNS = ("trial_id", "number", "seed", "replicate", "status")
VIEW_METRIC_COLUMNS = metric_names(in_view=True)

_IMAGEFOLDER = re.compile(r"^imagefolder:.+$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def _knob(
    default: Any,
    doc: str,
    *,
    choices: tuple[str, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> Any:
    """A dataclass field carrying what validation needs: allowed choices and a numeric range."""
    meta = {"doc": doc, "choices": choices, "low": low, "high": high, "low_open": low_open}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrialConfig:
    """Everything one training run depends on. Units are in the field docs."""

    # --- data
    dataset: str = _knob("digits", "digits | cifar10 | cifar100 | synthetic | imagefolder:<path>")
    data_root: str | None = _knob(None, "folder holding the dataset (default: $ABLATE_DATA or ./data)")
    download: bool = _knob(False, "let torchvision download cifar10/100 into data_root")
    num_classes: int | None = _knob(None, "classes; required for imagefolder smoke runs and synthetic", low=2)
    synthetic_samples: int = _knob(512, "images per split for dataset=synthetic", low=8)
    train_split: str = _knob("train", "folder of the training images (digits, CIFAR and synthetic: their own 'train')")
    val_split: float | str | None = _knob(
        0.2, "validation: a fraction of train held out (stratified, split_seed), a folder name such as 'val', or 0/None for none",
        low=0.0, high=1.0,
    )
    test_split: float | str | None = _knob(
        "test", "test: a folder name ('test': the official test set of digits, CIFAR, synthetic), a fraction of train held out, or None",
        low=0.0, high=1.0,
    )
    split_seed: int = _knob(0, "seed of the stratified hold-outs: the same images for every trial, whatever its seed", low=0)
    max_train_samples: int | None = _knob(None, "cap on training images (smoke runs, quick checks)", low=1)
    image_size: int = _knob(32, "input side in pixels", low=4, high=1024)
    # --- model
    model: str = _knob("cnn", "timm name, tv:<torchvision name>, or cnn (the configurable small CNN)")
    pretrained: bool = _knob(False, "load ImageNet weights from a local file or cache")
    weights_path: str | None = _knob(None, "local file with pretrained weights (.pth / .safetensors)")
    cifar_stem: bool = _knob(False, "3x3 stride-1 first conv and no max-pool, for 32 px inputs")
    cnn_blocks: int = _knob(3, "cnn: conv blocks (conv, [bn], act, pool)", low=1, high=8)
    cnn_filters: int = _knob(32, "cnn: filters in the first block", low=1, high=1024)
    cnn_organisation: str = _knob("double", "cnn: filters per block", choices=CNN_ORGANISATION)
    cnn_activation: str = _knob("relu", "cnn: activation", choices=CNN_ACTIVATIONS)
    cnn_batch_norm: bool = _knob(True, "cnn: batch norm in each block (where: cnn_bn_position)")
    cnn_dropout: float = _knob(0.0, "cnn: dropout of the dense layers (where: cnn_dropout_position)", low=0.0, high=0.95)
    cnn_dense: int = _knob(128, "cnn: units of the dense layer", low=1)
    cnn_kernel_sizes: list[int] = _knob([3], "cnn: conv kernel side, one for every block or one per block")
    cnn_padding: str = _knob("same", "cnn: conv padding: same (output side = input side) or valid (none)", choices=CNN_PADDING)
    cnn_pool: str = _knob("max", "cnn: pooling after each block: max, avg, or none (no downsampling)", choices=CNN_POOLS)
    cnn_pool_size: int = _knob(2, "cnn: pooling window side", low=1)
    cnn_pool_stride: int | None = _knob(None, "cnn: pooling stride (None: the window side)", low=1)
    cnn_block_filters: list[int] = _knob([], "cnn: filters of each block, one per block ([]: from cnn_filters and cnn_organisation)")
    cnn_dense_widths: list[int] = _knob([], "cnn: units of each dense layer, input side first ([]: one layer of cnn_dense)")
    cnn_dropout_position: str = _knob("before_dense", "cnn: cnn_dropout before each dense layer or after each one's activation", choices=CNN_DROPOUT_POSITIONS)
    cnn_conv_dropout: float = _knob(0.0, "cnn: dropout after each conv block (after its pooling)", low=0.0, high=0.95)
    cnn_bn_position: str = _knob("before_act", "cnn: batch norm between conv and activation, or after the activation", choices=CNN_BN_POSITIONS)
    cnn_leaky_relu_slope: float = _knob(0.01, "cnn: negative slope of leaky_relu (torch's default; Keras uses 0.3)", low=0.0, low_open=True)
    cnn_dense_activation: str = _knob("same", "cnn: activation of the dense layers (same: cnn_activation; none: linear)", choices=CNN_DENSE_ACTIVATIONS)
    cnn_init: str = _knob("default", "cnn: weight init of conv and linear layers (biases then 0): default (PyTorch's), kaiming_* (fan_in, relu gain; leaky_relu's slope), xavier_*, trunc_normal (cnn_init_std, cut at 2 std)", choices=CNN_INITS)
    cnn_init_std: float = _knob(0.02, "cnn: std of cnn_init='trunc_normal'", low=0.0, low_open=True)
    cnn_conv_bias: bool | None = _knob(None, "cnn: conv bias (None: off when batch norm directly follows the conv, else on)")
    freeze: str = _knob("none", "none | head_only | a stage name such as layer3 (frozen up to and including it)")
    lr_groups: list[float] = _knob([], "LR multipliers from the head backwards, e.g. [1, 0.5, 0.25]")
    train_last_stages: int = _knob(0, "train only the last k stages, the head counting as one (1: the head alone), the rest frozen; 0 = off (freeze decides)", low=0)
    unfreeze_every: int = _knob(0, "gradual unfreezing: every this many epochs one more frozen stage is unfrozen, from the head backwards (starting from freeze / train_last_stages); 0 = off", low=0)
    freeze_bn: str = _knob("eval", "batch norm of frozen stages: eval (running statistics kept) or train (statistics follow each batch, affine weights stay frozen)", choices=FREEZE_BN)
    drop_rate: float | None = _knob(None, "timm / torchvision models: the library's dropout rate (timm drop_rate: before the classifier; torchvision: the builder's dropout); None: the model's default", low=0.0, high=0.95)
    drop_path_rate: float | None = _knob(None, "timm / torchvision models: drop-path (stochastic depth) rate (timm drop_path_rate, torchvision stochastic_depth_prob); None: the model's default", low=0.0, high=0.95)
    head_widths: list[int] | None = _knob(None, "replace the model's classifier by an MLP with hidden layers of these widths ([]: a new Linear alone); None: keep the model's classifier")
    head_dropout: float = _knob(0.0, "replacement head: dropout after each hidden layer (head_widths=[]: on the classifier's input)", low=0.0, high=0.95)
    head_norm: str = _knob("none", "replacement head: norm after each hidden Linear, before its activation", choices=HEAD_NORMS)
    head_activation: str = _knob("relu", "replacement head: activation of the hidden layers", choices=CNN_ACTIVATIONS)
    native_input_size: bool = _knob(False, "image_size follows the model's own input size (timm pretrained_cfg input_size, torchvision weights' crop size: Inception 299 px); image_size is then unused")
    warm_start: str | None = _knob(None, "start from the weights of a finished trial, 'STUDY:NUMBER' (trial NUMBER of study STUDY's current version; same model and shape); only the weights: optimizer, schedule and epochs start afresh")
    warm_start_from: str = _knob("best", "warm_start: that trial's checkpoint of its best epoch (best.pt) or of its last epoch (last.pt)", choices=WARM_START_FROM)
    # --- augmentation
    augment: str = _knob("basic", "preset: none | basic (crop+flip) | heavy (+erasing, jitter, rotation, grayscale) | ops (the list in augment_ops; set by giving it)", choices=AUGMENT_PRESETS)
    augment_ops: list[dict[str, Any]] = _knob([], "ordered augmentation operations replacing the preset, each {'op': name, 'p': probability, parameters...}, e.g. [{'op': 'random_resized_crop', 'scale': [0.08, 1]}, {'op': 'hflip'}]; ops: " + ", ".join(AUGMENT_OPS) + " (README: Augmentation)")
    crop_padding: int = _knob(4, "pixels of padding for the random crop (basic, heavy)", low=0, high=64)
    hflip: bool = _knob(True, "random horizontal flip (basic, heavy)")
    train_resize: str = _knob("auto", "training images to image_size: crop (resize short side to image_size/crop_ratio, random crop), squash (resize to image_size^2), none (native size); auto: crop for image folders, squash for in-memory data", choices=RESIZE_MODES)
    eval_resize: str = _knob("auto", "val/test images to image_size: crop (resize to image_size/crop_ratio, centre crop), squash, none (native size); auto as train_resize", choices=RESIZE_MODES)
    crop_ratio: float = _knob(0.875, "resize 'crop': image_size / resized short side (0.875: 256 -> 224)", low=0.0, high=1.0, low_open=True)
    rotation: float = _knob(12.0, "max rotation in degrees (heavy)", low=0.0, high=180.0)
    color_jitter: float = _knob(0.2, "brightness/contrast/saturation jitter (heavy)", low=0.0, high=1.0)
    grayscale_p: float = _knob(0.1, "probability of random grayscale (heavy)", low=0.0, high=1.0)
    erasing_p: float = _knob(0.25, "probability of random erasing (heavy)", low=0.0, high=1.0)
    erasing_scale: list[float] = _knob([0.02, 0.33], "random erasing: [min, max] fraction of the image area (heavy)")
    erasing_ratio: list[float] = _knob([0.3, 3.3], "random erasing: [min, max] aspect ratio of the rectangle (heavy)")
    auto_augment: str = _knob("none", "RandAugment/TrivialAugment (DataLoader path)", choices=AUTO_AUGMENT)
    normalize: str = _knob("dataset", "mean/std: dataset (published for CIFAR, else computed), computed (from the training split), imagenet, custom (mean/std), none", choices=NORMALIZE)
    mean: list[float] = _knob([], "normalize='custom': per-channel mean on the 0..1 scale")
    std: list[float] = _knob([], "normalize='custom': per-channel std on the 0..1 scale")
    mixup_alpha: float = _knob(0.0, "MixUp alpha, 0 = off", low=0.0)
    cutmix_alpha: float = _knob(0.0, "CutMix alpha, 0 = off", low=0.0)
    label_smoothing: float = _knob(0.0, "cross-entropy label smoothing", low=0.0, high=0.99)
    # --- loss and evaluation
    loss: str = _knob("cross_entropy", "training loss: cross_entropy, or focal (-sum_c q_c (1 - p_c)^focal_gamma log p_c, q the target with label_smoothing)", choices=LOSSES)
    focal_gamma: float = _knob(2.0, "focal: focusing exponent (0: cross-entropy)", low=0.0)
    focal_alpha: list[float] = _knob([], "focal: weight of each class, one per class ([]: all 1)")
    margin_loss: str = _knob("none", "auxiliary margin head on the embedding (the classifier's input), trained beside the classifier: none, arcface (s cos(theta + m)), cosface (s (cos theta - m))", choices=MARGIN_LOSSES)
    margin_scale: float = _knob(64.0, "arcface/cosface: scale s of the cosine logits", low=0.0, low_open=True)
    margin_m: float = _knob(0.5, "arcface: additive angular margin m; cosface: additive cosine margin m (0.35 is usual)", low=0.0, high=1.5)
    margin_weight: float = _knob(1.0, "weight of the margin head's cross-entropy in the training loss", low=0.0, low_open=True)
    margin_lr: float | None = _knob(None, "learning rate of the margin head's parameter group, scheduled as the others (None: lr)", low=0.0, low_open=True)
    test_checkpoint: str = _knob("best", "weights the test split is scored with: best (the epoch selected on the study metric) or last (the last epoch trained)", choices=TEST_CHECKPOINTS)
    tta: str = _knob("none", "test-time augmentation of val and test: none, flip (image and its mirror), crops (tta_crops crops of tta_crop_size resized to image_size); softmax probabilities averaged", choices=TTA_MODES)
    tta_crops: int = _knob(5, "tta='crops': 5 (four corners and centre) or 10 (and their mirror images)", low=5, high=10)
    tta_crop_size: int | None = _knob(None, "tta='crops': side of each crop, < image_size (None: 7/8 of image_size)", low=1)
    # --- optimisation
    optimizer: str = _knob("sgd", "optimizer: sgd, adamw (decoupled weight decay), adam (weight_decay as L2 in the gradient, torch's Adam)", choices=OPTIMIZERS)
    betas: list[float] = _knob([0.9, 0.999], "adam/adamw: [beta1, beta2], decay rates of the moment estimates")
    lr: float = _knob(0.05, "base learning rate", low=0.0, low_open=True)
    momentum: float = _knob(0.9, "SGD momentum", low=0.0, high=1.0)
    nesterov: bool = _knob(False, "SGD Nesterov momentum")
    weight_decay: float = _knob(5e-4, "L2 weight decay", low=0.0)
    decay_norm_bias: bool = _knob(True, "weight decay also on norm-layer and bias parameters (false: 1-d parameters and biases get none)")
    accumulate_steps: int = _knob(1, "batches whose gradients are summed into one optimizer step (effective batch: batch_size x this)", low=1, high=1024)
    clip_grad_norm: float = _knob(0.0, "clip the gradients' global L2 norm to this before each step, 0 = off", low=0.0)
    scheduler: str = _knob("cosine", "LR schedule", choices=SCHEDULERS)
    schedule_step: str = _knob("epoch", "cosine / cosine_restarts: evaluated once per epoch, or at every optimizer step (batch)", choices=SCHEDULE_STEPS)
    cosine_period: int | None = _knob(None, "cosine: epochs of the half cosine (None: epochs); past it the rate rises again, as torch's CosineAnnealingLR", low=1)
    step_size: int = _knob(30, "step: epochs between decays", low=1)
    milestones: list[int] = _knob([], "multistep: epochs at which the LR decays")
    gamma: float = _knob(0.1, "step/multistep: decay factor", low=0.0, high=1.0, low_open=True)
    plateau_patience: int = _knob(10, "plateau: epochs without improvement before decaying", low=0)
    plateau_factor: float = _knob(0.1, "plateau: decay factor", low=0.0, high=1.0, low_open=True)
    plateau_metric: str = _knob("study", "plateau: the per-epoch metric it watches (study: the study metric's epoch value)", choices=PLATEAU_METRICS)
    t_0: int = _knob(10, "cosine_restarts: epochs of the first cycle", low=1)
    t_mult: int = _knob(1, "cosine_restarts: cycle length multiplier", low=1)
    min_lr: float = _knob(0.0, "cosine / cosine_restarts: final LR", low=0.0)
    warmup_epochs: int = _knob(0, "linear warm-up epochs before the schedule", low=0)
    warmup_steps: int = _knob(0, "linear warm-up in optimizer steps instead of epochs, 0 = off", low=0)
    epochs: int = _knob(10, "training epochs", low=1, high=10_000)
    batch_size: int = _knob(128, "training batch size", low=1, high=65_536)
    early_stopping: int = _knob(0, "patience in epochs on early_stopping_metric, 0 = off", low=0)
    early_stopping_metric: str = _knob("study", "early stopping: the per-epoch metric it watches (study: the study metric's epoch value), its direction from the metric table", choices=EARLY_STOPPING_METRICS)
    time_limit_s: float = _knob(0.0, "stop training after this many seconds, 0 = none", low=0.0)
    # --- execution
    amp: str = _knob("auto", "mixed precision: auto (CUDA bf16/fp16, off on CPU), off, fp16, bf16", choices=AMP_MODES)
    channels_last: bool = _knob(True, "channels_last memory format for convolutional models")
    compile: bool = _knob(False, "torch.compile the model")
    device: str = _knob("auto", "device", choices=DEVICES)
    num_workers: int = _knob(2, "DataLoader workers of the training split (image folders, per-image policies)", low=0, high=64)
    eval_workers: int | None = _knob(None, "DataLoader workers of the val and test splits (None: num_workers)", low=0, high=64)
    pin_memory: bool = _knob(True, "pinned host memory for the DataLoader path on CUDA")
    image_cache: str = _knob("auto", "image folders: decode once into a shared memory-mapped cache and augment batches on the device (on), or decode per image in DataLoader workers (off); auto: the cache unless auto_augment, native size or a too small disk need the workers", choices=IMAGE_CACHE_MODES)
    skip_bad_images: bool = _knob(False, "image folders: leave unreadable image files out of the decoded cache (listed once) instead of failing the trial")
    prediction_samples: int = _knob(30, "test images whose predictions are stored for the report", low=0)
    seed: int = _knob(0, "random seed of this replicate", low=0)
    extra: dict[str, Any] = _knob({}, "free-form values for a user-supplied train function")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, in field order."""
        return dataclasses.asdict(self)

    @property
    def config_hash(self) -> str:
        """Identity of the configuration without its seed: replicates share it."""
        return config_hash(self)


@dataclass(frozen=True)
class TrialSpec:
    """One planned trial: its number in the study, factor values, seed and full configuration."""

    number: int
    params: dict[str, Any]
    seed: int
    config: TrialConfig

    @property
    def config_hash(self) -> str:
        return self.config.config_hash


FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(TrialConfig)}
_HINTS = typing.get_type_hints(TrialConfig)


# Fields added after the first release: left out of the hash while at their default, so that
# trials planned before they existed keep their identity (re-running a study adds nothing).
_HASHED_WHEN_SET = (
    "train_split", "test_split", "split_seed", "train_resize", "eval_resize", "crop_ratio",
    "erasing_scale", "erasing_ratio", "mean", "std", "eval_workers", "plateau_metric",
    "cnn_kernel_sizes", "cnn_padding", "cnn_pool", "cnn_pool_size", "cnn_pool_stride", "cnn_block_filters",
    "cnn_dense_widths", "cnn_dropout_position", "cnn_conv_dropout", "cnn_bn_position", "cnn_leaky_relu_slope",
    "cnn_dense_activation", "cnn_init", "cnn_init_std", "cnn_conv_bias", "betas", "decay_norm_bias",
    "accumulate_steps", "clip_grad_norm", "schedule_step", "cosine_period", "warmup_steps",
    "early_stopping_metric", "warm_start", "warm_start_from", "loss", "focal_gamma", "focal_alpha", "margin_loss", "margin_scale", "margin_m",
    "margin_weight", "margin_lr", "test_checkpoint", "tta", "tta_crops", "tta_crop_size",
    "train_last_stages", "unfreeze_every", "freeze_bn", "drop_rate", "drop_path_rate",
    "head_widths", "head_dropout", "head_norm", "head_activation", "native_input_size",
    "augment_ops", "skip_bad_images",
)  # fmt: skip


def _default(name: str) -> Any:
    f = FIELDS[name]
    if f.default is not dataclasses.MISSING:
        return f.default
    factory: Any = f.default_factory
    return factory()


# How the images reach the trainer, not what it trains on: the same trial whichever path feeds it.
_NEVER_HASHED = ("seed", "image_cache")


def config_hash(config: TrialConfig) -> str:
    values = config.to_dict()
    for name in _NEVER_HASHED:
        del values[name]
    for name in _HASHED_WHEN_SET:
        if values[name] == _default(name):
            del values[name]
    blob = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# Names other tools use for our fields, so a typo check can suggest the right one.
_ALIASES = {
    "learning_rate": "lr",
    "wd": "weight_decay",
    "img_size": "image_size",
    "input_size": "image_size",
    "bs": "batch_size",
    "arch": "model",
    "architecture": "model",
    "n_epochs": "epochs",
    "num_epochs": "epochs",
    "patience": "early_stopping",
    "lr_scheduler": "scheduler",
    "sched": "scheduler",
    "opt": "optimizer",
    "smoothing": "label_smoothing",
    "mixup": "mixup_alpha",
    "cutmix": "cutmix_alpha",
}


def did_you_mean(name: str, options: typing.Iterable[str]) -> str:
    options = list(options)
    if _ALIASES.get(name) in options:
        return f"; did you mean {_ALIASES[name]!r}?"
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def field_doc(name: str) -> str:
    return str(FIELDS[name].metadata["doc"])


def check_field_name(name: str, *, where: str, allow_extra: bool = False) -> None:
    """Raise for a key that is not a TrialConfig field (unless a custom trainer takes extras)."""
    if (name in FIELDS and name != "extra") or allow_extra:
        return
    raise StudyError(
        f"{where}: unknown field {name!r}{did_you_mean(name, FIELDS)} "
        f"(see `ablate fields` for all {len(FIELDS) - 1} fields)"
    )


def _describe_type(hint: Any) -> str:
    if hint is bool:
        return "true/false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        text = " or ".join(_describe_type(a) for a in args)
        return text + " or None" if type(None) in typing.get_args(hint) else text
    if origin is list:
        return f"a list of {_describe_type(typing.get_args(hint)[0])}s"
    if origin is dict:
        return "a dict"
    return str(hint)


def coerce_value(name: str, value: Any, *, where: str) -> Any:
    """Check one field's value against its type, range and choices; return it normalised."""
    f = FIELDS[name]
    hint = _HINTS[name]
    meta = f.metadata

    def bad(expected: str) -> StudyError:
        return StudyError(
            f"{where}: field {name!r} must be {expected}, got {value!r} ({type(value).__name__})"
        )

    if name == "augment_ops":  # a list of dicts with a table of its own
        return check_augment_ops(value, where=where)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
    if optional:
        if value is None and type(None) in typing.get_args(hint):
            return None
        arms = [a for a in typing.get_args(hint) if a is not type(None)]
        # float | str (the splits): a name stays a name, a number is checked as a number.
        hint = str if str in arms and isinstance(value, str) else arms[0]

    if hint is bool:
        if not isinstance(value, bool):
            raise bad("true/false")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise bad(_describe_type(_HINTS[name]))
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad(_describe_type(_HINTS[name]))
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise bad("a finite number")
    elif hint is str:
        if not isinstance(value, str):
            raise bad(_describe_type(_HINTS[name]))
    elif typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise bad(_describe_type(hint))
        items = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise bad(_describe_type(hint))
            if item is int and not float(v).is_integer():
                raise bad(_describe_type(hint))
            items.append(item(v))
        value = items
    elif typing.get_origin(hint) is dict:
        if not isinstance(value, Mapping):
            raise bad("a dict")
        value = dict(value)

    choices = meta["choices"]
    if choices is not None and value not in choices:
        raise StudyError(
            f"{where}: field {name!r} is {value!r}{did_you_mean(str(value), choices)}; "
            f"allowed: {', '.join(choices)}"
        )
    low, high = meta["low"], meta["high"]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if low is not None and (value < low or (meta["low_open"] and value == low)):
            op = ">" if meta["low_open"] else ">="
            rng = f"{op} {low:g}" + (f" and <= {high:g}" if high is not None else "")
            raise StudyError(f"{where}: field {name!r} is {value!r}; it must be {rng}")
        if high is not None and value > high:
            raise StudyError(f"{where}: field {name!r} is {value!r}; it must be <= {high:g}")
    return value


def split_source(value: float | str | None) -> float | str | None:
    """What a split declaration means: a fraction of train, a folder name, or None (no split)."""
    if value is None or value == "none" or (not isinstance(value, str) and value == 0):
        return None
    return value


def has_val_split(config: TrialConfig) -> bool:
    return split_source(config.val_split) is not None


def has_test_split(config: TrialConfig) -> bool:
    return split_source(config.test_split) is not None


def _check_splits(config: TrialConfig, where: str) -> None:
    folders: dict[str, str] = {"train_split": config.train_split}
    fractions = 0.0
    for name in ("val_split", "test_split"):
        value = split_source(getattr(config, name))
        if isinstance(value, float):
            if value >= 1:
                raise StudyError(
                    f"{where}: field {name!r} is {value:g}: a hold-out of all of train leaves nothing "
                    "to train on; allowed: a fraction between 0 and 1 (such as 0.2), a folder name, or None"
                )
            fractions += value
        elif isinstance(value, str):
            folders[name] = value
    if fractions >= 1:
        raise StudyError(
            f"{where}: fields 'val_split' and 'test_split' hold out {fractions:g} of train together; "
            "they must leave some of it to train on"
        )
    for name, folder in folders.items():
        if not folder or "/" in folder or "\\" in folder or folder in (".", ".."):
            raise StudyError(f"{where}: field {name!r} is {folder!r}; allowed: the name of a folder next to train/")
    seen: dict[str, str] = {}
    for name, folder in folders.items():
        if folder in seen:
            raise StudyError(
                f"{where}: fields {seen[folder]!r} and {name!r} both declare folder {folder!r}: "
                "one folder can be only one split"
            )
        seen[folder] = name
    if not has_val_split(config):
        if config.early_stopping and not config.early_stopping_metric.startswith("train_"):
            raise StudyError(
                f"{where}: field 'early_stopping' is {config.early_stopping} but there is no validation "
                "split (val_split is None/0): early stopping would select on training or test images; "
                "set val_split (e.g. 0.2), early_stopping_metric='train_loss', or early_stopping=0"
            )
        if config.scheduler == "plateau" and not config.plateau_metric.startswith("train_"):
            raise StudyError(
                f"{where}: scheduler 'plateau' watches plateau_metric {config.plateau_metric!r}, a "
                "validation metric, but there is no validation split (val_split is None/0); set "
                "val_split (e.g. 0.2), plateau_metric='train_loss', or another scheduler"
            )


def check_selection(
    config: TrialConfig, *, metric: str, design: str, selects_on_metric: bool, pruner: str, where: str
) -> None:
    """Refuse a study that would compare or stop trials on images they are not meant to see:
    a validation metric without a validation split, a test metric without a test split, and
    test images used to choose configurations (designs that select on the metric, pruners)."""
    if metric.startswith("val_") and not has_val_split(config):
        raise StudyError(
            f"{where}: metric {metric!r} needs a validation split but val_split is {config.val_split!r}; "
            "set val_split (e.g. 0.2 of train) or use metric 'test_acc' (reported, never selected on)"
        )
    if metric.startswith("test_") and not has_test_split(config):
        raise StudyError(f"{where}: metric {metric!r} needs a test split but test_split is {config.test_split!r}")
    if metric.startswith("test_") and selects_on_metric:
        raise StudyError(
            f"{where}: design {design!r} chooses the next configurations by the metric; metric "
            f"{metric!r} would select them on test images; use a validation metric (val_acc)"
        )
    if pruner != "none" and not has_val_split(config):
        raise StudyError(
            f"{where}: pruner {pruner!r} compares trials on a per-epoch validation metric but there is "
            "no validation split (val_split is None/0)"
        )


_HEAVY_ONLY = ("rotation", "color_jitter", "grayscale_p", "erasing_p", "erasing_scale", "erasing_ratio")
_SCHEDULER_FIELDS = {
    "step_size": ("step",), "gamma": ("step", "multistep"), "milestones": ("multistep",),
    "plateau_patience": ("plateau",), "plateau_factor": ("plateau",), "t_0": ("cosine_restarts",),
    "t_mult": ("cosine_restarts",), "min_lr": ("cosine", "cosine_restarts"), "plateau_metric": ("plateau",),
    "schedule_step": ("cosine", "cosine_restarts"), "cosine_period": ("cosine",),
}  # fmt: skip
_LEAKY = "leaky_relu"


def unused_settings(config: TrialConfig) -> dict[str, str]:
    """Fields the built-in trainer does not read for this config, each with the reason."""
    out: dict[str, str] = {}
    if config.augment in ("none", "ops"):
        why = "augment is 'none'" if config.augment == "none" else "augment is 'ops': augment_ops lists the operations"
        out.update(dict.fromkeys(("crop_padding", "hflip"), why))
    if sizes_training_images(config.augment_ops):
        out["train_resize"] = f"augment_ops starts with {RESIZED_CROP}, which sizes the training images"
    if config.augment != "heavy":
        out.update(dict.fromkeys(_HEAVY_ONLY, f"augment is {config.augment!r}; only 'heavy' uses it"))
    elif config.erasing_p == 0:
        out.update(dict.fromkeys(("erasing_scale", "erasing_ratio"), "erasing_p is 0"))
    auto = "crop" if _IMAGEFOLDER.match(config.dataset) else "squash"
    modes = {auto if m == "auto" else m for m in (config.train_resize, config.eval_resize)}
    if "crop" not in modes:
        out["crop_ratio"] = "neither train_resize nor eval_resize is 'crop' (for this dataset)"
    if not _IMAGEFOLDER.match(config.dataset):
        out.update(dict.fromkeys(("image_cache", "skip_bad_images"), "the dataset is not an image folder"))
    elif config.image_cache == "off":
        out["skip_bad_images"] = "image_cache is 'off': only the decoded cache leaves unreadable files out"
    for name, schedulers in _SCHEDULER_FIELDS.items():
        if config.scheduler not in schedulers:
            out[name] = f"scheduler is {config.scheduler!r}; it is used by {', '.join(schedulers)}"
    if config.optimizer != "sgd":
        out.update(dict.fromkeys(("momentum", "nesterov"), f"optimizer is {config.optimizer!r}"))
    else:
        out["betas"] = "optimizer is 'sgd'; betas are adam's and adamw's"
    if config.weight_decay == 0:
        out["decay_norm_bias"] = "weight_decay is 0"
    if not config.early_stopping:
        out["early_stopping_metric"] = "early_stopping is 0"
    if config.model != "cnn":
        for name in FIELDS:
            if name.startswith("cnn_"):
                out[name] = f"model is {config.model!r}; cnn_* fields shape model 'cnn'"
    else:
        out.update(_unused_cnn_settings(config))
    if not config.pretrained:
        out["weights_path"] = "pretrained is false"
    if config.warm_start is None:
        out["warm_start_from"] = "warm_start is None"
    out.update(_unused_loss_settings(config))
    out.update(_unused_finetune_settings(config))
    return out


def _unused_loss_settings(config: TrialConfig) -> dict[str, str]:
    out: dict[str, str] = {}
    if config.loss != "focal":
        out.update(dict.fromkeys(("focal_gamma", "focal_alpha"), f"loss is {config.loss!r}; only 'focal' uses it"))
    if config.margin_loss == "none":
        out.update(dict.fromkeys(("margin_scale", "margin_m", "margin_weight", "margin_lr"), "margin_loss is 'none'"))
    if config.tta != "crops":
        out.update(dict.fromkeys(("tta_crops", "tta_crop_size"), f"tta is {config.tta!r}; only 'crops' uses it"))
    if not has_test_split(config):
        out["test_checkpoint"] = "there is no test split (test_split is None)"
    elif not has_val_split(config):
        out["test_checkpoint"] = "there is no validation split: the last epoch is the one kept"
    return out


def _unused_finetune_settings(config: TrialConfig) -> dict[str, str]:
    out: dict[str, str] = {}
    if config.freeze == "none" and not config.train_last_stages:
        out["freeze_bn"] = "nothing is frozen (freeze is 'none', train_last_stages 0)"
    if config.head_widths is None:
        out.update(dict.fromkeys(("head_dropout", "head_norm", "head_activation"), "head_widths is None (the model's own classifier)"))
    elif not config.head_widths:
        out.update(dict.fromkeys(("head_norm", "head_activation"), "head_widths is [] (no hidden layer)"))
    if config.native_input_size:
        out["image_size"] = "native_input_size is true (the model's own input size)"
    return out


def _unused_cnn_settings(config: TrialConfig) -> dict[str, str]:
    out: dict[str, str] = {}
    if config.cnn_block_filters:
        out.update(dict.fromkeys(("cnn_filters", "cnn_organisation"), "cnn_block_filters lists each block's filters"))
    if config.cnn_dense_widths:
        out["cnn_dense"] = "cnn_dense_widths lists each dense layer's units"
    if config.cnn_pool == "none":
        out.update(dict.fromkeys(("cnn_pool_size", "cnn_pool_stride"), "cnn_pool is 'none'"))
    if not config.cnn_batch_norm:
        out["cnn_bn_position"] = "cnn_batch_norm is false"
    if config.cnn_dropout == 0:
        out["cnn_dropout_position"] = "cnn_dropout is 0"
    if _LEAKY not in (config.cnn_activation, config.cnn_dense_activation):
        out["cnn_leaky_relu_slope"] = "neither cnn_activation nor cnn_dense_activation is 'leaky_relu'"
    if config.cnn_init != "trunc_normal":
        out["cnn_init_std"] = f"cnn_init is {config.cnn_init!r}; only 'trunc_normal' uses it"
    return out


def check_settings_used(names: typing.Iterable[str], configs: typing.Sequence[TrialConfig], *, where: str) -> None:
    """Refuse a setting the study makes (a base key or a factor) that no trial's trainer reads:
    a factor whose levels all train the same way is a mistake, not an ablation."""
    if not configs:
        return
    for name in names:
        reasons = [unused_settings(c).get(name) for c in configs]
        if all(reasons):
            raise StudyError(
                f"{where}: field {name!r} is set but no trial uses it ({reasons[0]}); remove it or "
                "change what makes it unused"
            )


def _check_transforms(config: TrialConfig, where: str) -> None:
    custom = config.normalize == "custom"
    if custom != bool(config.mean) or custom != bool(config.std):
        raise StudyError(
            f"{where}: fields 'mean' and 'std' are given with normalize='custom' and only then "
            f"(normalize is {config.normalize!r}, mean {config.mean}, std {config.std})"
        )
    if custom:
        if len(config.mean) != len(config.std):
            raise StudyError(
                f"{where}: fields 'mean' ({len(config.mean)} values) and 'std' ({len(config.std)} values) "
                "must have one value per image channel each"
            )
        if any(v <= 0 for v in config.std) or any(not 0 <= v <= 1 for v in config.mean):
            raise StudyError(
                f"{where}: normalize='custom' needs mean in [0, 1] and std > 0 on the 0..1 scale, "
                f"got mean {config.mean}, std {config.std}"
            )
    for name, high in (("erasing_scale", 1.0), ("erasing_ratio", None)):
        pair = getattr(config, name)
        if len(pair) != 2 or not 0 < pair[0] <= pair[1] or (high is not None and pair[1] > high):
            bound = f" <= {high:g}" if high is not None else ""
            raise StudyError(f"{where}: field {name!r} is {pair}; it must be [min, max] with 0 < min <= max{bound}")


def _check_augment_ops(config: TrialConfig, where: str) -> None:
    """How augment_ops combines with the preset and the per-image policies."""
    ops = config.augment_ops
    if config.augment == "ops" and not ops:
        raise StudyError(f"{where}: field 'augment' is 'ops' but augment_ops is empty; list the operations or choose a preset")
    if ops and config.augment != "ops":
        raise StudyError(
            f"{where}: field 'augment' is {config.augment!r} but augment_ops lists operations, which "
            "replace the preset; leave augment out (or set augment='ops')"
        )
    if ops and config.auto_augment != "none":
        raise StudyError(
            f"{where}: field 'auto_augment' is {config.auto_augment!r} with augment_ops; list it as an "
            f"operation instead, e.g. {{'op': {config.auto_augment!r}}}, where it belongs in the order"
        )
    for i, item in enumerate(ops):
        mirrored = item.get("padding_mode") in ("reflect", "symmetric")
        if item["op"] == "crop" and mirrored and item.get("padding", 4) >= config.image_size:
            raise StudyError(
                f"{where}: field 'augment_ops' item {i} (crop): padding {item.get('padding', 4)} with "
                f"padding_mode {item['padding_mode']!r} mirrors the image, so it must be < image_size ({config.image_size})"
            )
        if item["op"] == RESIZED_CROP and i > 0:
            raise StudyError(
                f"{where}: field 'augment_ops' item {i} is {RESIZED_CROP}, which sizes the training "
                "images from the image as stored or decoded; it must be the first operation"
            )


def _check_cross_fields(config: TrialConfig, where: str) -> None:
    _check_splits(config, where)
    _check_transforms(config, where)
    _check_augment_ops(config, where)
    # Dataset and model names (and what each dataset or model family refuses) are the trainer's
    # to check: ablate.train.check_trial_config, called on every planned config.
    if config.freeze not in ("none", "head_only") and not _IDENTIFIER.match(config.freeze):
        raise StudyError(
            f"{where}: field 'freeze' is {config.freeze!r}; allowed: none, head_only, "
            "or a stage name such as layer3"
        )
    if config.freeze != "none" and not config.pretrained and config.warm_start is None:
        raise StudyError(
            f"{where}: field 'freeze' is {config.freeze!r} but 'pretrained' is false (and no "
            "warm_start); freezing randomly initialised layers is almost always a mistake (add a "
            "constraint to drop such combinations)"
        )
    _check_warm_start(config, where)
    if any(m <= 0 for m in config.lr_groups):
        raise StudyError(f"{where}: field 'lr_groups' must hold multipliers > 0, got {config.lr_groups}")
    _check_finetune(config, where)
    if config.optimizer == "sgd" and config.nesterov and config.momentum <= 0:
        raise StudyError(f"{where}: field 'nesterov' is true but 'momentum' is 0; Nesterov needs momentum > 0")
    if config.scheduler == "multistep" and not config.milestones:
        raise StudyError(f"{where}: field 'milestones' must list epochs when scheduler is 'multistep'")
    if config.warmup_epochs >= config.epochs and config.warmup_epochs > 0:
        raise StudyError(
            f"{where}: field 'warmup_epochs' is {config.warmup_epochs}; it must be < epochs ({config.epochs})"
        )
    _check_recipe(config, where)
    _check_losses(config, where)
    if config.model == "cnn":
        _check_cnn(config, where)


def _check_finetune(config: TrialConfig, where: str) -> None:
    """How the fine-tuning settings combine (what needs the model's stages is checked by the
    trainer's check_trial_config)."""
    if config.train_last_stages and not config.pretrained and config.warm_start is None:
        raise StudyError(
            f"{where}: field 'train_last_stages' is {config.train_last_stages} but 'pretrained' is "
            "false (and no warm_start); freezing randomly initialised layers is almost always a mistake"
        )
    if config.unfreeze_every:
        if config.freeze == "none" and not config.train_last_stages:
            raise StudyError(
                f"{where}: field 'unfreeze_every' is {config.unfreeze_every} but nothing is frozen to "
                "start with; set freeze (such as 'head_only') or train_last_stages"
            )
        if config.unfreeze_every >= config.epochs:
            raise StudyError(
                f"{where}: field 'unfreeze_every' is {config.unfreeze_every} but the trial trains "
                f"{config.epochs} epochs: no stage would be unfrozen; it must be < epochs"
            )
    if config.model == "cnn":
        for name, own in (("drop_rate", "cnn_dropout"), ("drop_path_rate", None), ("head_widths", "cnn_dense_widths")):
            if getattr(config, name) is not None:
                hint = f"; use {own}" if own else "; the small CNN has no drop-path"
                raise StudyError(f"{where}: field {name!r} is set but model is 'cnn'{hint}")
    if config.head_widths is not None and any(w < 1 for w in config.head_widths):
        raise StudyError(f"{where}: field 'head_widths' is {config.head_widths}; each width must be >= 1")


_WARM_START = re.compile(r"(?P<study>[a-z][a-z0-9_]*):(?P<number>[0-9]+)")


def parse_warm_start(value: str, where: str = "") -> tuple[str, int]:
    """``"digits_a:3"`` -> ``("digits_a", 3)``: the study and trial number a warm start names."""
    match = _WARM_START.fullmatch(value.strip())
    if match is None:
        raise StudyError(
            f"{where + ': ' if where else ''}field 'warm_start' is {value!r}; expected 'STUDY:NUMBER', a study name and one of "
            "its trial numbers, e.g. 'digits_quick:0' (see `ablate status STUDY`)"
        )
    return match["study"], int(match["number"])


def _check_warm_start(config: TrialConfig, where: str) -> None:
    if config.warm_start is None:
        return
    parse_warm_start(config.warm_start, where)
    if config.pretrained:
        raise StudyError(
            f"{where}: fields 'warm_start' ({config.warm_start!r}) and 'pretrained' are both set; "
            "a warm start replaces every weight of the model, so the pretrained ones would be "
            "overwritten: set pretrained=False (freeze works with warm_start)"
        )


def _check_recipe(config: TrialConfig, where: str) -> None:
    """How the optimiser and schedule settings combine."""
    if len(config.betas) != 2 or not all(0 <= b < 1 for b in config.betas):
        raise StudyError(f"{where}: field 'betas' is {config.betas}; it must be [beta1, beta2], each in [0, 1)")
    if config.warmup_epochs and config.warmup_steps:
        raise StudyError(
            f"{where}: fields 'warmup_epochs' ({config.warmup_epochs}) and 'warmup_steps' "
            f"({config.warmup_steps}) are both set; a warm-up is counted in one of them"
        )
    if config.scheduler == "plateau" and config.schedule_step == "batch":
        raise StudyError(
            f"{where}: field 'schedule_step' is 'batch' but scheduler 'plateau' decays on an epoch's "
            "metric, once per epoch; use schedule_step='epoch' or a cosine schedule"
        )
    effective = config.batch_size * config.accumulate_steps
    if config.accumulate_steps > 1 and config.max_train_samples is not None and effective > config.max_train_samples:
        raise StudyError(
            f"{where}: field 'accumulate_steps' is {config.accumulate_steps}: one optimizer step of "
            f"batch_size x accumulate_steps = {effective} images needs more than max_train_samples "
            f"({config.max_train_samples}); lower one of them"
        )


def tta_crop_side(config: TrialConfig) -> int:
    """The side of each test-time crop (``tta_crop_size``, by default 7/8 of ``image_size``)."""
    return config.tta_crop_size if config.tta_crop_size is not None else max(1, config.image_size * 7 // 8)


def _check_losses(config: TrialConfig, where: str) -> None:
    """How the loss, margin head and test-time augmentation settings combine (the focal class
    weights against the class count and the margin head against the model: the trainer's check)."""
    if any(a <= 0 for a in config.focal_alpha):
        raise StudyError(f"{where}: field 'focal_alpha' is {config.focal_alpha}; each class weight must be > 0")
    if config.margin_loss != "none":
        mixed = [n for n in ("mixup_alpha", "cutmix_alpha") if getattr(config, n) > 0]
        if mixed:
            raise StudyError(
                f"{where}: field 'margin_loss' is {config.margin_loss!r} but {mixed[0]} is "
                f"{getattr(config, mixed[0]):g}: a margin head needs each image's one class, and mixed "
                "images have two; set margin_loss='none' or the alpha to 0"
            )
    if config.tta == "crops":
        if config.tta_crops not in TTA_CROP_COUNTS:
            raise StudyError(
                f"{where}: field 'tta_crops' is {config.tta_crops}; allowed: 5 (four corners and the "
                "centre), 10 (those and their mirror images)"
            )
        side = tta_crop_side(config)
        if side >= config.image_size:
            raise StudyError(
                f"{where}: field 'tta_crop_size' is {side} but image_size is {config.image_size}: a crop "
                "must be smaller than the image it is cut from"
            )


def _check_cnn(config: TrialConfig, where: str) -> None:
    """The small CNN's per-block lists fit ``cnn_blocks``."""
    blocks = config.cnn_blocks
    sizes = config.cnn_kernel_sizes
    if len(sizes) not in (1, blocks) or any(k < 1 for k in sizes):
        raise StudyError(
            f"{where}: field 'cnn_kernel_sizes' is {sizes} but cnn_blocks is {blocks}; allowed: one "
            f"kernel side >= 1 for every block, or {blocks} of them (one per block)"
        )
    filters = config.cnn_block_filters
    if filters and (len(filters) != blocks or any(f < 1 for f in filters)):
        raise StudyError(
            f"{where}: field 'cnn_block_filters' is {filters} but cnn_blocks is {blocks}; allowed: "
            f"[] (cnn_filters and cnn_organisation) or {blocks} filter counts >= 1"
        )
    if any(w < 1 for w in config.cnn_dense_widths):
        raise StudyError(f"{where}: field 'cnn_dense_widths' is {config.cnn_dense_widths}; each width must be >= 1")


def make_config(
    values: Mapping[str, Any], *, where: str, allow_extra: bool = False, cross_checks: bool = True
) -> TrialConfig:
    """Build and validate a TrialConfig from merged study values.

    With ``allow_extra`` (a study with its own train function), keys that are not fields go to
    ``config.extra`` instead of being rejected. ``cross_checks=False`` checks each field alone,
    not how fields combine: constraints see such configs before impossible ones are dropped.
    """
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = dict(values.get("extra", {}) or {})
    for name, value in values.items():
        if name == "extra":
            continue
        if name not in FIELDS:
            check_field_name(name, where=where, allow_extra=allow_extra)
            extra[name] = value
            continue
        kwargs[name] = coerce_value(name, value, where=where)
    if kwargs.get("augment_ops") and "augment" not in kwargs:
        kwargs["augment"] = "ops"  # an op list replaces the default preset
    config = TrialConfig(**kwargs, extra=extra)
    if cross_checks:
        _check_cross_fields(config, where)
    return config


# The unit of each field that has one, for `ablate fields` (dimensionless fields have none).
FIELD_UNITS: dict[str, str] = {
    "synthetic_samples": "images",
    "val_split": "fraction",
    "max_train_samples": "images",
    "image_size": "px",
    "cnn_blocks": "blocks",
    "cnn_filters": "filters",
    "cnn_dropout": "probability",
    "cnn_dense": "units",
    "cnn_kernel_sizes": "px",
    "cnn_pool_size": "px",
    "cnn_pool_stride": "px",
    "cnn_block_filters": "filters",
    "cnn_dense_widths": "units",
    "cnn_conv_dropout": "probability",
    "cnn_leaky_relu_slope": "slope",
    "cnn_init_std": "std",
    "train_last_stages": "stages",
    "unfreeze_every": "epochs",
    "drop_rate": "probability",
    "drop_path_rate": "probability",
    "head_widths": "units",
    "head_dropout": "probability",
    "betas": "decay rate",
    "accumulate_steps": "batches",
    "clip_grad_norm": "L2 norm",
    "cosine_period": "epochs",
    "warmup_steps": "steps",
    "augment_ops": "ops (p: probability; px, degrees, fractions per parameter)",
    "crop_padding": "px",
    "rotation": "degrees",
    "color_jitter": "fraction",
    "grayscale_p": "probability",
    "erasing_p": "probability",
    "label_smoothing": "fraction",
    "focal_gamma": "exponent",
    "focal_alpha": "weight",
    "margin_scale": "x",
    "margin_m": "rad (arcface) / cosine (cosface)",
    "margin_weight": "x",
    "margin_lr": "as lr",
    "tta_crops": "crops",
    "tta_crop_size": "px",
    "step_size": "epochs",
    "milestones": "epochs",
    "plateau_patience": "epochs",
    "t_0": "epochs",
    "t_mult": "x",
    "warmup_epochs": "epochs",
    "epochs": "epochs",
    "batch_size": "images",
    "early_stopping": "epochs",
    "time_limit_s": "s",
    "num_workers": "processes",
    "prediction_samples": "images",
}
