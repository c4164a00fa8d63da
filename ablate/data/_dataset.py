"""What a dataset is (:class:`Split`, :class:`Dataset`) and the registry of datasets a study may name.

Each loader in :mod:`ablate.data._sources` registers itself with :func:`dataset`, saying what is
known of its dataset without reading it (channels, class count, published normalisation); the
checks before a study runs and the trainer both look datasets up here, never by comparing names.
Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ablate.errors import DataNotFoundError, StudyError
from ablate.registry import Registry

if TYPE_CHECKING:
    from ablate.study import TrialConfig


class DatasetMissingError(DataNotFoundError):
    """The dataset itself is absent (no image folder, no CIFAR files): ``ablate plan`` says so and
    goes on, ``ablate run`` refuses; other data errors are refused by both."""


@dataclass(frozen=True)
class Split:
    """One split: labels plus either decoded images (N, H, W, C uint8) or image file paths."""

    labels: np.ndarray
    images: np.ndarray | None = None
    files: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> Split:
        """The images at ``index``, in that order."""
        return Split(
            labels=self.labels[index],
            images=None if self.images is None else self.images[index],
            files=None if self.files is None else tuple(self.files[i] for i in index),
        )


@dataclass(frozen=True)
class Dataset:
    """The splits of one dataset, where each came from, and what a model and the normaliser need
    to know of it. ``val`` is None when the study declares no validation split (val_split=0)."""

    name: str
    train: Split
    val: Split | None
    test: Split | None
    class_names: tuple[str, ...]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # Split name -> where its images came from ("folder val/", "20 % of train/ held out ...").
    sources: dict[str, str] = field(default_factory=dict)
    # How mean/std were obtained ("computed from the training split", "published CIFAR-100", ...).
    normalization: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_memory(self) -> bool:
        """True when the images are decoded arrays (augmented per batch on the device)."""
        return self.train.images is not None

    def splits(self) -> dict[str, Split]:
        """The splits that exist, by name (train, val, test)."""
        out = {"train": self.train, "val": self.val, "test": self.test}
        return {k: v for k, v in out.items() if v is not None}

    def provenance(self) -> dict[str, Any]:
        """What a trial stores about its data: each split's size, source and class counts, and
        the normalisation."""
        return {
            "splits": {
                name: {"n": len(split), "source": self.sources.get(name, ""),
                       "per_class": np.bincount(split.labels, minlength=self.num_classes).tolist()}
                for name, split in self.splits().items()
            },
            "normalization": {"how": self.normalization, "mean": list(self.mean), "std": list(self.std)},
        }


@dataclass(frozen=True)
class NamedSplits:
    """A dataset's own splits by name (image folders: the declared folders), before hold-outs."""

    name: str
    splits: dict[str, Split]
    class_names: tuple[str, ...]
    channels: int
    describe: Callable[[str], str]  # split name -> where its images come from


# (config, the dataset name as the study wrote it, split name -> the field declaring it, verify
# image headers) -> the named splits. Raises DatasetMissingError when the dataset is absent.
Loader = Callable[["TrialConfig", str, dict[str, str], bool], NamedSplits]


@dataclass(frozen=True)
class DatasetSource:
    """One registered dataset: how to read its splits and what is known of it without reading."""

    name: str  # as registered: "cifar10", "imagefolder:<path>"
    load: Loader
    # Image channels, or a function of the config (synthetic data has as many as it is told).
    channels: int | Callable[[TrialConfig], int] = 3
    classes: int | None = None  # None: the study's num_classes (unknown until read when unset)
    # Published per-channel (mean, std) on the 0..1 scale and whose they are ("CIFAR-10").
    published: tuple[str, tuple[float, ...], tuple[float, ...]] | None = None
    in_memory: bool = True  # decoded arrays; False: image files decoded by DataLoader workers
    needs_num_classes: bool = False  # the class count is the study's to choose (synthetic data)

    def channels_of(self, config: TrialConfig) -> int:
        return self.channels(config) if callable(self.channels) else self.channels

    def classes_of(self, config: TrialConfig) -> int | None:
        """The class count without reading the data (None: only known once read)."""
        return self.classes if self.classes is not None else config.num_classes

    def check(self, config: TrialConfig) -> None:
        """Raise a StudyError for what this dataset refuses before reading anything."""
        if self.needs_num_classes and config.num_classes is None:
            raise StudyError(f"field 'num_classes' must be set when dataset is {config.dataset!r}")
        self.channels_of(config)


DATASETS: Registry[DatasetSource] = Registry("dataset", field="dataset")


def dataset(
    name: str,
    *,
    channels: int | Callable[[TrialConfig], int] = 3,
    classes: int | None = None,
    published: tuple[str, tuple[float, ...], tuple[float, ...]] | None = None,
    in_memory: bool = True,
    needs_num_classes: bool = False,
) -> Callable[[Loader], Loader]:
    """Decorator registering a loader as dataset ``name`` (one ``<placeholder>`` allowed:
    ``imagefolder:<path>`` is every name starting with ``imagefolder:``)."""

    def add(load: Loader) -> Loader:
        DATASETS.add(name, DatasetSource(name, load, channels, classes, published, in_memory, needs_num_classes))
        return load

    return add


def dataset_source(config: TrialConfig) -> DatasetSource:
    """The registered dataset ``config.dataset`` names; a StudyError with close matches if none."""
    if config.dataset not in DATASETS:
        raise StudyError(DATASETS.unknown(config.dataset))
    return DATASETS.get(config.dataset, where="dataset")


def dataset_channels(config: TrialConfig) -> int:
    """Image channels of ``config.dataset`` without loading it (digits: 1, synthetic: as set)."""
    return dataset_source(config).channels_of(config)


def expected_classes(config: TrialConfig) -> int | None:
    """Class count of ``config.dataset`` without reading it (None: an image folder, unknown)."""
    return dataset_source(config).classes_of(config)
