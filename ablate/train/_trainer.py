"""The training loop: one trial config in, per-epoch metrics out to a reporter, a result back.

Read top to bottom: ``train_trial`` builds a :class:`_Trial` (data on the device, model, optimizer,
schedule), resumes it from ``last.pt`` when there is one, runs epochs until the last one, early
stopping, the time limit or a non-finite loss, then evaluates the best (or, with
``test_checkpoint="last"``, the last) epoch's weights on the test split.
"""

from __future__ import annotations

import contextlib
import math
import random
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from ablate.data import (
    BatchAugment,
    InMemoryBatches,
    LoaderBatches,
    array_transforms,
    balanced_order,
    folder_transforms,
    image_feed,
    load_dataset,
    resize_modes,
    resize_nhwc,
    resize_side,
    stored_side,
    worker_sizing_transform,
)
from ablate.errors import StudyError
from ablate.metrics import METRICS, Evaluation, declare_metrics, default_direction, metric_names
from ablate.study import TrialConfig
from ablate.train import _checkpoint as ckpt
from ablate.train._evaluation import (
    EvalSplit,
    EvaluationError,
    read_images,
    run_evaluations,
)
from ablate.train._losses import TrainingLoss
from ablate.train._mix import MixUpCutMix
from ablate.train._models import build_model, is_conv_model, model_in_chans, with_input_size
from ablate.train._optim import LRSchedule, build_optimizer, split_weight_decay
from ablate.train._stages import (
    check_freeze,
    check_lr_groups,
    check_stage_settings,
    frozen_at,
    parameter_groups,
    resolve_stages,
    set_frozen,
)
from ablate.train._tta import tta_scores
from ablate.train._verification import data_folder
from ablate.trial import EpochMetrics, TrainResult, TrialPruned

# on_batch is offered at most this often (batches), never with a GPU sync of its own.
ON_BATCH_EVERY = 10
# Side of the images stored for the report's prediction grid.
PREDICTION_MAX_SIDE = 64
CHECKPOINT_VERSION = 1


def resolve_device(config: TrialConfig) -> torch.device:
    """``auto`` is CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if config.device == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if config.device == "cuda":
        raise StudyError("field 'device' is 'cuda' but torch sees no CUDA device here; allowed: auto, cpu")
    return torch.device("cpu")


def amp_precision(amp: str, device_type: str) -> str:
    """The precision field ``amp`` trains at on a device of this type: "fp32", "bf16" or "fp16".

    ``auto`` is bf16 on CUDA where supported, else fp16. On the CPU every mode is fp32: autocast
    there measured 14-40x slower than fp32 in bf16, and fp16 no better (a smoke trial of a 5-block
    CNN took 133 s instead of 3.5 s); ``ablate plan`` refuses fp16/bf16 with ``device="cpu"``.
    """
    if device_type != "cuda" or amp == "off":
        return "fp32"
    if amp == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return amp


def trial_precision(config: TrialConfig) -> tuple[str, str | None]:
    """What ``config`` trains at on this machine (:func:`amp_precision`), and a line to show when
    that is not what ``amp`` asked for (fp16/bf16 with ``device="auto"`` on a machine without CUDA)."""
    cuda = config.device != "cpu" and torch.cuda.is_available()
    precision = amp_precision(config.amp, "cuda" if cuda else "cpu")
    if config.amp in ("fp16", "bf16") and precision != config.amp:
        return precision, (
            f"amp={config.amp!r} trains at fp32 here: the device is the CPU, where autocast is many "
            "times slower than fp32"
        )
    return precision, None


def resolve_amp(config: TrialConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a GradScaler) of :func:`amp_precision`."""
    return {
        "fp32": (None, False), "bf16": (torch.bfloat16, False), "fp16": (torch.float16, True),
    }[amp_precision(config.amp, device.type)]  # fmt: skip


