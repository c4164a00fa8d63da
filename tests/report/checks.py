"""Checks on written reports: images that are real and not blank, pages that load in Chromium."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def assert_real_image(path: Path) -> None:
    """A decodable PNG with content: several colours, not one flat or nearly white canvas."""
    from PIL import Image

    assert path.exists(), f"{path} missing"
    with Image.open(path) as img:
        assert img.format == "PNG", f"{path}: {img.format}"
        img.verify()
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("L"), dtype=float)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100, f"{path}: {pixels.shape}"
    assert pixels.std() > 10, f"{path} looks blank (pixel std {pixels.std():.1f})"
    assert (pixels < 200).mean() > 0.01, f"{path}: almost no ink"


def load_in_chromium(page: Path, screenshot: Path | None = None) -> list[str]:
    """Open ``page`` in headless Chromium; return the console messages it logged."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: apt-get install -y chromium (.ci/run installs it)", pytrace=False)
    with tempfile.TemporaryDirectory() as profile:
        args = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"]
        if screenshot is not None:
            args += [f"--screenshot={screenshot}", "--window-size=1280,2400"]
        else:
            args += ["--dump-dom"]
        done = subprocess.run([*args, page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
