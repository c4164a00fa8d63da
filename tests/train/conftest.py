"""Trainer tests train real tiny models on CPU; one thread each so parallel runs do not fight."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
