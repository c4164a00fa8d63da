"""Datasets for the trainer: reading splits, batching them on the device, augmenting batches.

Every dataset a study may name is an entry of :data:`DATASETS`, added by the :func:`dataset`
decorator on its loader (``ablate.data._sources``); ``DATASETS.names("cifar*")`` lists them.

``load_dataset`` reads digits (shipped here as ``digits.npz``), CIFAR-10/100, synthetic images or an
image folder into train/val/test :class:`Split` objects; :class:`InMemoryBatches` and
:class:`LoaderBatches` turn a split into uint8 batches on the device, and an image folder's
splits are decoded once into a shared memory-mapped cache read by :class:`CachedBatches`
(:func:`image_feed` chooses; ``ablate cache`` lists and clears the caches); :class:`BatchAugment`
augments and normalises them there (a config's ``augment_ops`` through :func:`build_augment_pipeline`,
the one builder of both data paths).
"""

from ablate.data._augment import BatchAugment, resize_modes, stored_side
from ablate.data._augment_ops import (
    AugmentPipeline,
    build_augment_pipeline,
    describe_augment_ops,
    op_transform,
    worker_sizing_transform,
)
from ablate.data._batches import (
    CachedBatches,
    ImageDecodeError,
    InMemoryBatches,
    LoaderBatches,
    array_transforms,
    decode_image,
    folder_transforms,
    resize_nhwc,
    resize_side,
)
from ablate.data._cache import (
    CacheEntry,
    CacheFeed,
    ImageCache,
    clear_caches,
    describe_feed,
    image_feed,
    images_root,
    list_caches,
    open_cache,
)
from ablate.data._dataset import (
    DATASETS,
    Dataset,
    DatasetMissingError,
    DatasetSource,
    NamedSplits,
    Split,
    dataset,
    dataset_channels,
    dataset_source,
    expected_classes,
)
from ablate.data._sources import (
    balanced_order,
    check_data,
    check_study_data,
    data_root,
    imagefolder_root,
    load_dataset,
    stratified_split,
)

__all__ = [
    "DATASETS",
    "AugmentPipeline",
    "BatchAugment",
    "CacheEntry",
    "CacheFeed",
    "CachedBatches",
    "Dataset",
    "DatasetMissingError",
    "DatasetSource",
    "ImageCache",
    "ImageDecodeError",
    "InMemoryBatches",
    "LoaderBatches",
    "NamedSplits",
    "Split",
    "array_transforms",
    "balanced_order",
    "build_augment_pipeline",
    "check_data",
    "check_study_data",
    "clear_caches",
    "data_root",
    "dataset",
    "dataset_channels",
    "dataset_source",
    "decode_image",
    "describe_augment_ops",
    "describe_feed",
    "expected_classes",
    "folder_transforms",
    "image_feed",
    "imagefolder_root",
    "images_root",
    "list_caches",
    "load_dataset",
    "op_transform",
    "open_cache",
    "resize_modes",
    "resize_nhwc",
    "resize_side",
    "stored_side",
    "stratified_split",
    "worker_sizing_transform",
]
