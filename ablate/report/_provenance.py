"""Provenance of a report's results: the code, libraries and hardware its trials ran on.

Each finished trial stores its environment (``environments`` table): library versions, the
device, ablate's version, the study file's hash and the git revision of the repository holding
the study file, with a dirty flag. This module turns those rows into the report's provenance
block, and warns when the trials of one table did not all run on the same code or hardware:
their differences may then be the code's or the machine's, not the factors'.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

#: Library versions shown in the block, in this order: (column, name shown).
VERSIONS = (("ablate_version", "ablate"), ("torch", "torch"), ("torchvision", "torchvision"),
            ("timm", "timm"), ("python", "Python"), ("cuda", "CUDA"))
#: The columns that identify the code a result came from: a table mixing values of one of them
#: compares code as well as factors.
CODE = ("ablate_version", "torch", "torchvision", "timm", "revision", "study_sha256")
#: Short revisions and hashes, as git prints them.
SHORT = 12


@dataclass(frozen=True)
class Provenance:
    """What the completed trials of one report ran on: each entry maps a value to its number
    of trials, most frequent first."""

    trials: int  # completed trials with a recorded environment
    unrecorded: int  # completed trials without one (run by an older ablate, or a custom writer)
    versions: dict[str, dict[str, int]]
    devices: dict[str, int]
    revisions: dict[str, int]  # "<revision>", "<revision> (uncommitted changes)", "no git repository"
    study_files: dict[str, int]  # the study file's SHA-256, shortened; "no study file"
    warnings: list[str] = field(default_factory=list)
    # The checkpoints warm-started trials began from: "STUDY:NUMBER (trial id 4, best.pt of epoch 6)".
    warm_starts: dict[str, int] = field(default_factory=dict)


def _revision(revision: object, dirty: object) -> str:
    if revision is None or pd.isna(revision):
        return "no git repository"
    short = str(revision)[:SHORT]
    return f"{short} (uncommitted changes)" if dirty is True or dirty == 1 else short


def _counts(values: pd.Series) -> dict[str, int]:
    return dict(Counter(str(v) for v in values).most_common())


def collect_provenance(trials: pd.DataFrame, environments: pd.DataFrame) -> Provenance | None:
    """The provenance of the completed trials of ``trials`` (:func:`ablate.store.load_trials`)
    from their ``environments`` rows (:func:`ablate.store.load_environments`); None when no
    completed trial has one."""
    done = trials.loc[trials["status"] == "completed", ["trial_id"]]
    env = done.merge(environments, on="trial_id", how="inner")
    if env.empty:
        return None
    env = env.assign(
        revision=[_revision(r, d) for r, d in zip(env["git_revision"], env["git_dirty"], strict=True)],
        study_sha256=[str(h)[:SHORT] if isinstance(h, str) else "no study file" for h in env["study_sha256"]],
        device_name=env["device_name"].fillna("unknown"),
    )
    versions = {name: _counts(env[col].dropna()) for col, name in VERSIONS if env[col].notna().any()}
    warnings = []
    mixed_code = [c for c in CODE if env[c].dropna().nunique() > 1]
    if mixed_code:
        names = dict(VERSIONS) | {"revision": "git revision", "study_sha256": "study file"}
        parts = [f"{names[c]} ({', '.join(f'{v}: {n}' for v, n in _counts(env[c].dropna()).items())})"
                 for c in mixed_code]
        warnings.append("The trials of this table ran on different code: " + "; ".join(parts)
                        + ". Differences between rows may come from the code, not only the factors.")
    if env["device_name"].nunique() > 1:
        devices = ", ".join(f"{v}: {n}" for v, n in _counts(env["device_name"]).items())
        warnings.append(f"The trials of this table ran on different hardware ({devices}). "
                        "Compare times across rows with care; results may differ too.")
    return Provenance(
        trials=len(env),
        unrecorded=len(done) - len(env),
        versions=versions,
        devices=_counts(env["device_name"]),
        revisions=_counts(env["revision"]),
        study_files=_counts(env["study_sha256"]),
        warnings=warnings,
        warm_starts=_warm_starts(env),
    )


def _warm_starts(env: pd.DataFrame) -> dict[str, int]:
    """The warm-start sources the workers recorded in the environments' ``extra`` (see
    ``ablate.run._warm_start``), each with its number of trials."""
    sources = []
    for extra in env.get("extra", ()):
        source = extra.get("warm_start") if isinstance(extra, dict) else None
        if isinstance(source, dict):
            epoch = f" of epoch {source.get('epoch')}" if source.get("epoch") is not None else ""
            sources.append(f"{source.get('reference')} (trial id {source.get('trial_id')}, "
                           f"{source.get('checkpoint')} checkpoint{epoch})")
    return _counts(pd.Series(sources, dtype=object))


def _joined(counts: dict[str, int], total: int) -> str:
    """``value`` alone when every trial has it, else ``value (n trials), ...``."""
    if len(counts) == 1 and next(iter(counts.values())) == total:
        return next(iter(counts))
    return ", ".join(f"{v} ({n} trial{'s' if n != 1 else ''})" for v, n in counts.items())


def provenance_lines(p: Provenance) -> list[str]:
    """The block's lines, in plain text (each a sentence; the writers add the markup)."""
    lines = [
        "Versions: " + "; ".join(f"{name} {_joined(c, p.trials)}" for name, c in p.versions.items()) + ".",
        f"Device: {_joined(p.devices, p.trials)}.",
        f"Code: git revision of the study file's repository {_joined(p.revisions, p.trials)}; "
        f"study file SHA-256 {_joined(p.study_files, p.trials)}.",
    ]
    if p.warm_starts:
        lines.append("Warm-started from: " + ", ".join(f"{v} ({n} trial{'s' if n != 1 else ''})"
                                                       for v, n in p.warm_starts.items()) + ".")
    if p.unrecorded:
        lines.append(f"{p.unrecorded} completed trial(s) have no recorded environment.")
    return lines
