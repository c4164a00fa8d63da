"""Provenance: what each trial records of its code and hardware, and the report's block about it."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

import ablate
from ablate.report import build_report
from ablate.report._provenance import collect_provenance, provenance_lines
from ablate.run import run_study
from ablate.store import EnvironmentRecord, ResultStore, load_environments, load_trials
from ablate.study import Study
from ablate.train._env import code_provenance

STUDY_FILE = '''
from ablate import Study


def train(config, reporter):
    # No model: provenance is about where a result came from, not how it was trained.
    return {{"val_acc": 0.5 + 0.1 * config.seed, "duration_s": 1.0}}


study = Study(name="{name}", base=dict(epochs=1), factors=dict(lr=[0.1, 0.01]), seeds=[0, 1], train=train)
'''


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def new_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "test")
    return path


def test_code_provenance_names_the_study_files_repository_and_its_state(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    study = repo / "studies" / "s.py"
    study.parent.mkdir()
    study.write_text(STUDY_FILE.format(name="s"))
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "study")
    clean = code_provenance(study)
    assert clean == {
        "ablate_version": ablate.__version__,
        "study_sha256": hashlib.sha256(study.read_bytes()).hexdigest(),
        "git_revision": git(repo, "rev-parse", "HEAD"),
        "git_dirty": False,
    }
    (repo / "untracked.txt").write_text("results are not code")
    assert code_provenance(study)["git_dirty"] is False
    study.write_text(study.read_text() + "\n# edited\n")
    dirty = code_provenance(study)
    assert dirty["git_dirty"] is True and dirty["git_revision"] == clean["git_revision"]
    assert dirty["study_sha256"] != clean["study_sha256"]

    outside = tmp_path / "plain" / "s.py"
    outside.parent.mkdir()
    outside.write_text(study.read_text())
    alone = code_provenance(outside)
    assert alone["git_revision"] is None and alone["git_dirty"] is None
    assert alone["study_sha256"] == dirty["study_sha256"]


@pytest.mark.slow
def test_a_run_stores_the_provenance_of_its_study_file_clean_then_dirty(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo(tmp_path / "repo")
    for name in ("clean_run", "dirty_run"):
        (repo / f"{name}.py").write_text(STUDY_FILE.format(name=name))
    (repo / "helper.py").write_text("VALUE = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "studies")
    head = git(repo, "rev-parse", "HEAD")
    # Run from another directory, as `ablate run path/to/study.py` does: the revision must be
    # the study file's repository's, not the working directory's.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_study(repo / "clean_run.py", db=db_url, runs_dir=tmp_path / "runs")
    (repo / "helper.py").write_text("VALUE = 2\n")  # an uncommitted change to the code
    run_study(repo / "dirty_run.py", db=db_url, runs_dir=tmp_path / "runs")

    for name, dirty in (("clean_run", False), ("dirty_run", True)):
        env = load_environments(name, db_url)
        assert len(env) == 4, env
        assert set(env["git_revision"]) == {head}
        assert env["git_dirty"].tolist() == [dirty] * 4
        assert set(env["ablate_version"]) == {ablate.__version__}
        assert set(env["study_sha256"]) == {hashlib.sha256((repo / f"{name}.py").read_bytes()).hexdigest()}
        p = collect_provenance(load_trials(name, db_url), env)
        assert p is not None and p.trials == 4 and p.warnings == []
        revision = f"{head[:12]} (uncommitted changes)" if dirty else head[:12]
        assert p.revisions == {revision: 4}


def _finish_all(store: ResultStore, study: Study, envs: list[EnvironmentRecord]) -> None:
    """Run ``study``'s trials through the store, the i-th finished with environment ``envs[i]``."""
    store.register_study(study)
    store.add_trials(study, study.validate())
    i = 0
    while (claimed := store.claim_next_trial(study.name, worker="w", host="h", device="cpu", lease_s=60)) is not None:
        metrics = {"val_acc": 0.9 + 0.01 * claimed.seed + (0.02 if claimed.params["lr"] == 0.1 else 0.0),
                   "duration_s": 30.0}
        assert store.finish_trial(claimed.trial_id, "w", status="completed", metrics=metrics, environment=envs[i])
        i += 1


ENV = EnvironmentRecord(torch="2.5.1", timm="1.0.11", python="3.11.9", device_name="NVIDIA A100",
                        ablate_version="0.1.0", git_revision="a" * 40, git_dirty=False, study_sha256="b" * 64)


def test_one_code_and_one_device_give_no_warning(db_url: str) -> None:
    study = Study(name="same", factors=dict(lr=[0.1, 0.01]), seeds=[0, 1])
    with ResultStore(db_url) as store:
        _finish_all(store, study, [ENV] * 4)
        p = collect_provenance(store.load_trials("same"), store.load_environments("same"))
    assert p is not None and p.warnings == []
    lines = " ".join(provenance_lines(p))
    assert "ablate 0.1.0" in lines and "torch 2.5.1" in lines and "NVIDIA A100" in lines and "a" * 12 in lines


@pytest.mark.slow
def test_trials_on_different_code_or_hardware_are_warned_about_in_the_report(db_url: str, tmp_path: Path) -> None:
    study = Study(name="mixed", factors=dict(lr=[0.1, 0.01]), seeds=[0, 1])
    later = replace(ENV, git_revision="c" * 40, git_dirty=True, device_name="NVIDIA H100")
    with ResultStore(db_url) as store:
        _finish_all(store, study, [ENV, ENV, ENV, later])
    index = build_report("mixed", db=db_url, out=tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Provenance" in md
    code = next(line for line in md.splitlines() if "different code" in line)
    assert f"{'a' * 12}: 3" in code and f"{'c' * 12} (uncommitted changes): 1" in code
    hardware = next(line for line in md.splitlines() if "different hardware" in line)
    assert "NVIDIA A100: 3" in hardware and "NVIDIA H100: 1" in hardware
    page = index.read_text()
    assert page.count('class="warn"') == 2 and "different code" in page and "<h2>Provenance</h2>" in page
