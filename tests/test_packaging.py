"""The built wheel works on its own: installed outside the checkout, it migrates, runs and reports.

The slow test builds the wheel from this checkout, installs it (without dependencies) into a
fresh virtual environment that borrows the test venv's third-party packages through a ``.pth``
line, and runs the CLI from a folder outside the repository, where neither ``alembic/`` nor the
source tree can be found by accident.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY_STUDY = '''
from ablate import Study

study = Study(
    name="wheel_digits",
    base=dict(dataset="digits", model="cnn", cnn_blocks=1, cnn_filters=4, cnn_dense=16, epochs=1,
              batch_size=128, lr=0.05, image_size=8, device="cpu"),
    factors=dict(augment=["none", "basic"]),
    seeds=[0, 1],
)
'''


def test_every_package_folder_is_in_the_wheel_list() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ablate").rglob("__init__.py")
    }
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert config["package-dir"]["ablate._migrations"] == "alembic"
    assert {"ablate._migrations", "ablate._migrations.versions"} <= listed


def _fresh_env(tmp_path: Path, wheel: Path) -> Path:
    """A venv with only our wheel installed; third-party packages come from the test venv."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", site, str(wheel)],
        check=True,
    )  # fmt: skip
    # A plain path line: the test venv's own .pth files (its editable ablate) are not processed.
    (Path(site) / "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


@pytest.mark.slow
def test_wheel_installed_outside_the_checkout_migrates_runs_and_reports(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         str(ROOT), "-w", str(wheels)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = wheels.glob("ablate-*.whl")
    python = _fresh_env(tmp_path, wheel)
    work = tmp_path / "work"
    work.mkdir()
    (work / "wheel_digits.py").write_text(TINY_STUDY)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ABLATE_DB")}
    env["OMP_NUM_THREADS"] = "1"

    def ablate(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(python), "-m", "ablate", *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"ablate {' '.join(args)}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done

    where = subprocess.run(
        [str(python), "-c",
         "import ablate, alembic; from ablate.store._migrate import script_location; "
         "print(ablate.__file__); print(alembic.__file__); print(script_location())"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    site = str(python.parents[1])
    assert where[0].startswith(site), where  # our wheel, not the checkout
    assert not where[1].startswith(site) and "/alembic/__init__.py" in where[1], where
    assert where[2].startswith(site) and where[2].endswith("ablate/_migrations"), where

    upgraded = ablate("db", "upgrade", "--db", "new.db")
    assert "(was empty)" in upgraded.stdout, upgraded.stdout
    tables = {r[0] for r in sqlite3.connect(work / "new.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}  # fmt: skip
    assert {"studies", "trials", "epochs", "ablate_alembic_version"} <= tables

    ran = ablate("run", "wheel_digits.py")
    assert "wheel_digits: 4 completed" in ran.stdout
    reported = ablate("report", "--study", "wheel_digits")
    assert "reports/wheel_digits/index.html" in reported.stdout
    out = work / "reports" / "wheel_digits"
    for name in ("index.html", "table.csv", "table.md"):
        assert (out / name).stat().st_size > 100, name