@contextlib.contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """Run the block with one torch CPU thread.

    The per-batch data work (gather, crop, flip, normalise) is a string of small element-wise
    ops. With 2+ threads each op ends in a barrier, and on a shared CPU where one of the
    threads is descheduled the barrier waits for it: measured 6-10x slower (180-280 us/image vs
    30 us/image with one thread) while other jobs ran; on an idle machine one thread is within
    a millisecond per batch of two. The model keeps all threads.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _each_in_one_thread(items: Iterator[Any]) -> Iterator[Any]:
    """The items of ``items``, each produced under :func:`_one_intra_op_thread`."""
    while True:
        with _one_intra_op_thread():
            try:
                item = next(items)
            except StopIteration:
                return
        yield item


def _epoch_seed(seed: int, epoch: int) -> int:
    # Everything random in an epoch derives from (seed, epoch): a resumed epoch repeats exactly.
    return (seed * 1_000_003 + epoch * 7919) % (2**63 - 1)


def _better(value: float, best: float | None, maximize: bool) -> bool:
    if best is None:
        return True
    return value > best if maximize else value < best


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _epoch_metric(metric: str) -> str:
    # test_acc is never looked at during training: epochs are compared on val_acc instead.
    return METRICS.get(metric, where="train_trial").epoch_metric


def train_trial(
    config: TrialConfig,
    *,
    reporter: Any = None,
    checkpoint_dir: str | Path | None = None,
    metric: str = "val_acc",
    direction: str = "maximize",
    evaluations: Sequence[Evaluation] = (),
    warm_start: str | Path | None = None,
) -> TrainResult:
    """Train one trial and return its result.

    ``reporter.report_epoch(EpochMetrics)`` is called after each epoch's checkpoint is written
    and may raise :class:`~ablate.train.TrialPruned`, which propagates. With ``checkpoint_dir``,
    ``last.pt``/``best.pt``/``predictions.npz`` are written there, and an existing ``last.pt`` is
    resumed from (its epochs are not reported again). ``evaluations`` (the study's own) run after
    every epoch on the validation split and once on the test split with the best weights.
    ``warm_start`` (a ``best.pt`` / ``last.pt`` of another trial) gives a trial that starts
    fresh that trial's model weights (:func:`~ablate.train._checkpoint.load_warm_start`).
    """
    entered = time.perf_counter()
    # A worker in another process loaded the study file without validating it: declare here.
    declare_metrics([m for e in evaluations for m in e.declared()])
    objectives = metric_names(objective=True)
    if metric not in objectives:
        raise StudyError(f"metric {metric!r} is not a trainer metric; allowed: {', '.join(objectives)}")
    if direction not in ("maximize", "minimize"):
        raise StudyError(f"direction {direction!r}; allowed: maximize, minimize")
    trial = _Trial(config, metric=metric, maximize=direction == "maximize", checkpoint_dir=checkpoint_dir)
    trial.evaluations = list(evaluations)
    return trial.run(reporter, entered, None if warm_start is None else Path(warm_start))


class _Trial:
    """Everything one trial holds while it trains."""

    def __init__(self, config: TrialConfig, *, metric: str, maximize: bool, checkpoint_dir: str | Path | None) -> None:
        self.identity = config.config_hash  # of the trial as planned, before native_input_size
        config = with_input_size(config)
        self.config = config
        self.metric = metric
        self.evaluations: list[Evaluation] = []
        self.epoch_metric = _epoch_metric(metric)
        self.maximize = maximize
        self.folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(config)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.cuda.reset_peak_memory_stats(self.device)
        random.seed(config.seed)
        np.random.seed(config.seed % 2**32)
        torch.manual_seed(config.seed)

        # --- data
        self.data = load_dataset(config)
        self.cached = False  # batches of an image folder from its decoded cache (see _sources)
        self.feed_line: str | None = None
        if self.epoch_metric == "val_top5" and self.data.num_classes <= 5:
            raise StudyError(f"metric 'val_top5' needs more than 5 classes; {config.dataset} has {self.data.num_classes}")
        self.train_src, self.val_src, self.test_src = self._sources()
        self.batch_size = config.batch_size
        self.eval_batch_size = 2 * config.batch_size
        self.steps = self.train_src.steps(self.batch_size)
        # Optimizer steps per epoch: one per accumulate_steps batches (and one for the rest).
        self.accumulate = config.accumulate_steps
        if self.accumulate > self.steps:
            raise StudyError(
                f"field 'accumulate_steps' is {self.accumulate} but an epoch has {self.steps} batches of "
                f"{self.batch_size}: one optimizer step would sum fewer batches than asked; lower "
                "accumulate_steps or batch_size"
            )
        self.opt_steps = math.ceil(self.steps / self.accumulate)
        if config.warmup_steps >= config.epochs * self.opt_steps:
            raise StudyError(
                f"field 'warmup_steps' is {config.warmup_steps}; it must be < the trial's "
                f"{config.epochs * self.opt_steps} optimizer steps (epochs x {self.opt_steps} per epoch)"
            )

        # --- model
        in_chans = model_in_chans(config, self.data.channels)
        self.model = build_model(config, in_chans=in_chans, num_classes=self.data.num_classes)
        self.stages = resolve_stages(self.model)
        check_freeze(self.stages, config.freeze, model=config.model)
        check_lr_groups(self.stages, config.lr_groups, model=config.model)
        check_stage_settings(self.stages, config)
        # What the model itself trains (some keep buffers-like parameters frozen): only these
        # are ever given gradients; freeze, train_last_stages and unfreeze_every take from them.
        self.trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        self.frozen_bn = self._freeze_for(1)
        channels_last = config.channels_last and is_conv_model(self.model)
        self.model.to(self.device)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        # Before compile: a margin head hooks the classifier layer of the model.
        self.loss = TrainingLoss(config, self.model, num_classes=self.data.num_classes, device=self.device)
        # The module that runs batches; self.model stays the one whose state is saved.
        self.forward: torch.nn.Module = (
            cast(torch.nn.Module, torch.compile(self.model)) if config.compile else self.model
        )
        self.augment = BatchAugment(
            config, mean=self.data.mean, std=self.data.std, crop_on_device=self.data.in_memory,
            out_channels=in_chans, channels_last=channels_last, device=self.device, cached_folder=self.cached,
        )
        self.mix = MixUpCutMix(
            mixup_alpha=config.mixup_alpha, cutmix_alpha=config.cutmix_alpha,
            label_smoothing=config.label_smoothing, num_classes=self.data.num_classes,
        )

        # --- optimisation
        # Every parameter trained by the last epoch is in the optimizer from the start (still
        # frozen ones have no gradient, which the optimizers skip: no update, no weight decay).
        ever = self.trainable - frozen_at(self.model, self.stages, config, config.epochs)
        groups = parameter_groups(self.model, self.stages, config.lr, config.lr_groups, names=ever)
        if not any(g["params"] for g in groups):
            raise StudyError(f"field 'freeze' is {config.freeze!r}: it leaves no parameter to train")
        self.optimizer = build_optimizer(
            config, split_weight_decay(self.model, groups, config.decay_norm_bias) + self.loss.param_groups()
        )
        # ReduceLROnPlateau and early stopping watch the study metric's epoch value unless their
        # field names another metric, in that metric's own direction.
        self.plateau_metric, plateau_max = self._watched(config.plateau_metric)
        self.stop_metric, self.stop_maximize = self._watched(config.early_stopping_metric)
        self.schedule = LRSchedule(config, self.optimizer, steps_per_epoch=self.opt_steps, maximize=plateau_max)
        self.amp_dtype, use_scaler = resolve_amp(config, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)

        # --- progress (all of it goes into last.pt)
        self.epoch = 0
        self.history: list[EpochMetrics] = []
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0  # epochs since stop_metric last improved
        self.stop_best: float | None = None
        self.stop_reason: str | None = None
        self.prior_duration = 0.0
        self.train_seconds = 0.0
        self.train_images = 0
        self.best_state = self._model_state_copy()
        self.first_step_at: float | None = None
        self.steady_from: float | None = None  # perf_counter() at the end of the first step

    # --- set-up helpers

    def _freeze_for(self, epoch: int) -> list[torch.nn.Module]:
        """Freeze what ``epoch`` trains frozen (freeze, train_last_stages, unfreeze_every); the
        batch-norm layers to hold in eval mode during it (see ``set_frozen``)."""
        frozen = frozen_at(self.model, self.stages, self.config, epoch)
        frozen_bn = set_frozen(self.model, frozen, self.trainable, self.config.freeze_bn)
        self.n_trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return frozen_bn

    def _watched(self, name: str) -> tuple[str, bool]:
        """(per-epoch metric, maximize) of a plateau_metric / early_stopping_metric value."""
        if name == "study":
            return self.epoch_metric, self.maximize
        return name, default_direction(name) == "maximize"

    def _sources(self) -> tuple[Any, Any | None, Any | None]:
        """Batch sources of train, val (None without a validation split) and test (None without
        one). Training reads with ``num_workers``, val and test with ``eval_workers``."""
        c, ds, dev = self.config, self.data, self.device
        eval_workers = c.num_workers if c.eval_workers is None else c.eval_workers
        train_mode, eval_mode = resize_modes(c, in_memory=ds.in_memory)
        if ds.in_memory:
            assert ds.train.images is not None
            if c.auto_augment != "none":  # per-image policies need the DataLoader path
                native = (ds.train.images.shape[1], ds.train.images.shape[2])
                train: Any = LoaderBatches(
                    ds.train, device=dev, transform=array_transforms(c.image_size, native, c.auto_augment, train_mode),
                    num_workers=c.num_workers, pin_memory=c.pin_memory,
                )
            else:
                train = InMemoryBatches(ds.train, device=dev, image_size=stored_side(train_mode, c))

            def memory(split: Any) -> InMemoryBatches | None:
                return InMemoryBatches(split, device=dev, image_size=stored_side(eval_mode, c)) if split else None

            return train, memory(ds.val), memory(ds.test)

        # An image folder: from its decoded cache when image_cache allows (the line says which).
        feed = image_feed(c, ds, device=dev)
        self.feed_line = feed.line
        print(feed.line, file=sys.stderr, flush=True)
        if feed.sources is not None:
            self.cached = True
            return feed.sources["train"], feed.sources.get("val"), feed.sources.get("test")

        def folder(split: Any, train: bool) -> LoaderBatches | None:
            if split is None:
                return None
            mode = train_mode if train else eval_mode
            tf = folder_transforms(
                c.image_size, train=train, random_crop=c.augment in ("basic", "heavy"), auto_augment=c.auto_augment,
                resize=mode, crop_ratio=c.crop_ratio, sizing=worker_sizing_transform(c),
            )
            return LoaderBatches(
                split, device=dev, transform=tf, num_workers=c.num_workers if train else eval_workers,
                pin_memory=c.pin_memory,
                min_side={"crop": resize_side(c.image_size, c.crop_ratio), "squash": c.image_size}.get(mode),
                native_side=c.image_size if mode == "none" else None,
            )

        train_src = folder(ds.train, True)
        assert train_src is not None
        return train_src, folder(ds.val, False), folder(ds.test, False)

    def _model_state_copy(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def data_threads(self) -> contextlib.AbstractContextManager[Any]:
        """Context for per-batch data work: one CPU thread on CPU (see _one_intra_op_thread)."""
        return _one_intra_op_thread() if self.device.type == "cpu" else contextlib.nullcontext()

    def batches(self, items: Iterator[Any]) -> Iterator[Any]:
        return _each_in_one_thread(items) if self.device.type == "cpu" else items

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def elapsed(self, entered: float) -> float:
        """Training time of the trial so far, counted from the end of this session's first step:
        what comes before it (data, model, CUDA context, first-step kernels) is start-up, which
        the first trial of a process paid most of; it is reported apart as ``startup_s``."""
        now = time.perf_counter()
        return self.prior_duration + now - (self.steady_from if self.steady_from is not None else now)

    # --- the run

    def run(self, reporter: Any, entered: float, warm_start: Path | None = None) -> TrainResult:
        error: str | None = None
        if self.folder is not None and (self.folder / ckpt.LAST).exists():
            self._resume()  # its own checkpoint, also when the trial was warm-started
            self._report_missed(reporter)
        elif warm_start is not None:
            ckpt.load_warm_start(self.model, warm_start)
            self.best_state = self._model_state_copy()
        on_batch = getattr(reporter, "on_batch", None)
        while self.stop_reason is None and self.epoch < self.config.epochs:
            epoch = self.epoch + 1
            started = time.perf_counter()
            train_loss, train_acc, n_images, train_s = self._train_epoch(epoch, on_batch, entered)
            if not math.isfinite(train_loss):
                self.stop_reason, error = "diverged", f"diverged: non-finite loss at epoch {epoch}"
                break
            val_loss = val_acc = val_top5 = None
            if self.val_src is not None:
                val_loss, val_acc, val_top5 = self._evaluate(self.val_src)
                if not math.isfinite(val_loss):
                    self.stop_reason, error = "diverged", f"diverged: non-finite loss at epoch {epoch}"
                    break
            try:
                evaluated = self._run_evaluations("val", epoch)
            except EvaluationError as e:
                self.stop_reason, error = "evaluation_failed", str(e)
                break
            m = EpochMetrics(
                epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                val_acc=val_acc, val_top5=val_top5, lr=float(self.optimizer.param_groups[0]["lr"]),
                seconds=time.perf_counter() - started, images_per_s=n_images / max(train_s, 1e-9),
                peak_mem_mb=_peak_mem_mb(self.device),
                group_lrs={str(g.get("name", i)): float(g["lr"]) for i, g in enumerate(self.optimizer.param_groups)},
                evaluated=evaluated,
            )
            self._end_epoch(m, entered)
            self._report(reporter, m)
        return self._finish(error, entered)

    def _train_epoch(self, epoch: int, on_batch: Any, entered: float) -> tuple[float, float, int, float]:
        """One pass over the training split: (mean loss, accuracy, images, seconds)."""
        model, dev = self.forward, self.device
        if self.config.unfreeze_every:
            self.frozen_bn = self._freeze_for(epoch)
        model.train()
        for bn in self.frozen_bn:
            bn.eval()
        seed = _epoch_seed(self.config.seed, epoch)
        gen = torch.Generator(device=dev).manual_seed(seed)
        rng = np.random.default_rng(seed)
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        seen = 0
        started = time.perf_counter()
        smoothing = 0.0 if self.mix.active else self.config.label_smoothing  # mixed targets carry it
        k = self.accumulate
        for i, (x, y) in enumerate(self.batches(self.train_src.train_batches(self.batch_size, seed))):
            first, last = i % k == 0, (i + 1) % k == 0 or i + 1 == self.steps
            if first:
                self.schedule.apply(epoch - 1, i // k)
            with self.data_threads():
                inputs = self.augment.train(x, gen)
                target: torch.Tensor = y
                if self.mix.active:
                    inputs, target = self.mix(inputs, y, rng)
                    inputs = inputs.contiguous(memory_format=self.augment.memory_format)
            with self.autocast():
                out = model(inputs)
                loss = self.loss(out, target, y, smoothing)
            if first:
                self.optimizer.zero_grad(set_to_none=True)
            if k == 1:
                self.scaler.scale(loss).backward()
            else:  # each batch's share of the step's images, so the step sees their mean loss
                self.scaler.scale(loss * (len(y) / self._group_images(i))).backward()
            if last:
                if self.config.clip_grad_norm > 0:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(
                        [*self.model.parameters(), *self.loss.parameters()], self.config.clip_grad_norm
                    )
                self.scaler.step(self.optimizer)
                self.scaler.update()
            with torch.no_grad():
                loss_sum += loss.detach().double() * len(y)
                correct += (out.argmax(1) == y).sum()
            seen += len(y)
            if self.first_step_at is None:
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)  # once per trial, for the start-up time
                self.steady_from = time.perf_counter()
                self.first_step_at = self.steady_from - entered
            if on_batch is not None and ((i + 1) % ON_BATCH_EVERY == 0 or i + 1 == self.steps):
                on_batch(epoch, i + 1, self.steps, float(loss.item()) if dev.type == "cpu" else None)
        total = float(loss_sum.item())  # the epoch's one synchronisation
        seconds = time.perf_counter() - started
        self.train_seconds += seconds
        self.train_images += seen
        return total / max(seen, 1), int(correct.item()) / max(seen, 1), seen, seconds

    def _group_images(self, i: int) -> int:
        """Images of the optimizer step that batch ``i`` belongs to (the last batch may be short)."""
        n = len(self.train_src)
        start = (i // self.accumulate) * self.accumulate
        stop = min(start + self.accumulate, self.steps)
        return min(stop * self.batch_size, n) - start * self.batch_size

    def _eval_batches(self, source: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.forward.eval()
        with torch.inference_mode(), self.autocast():
            for x, y in self.batches(source.eval_batches(self.eval_batch_size)):
                with self.data_threads():
                    inputs = self.augment.eval(x)
                yield tta_scores(self.forward, inputs, self.config), y

    def _evaluate(self, source: Any) -> tuple[float, float, float | None]:
        """(mean loss, top-1 accuracy, top-5 accuracy or None with 5 classes or fewer)."""
        k = self.data.num_classes
        loss = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        top5 = torch.zeros((), dtype=torch.int64, device=self.device)
        n = 0
        for out, y in self._eval_batches(source):
            loss += F.cross_entropy(out, y, reduction="sum").double()
            correct += (out.argmax(1) == y).sum()
            if k > 5:
                top5 += (out.topk(5, dim=1).indices == y[:, None]).any(dim=1).sum()
            n += len(y)
        n = max(n, 1)
        return float(loss.item()) / n, int(correct.item()) / n, int(top5.item()) / n if k > 5 else None

    def _eval_split(self, name: str) -> EvalSplit:
        """The split ``name`` as the study's evaluations see it (see :class:`EvalSplit`)."""
        source = self.val_src if name == "val" else self.test_src

        def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            if source is None:
                raise EvaluationError(f"the trial has no {name} split ({name}_split is None) to evaluate on")
            for x, y in self.batches(source.eval_batches(self.eval_batch_size)):
                with self.data_threads():
                    inputs = self.augment.eval(x)
                yield inputs, y

        def images(paths: Sequence[str | Path]) -> torch.Tensor:
            return read_images(paths, config=self.config, in_memory=self.data.in_memory,
                               channels=self.data.channels, device=self.device)

        return EvalSplit(
            name=name, config=self.config, device=self.device, data_folder=data_folder(self.config),
            smoke=self.config.dataset == "synthetic", batch_size=self.eval_batch_size, batches=batches,
            images=images, preprocess=self.augment.eval, autocast=self.autocast,
        )

    def _run_evaluations(self, split: str, epoch: int | None) -> dict[str, float]:
        """The study's own evaluations on ``split`` (none: {}); EvaluationError fails the trial."""
        if not self.evaluations:
            return {}
        return run_evaluations(self.evaluations, self.model, self._eval_split(split), epoch=epoch)

    def _improved(self, value: float) -> bool:
        return _better(value, self.best, self.maximize)

    def _end_epoch(self, m: EpochMetrics, entered: float) -> None:
        """Bookkeeping after a finished epoch, then the checkpoints (best before last)."""
        value = m.value(self.epoch_metric)
        self.schedule.end_epoch(m.epoch - 1, m.value(self.plateau_metric))
        self.history.append(m)
        self.epoch = m.epoch
        # Without a validation split nothing is selected: the last epoch is the one kept.
        improved = (value is not None and self._improved(value)) or (value is None and self.val_src is None)
        if improved:
            self.best, self.best_epoch = value, m.epoch
            self.best_state = self._model_state_copy()
        watched = m.value(self.stop_metric)
        if watched is not None and _better(watched, self.stop_best, self.stop_maximize):
            self.stop_best, self.bad_epochs = watched, 0
        else:
            self.bad_epochs += 1
        if self.config.early_stopping and self.bad_epochs >= self.config.early_stopping:
            self.stop_reason = "early_stopped"
        elif self.config.time_limit_s and self.elapsed(entered) >= self.config.time_limit_s:
            self.stop_reason = "time_limit"
        if self.folder is None:
            return
        if improved:
            ckpt.atomic_save({"epoch": m.epoch, "model": self.best_state}, self.folder / ckpt.PENDING_BEST)
        ckpt.atomic_save(self._checkpoint(entered), self.folder / ckpt.LAST)
        if improved:
            (self.folder / ckpt.PENDING_BEST).replace(self.folder / ckpt.BEST)

    def _checkpoint(self, entered: float) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "config_hash": self.identity,
            "seed": self.config.seed,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "margin": self.loss.state_dict(),
            "rng": ckpt.rng_state(),
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stop_best": self.stop_best,
            "stop_reason": self.stop_reason,
            "history": [m.as_dict() for m in self.history],
            "duration_s": self.elapsed(entered),
            "train_seconds": self.train_seconds,
            "train_images": self.train_images,
        }

    def _resume(self) -> None:
        assert self.folder is not None
        state = ckpt.load(self.folder / ckpt.LAST)
        if state.get("config_hash") != self.identity or state.get("seed") != self.config.seed:
            raise StudyError(
                f"checkpoint_dir {self.folder} holds last.pt of another trial (config hash "
                f"{state.get('config_hash')}, seed {state.get('seed')}); use a fresh folder per trial"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.loss.load_state_dict(state.get("margin"))
        self.epoch = int(state["epoch"])
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.bad_epochs = int(state["bad_epochs"])
        # Checkpoints written before early_stopping_metric: it watched the study metric.
        self.stop_best = state.get("stop_best", self.best)
        self.stop_reason = state["stop_reason"]
        self.history = [EpochMetrics.from_dict(d) for d in state["history"]]
        self.prior_duration = float(state["duration_s"])
        self.train_seconds = float(state["train_seconds"])
        self.train_images = int(state["train_images"])
        # A best.pt still pending means the crash came between last.pt and its rename.
        pending = self.folder / ckpt.PENDING_BEST
        if pending.exists() and ckpt.load(pending)["epoch"] == self.best_epoch:
            pending.replace(self.folder / ckpt.BEST)
        best_file = self.folder / ckpt.BEST
        if self.best_epoch is not None and best_file.exists():
            self.best_state = {k: v.to(self.device) for k, v in ckpt.load(best_file)["model"].items()}
        ckpt.set_rng_state(state["rng"])

    def _report_missed(self, reporter: Any) -> None:
        """Epochs checkpointed but not reported before an interruption are reported now."""
        if reporter is None or self.folder is None:
            return
        done = ckpt.read_reported(self.folder)
        for m in self.history:
            if m.epoch > done:
                self._report(reporter, m)

    def _report(self, reporter: Any, m: EpochMetrics) -> None:
        """Hand ``m`` to the reporter and remember that it was delivered (also when the reporter
        prunes: it has seen the epoch; any other error leaves it to be re-sent on resume)."""
        if reporter is None:
            return
        try:
            reporter.report_epoch(m)
        except TrialPruned:
            self._mark_reported(m.epoch)
            raise
        self._mark_reported(m.epoch)

    def _mark_reported(self, epoch: int) -> None:
        if self.folder is not None:
            ckpt.write_reported(self.folder, epoch)

    # --- the end

    def _finish(self, error: str | None, entered: float) -> TrainResult:
        test_loss = test_acc = None
        test_epoch = self._load_test_weights()
        evaluated = dict(self.history[-1].evaluated) if self.history else {}
        if test_epoch is not None:
            if self.test_src is not None:
                test_loss, test_acc, _ = self._evaluate(self.test_src)
                if error is None:
                    try:
                        evaluated.update(self._run_evaluations("test", None))
                    except EvaluationError as e:
                        self.stop_reason, error = "evaluation_failed", str(e)
            if self.folder is not None and self.config.prediction_samples > 0:
                self._write_predictions()
        last = self.history[-1] if self.history else None
        best_metric = self.best
        if self.metric == "test_acc":
            best_metric = test_acc
        elif self.metric != self.epoch_metric:  # a test metric of the study's evaluations
            best_metric = evaluated.get(self.metric)
        stop = self.stop_reason or "completed"
        artifacts: dict[str, str] = {}
        if self.folder is not None:
            for key, name in (("best_checkpoint", ckpt.BEST), ("last_checkpoint", ckpt.LAST), ("predictions", ckpt.PREDICTIONS)):
                if (self.folder / name).exists():
                    artifacts[key] = str(self.folder / name)
        return TrainResult(
            status="failed" if stop in ("diverged", "evaluation_failed") else "completed",
            stop_reason=stop,
            error=error,
            train_loss=last.train_loss if last else None,
            train_acc=last.train_acc if last else None,
            val_loss=last.val_loss if last else None,
            val_acc=last.val_acc if last else None,
            val_top5=last.val_top5 if last else None,
            best_val_acc=max((m.val_acc for m in self.history if m.val_acc is not None), default=None),
            best_epoch=self.best_epoch,
            best_metric=best_metric,
            test_acc=test_acc,
            test_loss=test_loss,
            test_epoch=test_epoch if test_acc is not None else None,
            epochs_run=len(self.history),
            duration_s=self.elapsed(entered),
            images_per_s=self.train_images / self.train_seconds if self.train_seconds > 0 else None,
            peak_mem_mb=_peak_mem_mb(self.device),
            n_params=sum(p.numel() for p in self.model.parameters()),
            artifacts=artifacts,
            history=list(self.history),
            n_trainable_params=self.n_trainable,
            startup_s=self.first_step_at,
            data=self._data_record(),
            evaluated=evaluated,
        )

    def _load_test_weights(self) -> int | None:
        """Put the weights ``test_checkpoint`` names into the model and return their epoch (None:
        nothing to score). ``best``: the selected epoch's; ``last``: the last epoch trained (none
        after a failure, whose weights are not an epoch's end). Without a validation split the
        last epoch is the best."""
        if self.config.test_checkpoint == "last" and self.val_src is not None:
            if not self.history or self.stop_reason in ("diverged", "evaluation_failed"):
                return None
            return self.history[-1].epoch  # the model holds it: the loop stops after _end_epoch
        if self.best_epoch is None:
            return None
        self.model.load_state_dict(self.best_state)
        return self.best_epoch

    def _data_record(self) -> dict[str, Any]:
        """The data's provenance, and with native_input_size the side the trial trained at
        (the planned config keeps the study's image_size)."""
        record = self.data.provenance()
        if self.feed_line is not None:
            record["feed"] = self.feed_line
        if self.config.native_input_size:
            record["image_size"] = self.config.image_size
        return record

    def _write_predictions(self) -> None:
        """``prediction_samples`` test (else val) images, class-balanced, with the best model's
        predictions, at most 64 px per side, for the report's grid; the split's name and its
        whole confusion matrix (rows: true class) for the matrix beside it."""
        assert self.folder is not None
        split, source = (self.data.test, self.test_src) if self.test_src is not None else (self.data.val, self.val_src)
        if split is None or source is None:
            return
        index = balanced_order(split.labels)[: self.config.prediction_samples]
        images, labels, preds = [], [], []
        self.forward.eval()
        for start in range(0, len(index), self.eval_batch_size):
            x, y = source.take(index[start : start + self.eval_batch_size])
            with torch.inference_mode(), self.autocast():
                preds.append(tta_scores(self.forward, self.augment.eval(x), self.config).argmax(1).cpu())
            side = min(self.config.image_size, PREDICTION_MAX_SIDE)
            if x.shape[1] != side or x.shape[2] != side:
                x = resize_nhwc(x, side)
            images.append(x.cpu())
            labels.append(y.cpu())
        ckpt.save_predictions(
            self.folder / ckpt.PREDICTIONS,
            images=torch.cat(images).numpy(),
            labels=torch.cat(labels).numpy(),
            preds=torch.cat(preds).numpy(),
            class_names=np.array(self.data.class_names),
            split=np.array("test" if self.test_src is not None else "val"),
            confusion=self._confusion(source),
        )

    def _confusion(self, source: Any) -> np.ndarray:
        k = self.data.num_classes
        counts = torch.zeros(k * k, dtype=torch.int64, device=self.device)
        for out, y in self._eval_batches(source):
            counts += torch.bincount(y * k + out.argmax(1), minlength=k * k)
        return counts.reshape(k, k).cpu().numpy()
