"""A trial's own folder under the runs folder: where its checkpoints and artifacts live.

A trial's folder is named after its ``run_token`` (stored in the trial's row and in the folder's
``identity.json``), so a checkpoint is only resumed by the trial of this database that wrote
it, and a warm start finds the checkpoints of the trial it names (:mod:`ablate.run._warm_start`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ablate.files import write_atomic

if TYPE_CHECKING:
    from ablate.store import ClaimedTrial

IDENTITY = "identity.json"


def trial_dir(runs_dir: Path, study: str, number: int, seed: int, run_token: str) -> Path:
    """Where a trial's checkpoints and artifacts live (shared by every attempt of it).

    ``run_token`` comes from the trial's row: the same study run into another database, or as a
    new version, gets folders of its own instead of "resuming" this trial's checkpoints.
    """
    return runs_dir / study / f"trial-{number:04d}-seed{seed}-{run_token}"


def checkpoint_folder(runs_dir: Path, study: str, claimed: ClaimedTrial) -> tuple[Path, str | None]:
    """The trial's own folder, and a line saying why it is not the usual one (or None).

    A folder whose ``identity.json`` names another trial (copied in by hand, or of an ablate that
    wrote none) is never resumed and never blocks: the trial takes the next free ``-N`` folder.
    """
    token = claimed.run_token or f"id{claimed.trial_id}"
    base = trial_dir(runs_dir, study, claimed.number, claimed.seed, token)
    identity = {"run_token": token, "study": claimed.study_name, "trial_id": claimed.trial_id,
                "number": claimed.number, "seed": claimed.seed, "config_hash": claimed.config_hash}
    note = None
    for n in range(1, 1000):
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        owner = folder_token(folder)
        if owner == token:
            return folder, note
        if owner is None and not any(folder.glob("*.pt")):
            write_atomic(folder / IDENTITY, json.dumps(identity, indent=1))
            return folder, note
        note = (f"{folder} holds checkpoints of another run (token {owner or 'none'}, not "
                f"{token}): not resumed; trial {claimed.number} starts fresh in a folder of its own")
    raise AssertionError(f"{base}: 999 foreign checkpoint folders")


def folder_token(folder: Path) -> str | None:
    try:
        token = json.loads((folder / IDENTITY).read_text()).get("run_token")
    except (FileNotFoundError, NotADirectoryError, ValueError, AttributeError):
        return None
    return token if isinstance(token, str) else None


def find_trial_folder(runs_dir: Path, study: str, number: int, seed: int, token: str) -> Path | None:
    """The folder under ``runs_dir`` that :func:`checkpoint_folder` gave the trial with run
    token ``token`` (the usual one or a ``-N`` one), or None when there is none."""
    base = trial_dir(runs_dir, study, number, seed, token)
    for folder in (base, *sorted(base.parent.glob(f"{base.name}-*"))):
        if folder_token(folder) == token:
            return folder
    return None
