"""Tiny trial configs for the trainer tests (seconds or less each on one CPU thread)."""

from __future__ import annotations

from typing import Any

from ablate.study import TrialConfig, make_config

TINY: dict[str, Any] = dict(
    dataset="synthetic", num_classes=4, synthetic_samples=64, image_size=12, epochs=2,
    batch_size=16, cnn_blocks=2, cnn_filters=4, cnn_dense=16, device="cpu", crop_padding=1,
)


def tiny(**overrides: Any) -> TrialConfig:
    """A validated config of a very small CNN on synthetic data, with ``overrides`` applied."""
    return make_config({**TINY, **overrides}, where="test")


def comparable(history: list[Any]) -> list[dict[str, Any]]:
    """Per-epoch metrics without the wall-clock fields, for exact comparisons."""
    drop = {"seconds", "images_per_s", "peak_mem_mb"}
    return [{k: v for k, v in m.as_dict().items() if k not in drop} for m in history]
