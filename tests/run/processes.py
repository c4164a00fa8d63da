"""What the tests that start real `ablate` processes share: the command, a clean environment,
and a poll of the database for a running study's epochs."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ablate.store import load_epochs

STUDIES = Path(__file__).parent / "studies"
ROOT = Path(__file__).parents[2]
ABLATE = [sys.executable, "-m", "ablate"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without a user's ablate settings, with the checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("ABLATE_RUNS", "ABLATE_DB", "ABLATE_LEASE_S")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def wait_for_epochs(study: str, db: str, n: int, timeout_s: float = 120) -> None:
    """Poll the database until a running study has recorded ``n`` epochs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if len(load_epochs(study, db=db)) >= n:
                return
        except Exception:  # the study is not registered yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"{study}: fewer than {n} epochs after {timeout_s} s")


def write_boom_study(folder: Path, levels: list[int]) -> Path:
    """A study file whose custom train= fails its trial at x=1 and completes the others."""
    study_file = folder / "boom.py"
    study_file.write_text(
        "from ablate import Study\n"
        "def boom(config, reporter):\n"
        "    if config.extra['x'] == 1:\n"
        "        raise RuntimeError('exploded on x=1')\n"
        "    return {'val_acc': 0.5}\n"
        f"study = Study(name='boom', factors=dict(x={levels!r}), train=boom)\n"
    )
    return study_file
