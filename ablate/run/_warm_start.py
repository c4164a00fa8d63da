"""Warm starts: a trial that begins from the model weights of another trial's checkpoint (field
``warm_start="STUDY:NUMBER"``; ``warm_start_from``: that trial's best or last epoch).

The source is resolved twice. ``ablate plan`` and ``ablate run`` resolve it before anything is
written (:func:`check_warm_starts`): the study and its trial exist, the trial finished, its
checkpoint file is there and its weights fit the new trial's model. The worker resolves it again
when the trial starts fresh (:func:`resolve_warm_start`: the source may have been re-run since),
and records what it loaded in the trial's folder (``warm_start.json``) and in the trial's
environment row (``extra.warm_start``: study, version, number, trial id, checkpoint, epoch,
path). A warm-started trial that was interrupted resumes from its own ``last.pt``, not the source.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.errors import StudyError
from ablate.files import write_atomic
from ablate.run._folders import find_trial_folder
from ablate.study import Study, TrialConfig, make_config, parse_warm_start

if TYPE_CHECKING:
    from ablate.run._prepare import PlannedStudy
    from ablate.store import ResultStore, StoredTrial

WARM_START_FILE = "warm_start.json"
_FILES = {"best": "best.pt", "last": "last.pt"}
# Besides a family's shape fields, what decides whether one check of a source holds for a config.
_SHAPE_CONTEXT = ("model", "dataset", "num_classes", "image_size", "extra")


class WarmStartMissing(StudyError):
    """The source trial or its checkpoint is not there (yet): a refusal, except under --smoke,
    where the trial starts from random weights and says so."""


@dataclass(frozen=True)
class WarmStartSource:
    """The checkpoint a warm start loads, and which trial wrote it."""

    reference: str  # the field's value, "STUDY:NUMBER"
    study: str
    study_version: int
    number: int
    trial_id: int
    checkpoint: str  # best or last
    epoch: int | None  # the source's epoch those weights are from
    path: str

    def record(self) -> dict[str, Any]:
        """What is stored with the warm-started trial."""
        return dataclasses.asdict(self)

    def describe(self) -> str:
        epoch = f" of epoch {self.epoch}" if self.epoch is not None else ""
        return (f"warm start {self.reference}: trial {self.number} of {self.study} (version "
                f"{self.study_version}, trial id {self.trial_id}), {_FILES[self.checkpoint]}{epoch}")


def _checkpoint_path(stored: StoredTrial, which: str, runs_dir: Path) -> Path | None:
    """The source's checkpoint: where its worker recorded it, else its folder under ``runs_dir``
    (found by its run token, as the worker names it)."""
    recorded = stored.artifacts.get(f"{which}_checkpoint")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    token = stored.run_token or f"id{stored.trial_id}"
    folder = find_trial_folder(runs_dir, stored.study_name, stored.number, stored.seed, token)
    if folder is not None and (folder / _FILES[which]).is_file():
        return folder / _FILES[which]
    return None


def resolve_warm_start(store: ResultStore, config: TrialConfig, runs_dir: Path) -> WarmStartSource:
    """The checkpoint ``config.warm_start`` names, checked against ``config``'s model; a
    StudyError (:class:`WarmStartMissing` when the source is not there) saying what is wrong."""
    from ablate.train import check_warm_start

    assert config.warm_start is not None
    study, number = parse_warm_start(config.warm_start)
    what = f"field 'warm_start' is {config.warm_start!r}"
    try:
        stored = store.find_trial(study, number)
    except StudyError as e:
        raise WarmStartMissing(f"{what} but there is {e}") from None
    if stored is None:
        raise WarmStartMissing(f"{what} but study {study!r} has no trial {number}")
    if stored.status in ("queued", "running"):
        raise WarmStartMissing(
            f"{what} but that trial is {stored.status}, not finished: run study {study!r} first, "
            "then this one"
        )
    if stored.status == "failed":
        raise StudyError(
            f"{what} but that trial failed (see `ablate status {study}`): its weights are no "
            "result to start from"
        )
    which = config.warm_start_from
    path = _checkpoint_path(stored, which, runs_dir)
    if path is None:
        raise WarmStartMissing(
            f"{what} but that trial's {_FILES[which]} is neither at its recorded path nor under "
            f"{runs_dir} (give the runs folder it was trained into with --runs-dir; --smoke trials "
            "keep no checkpoint)"
        )
    source = make_config(stored.config, where=f"trial {number} of study {study!r}", cross_checks=False)
    epoch = check_warm_start(config, source, path)
    return WarmStartSource(
        reference=config.warm_start, study=stored.study_name, study_version=stored.study_version,
        number=stored.number, trial_id=stored.trial_id, checkpoint=which, epoch=epoch, path=str(path.resolve()),
    )  # fmt: skip


def check_warm_starts(
    study: Study, configs: Sequence[TrialConfig], *, store: ResultStore | None, runs_dir: Path, smoke: bool,
    earlier: Mapping[str, PlannedStudy] | None = None,
) -> list[str]:
    """Resolve every warm start of ``configs`` before a trial is written (``ablate plan`` and
    ``ablate run``); one line per source. A StudyError naming the study file otherwise.

    A source trial not in the database yet is refused, unless its study is one of ``earlier``
    (the studies of the same file before this one, which `ablate run` runs first): then its
    planned trial is checked instead, and the checkpoint once that study has run. Under ``smoke``
    a missing source is a line (its trials start from random weights: smoke trials keep no
    checkpoint to start from)."""
    wanted = [c for c in configs if c.warm_start is not None]
    if not wanted:
        return []
    if study.train is not None:
        raise StudyError(
            f"{study.where}: field 'warm_start' is the built-in trainer's; a train= function "
            "loads its own checkpoints"
        )
    from ablate.train import check_model_name

    lines: list[str] = []
    seen: set[str] = set()
    for config in wanted:
        fields = check_model_name(config.model).shape_fields
        shape = config.to_dict() if fields is None else {f: getattr(config, f) for f in (*fields, *_SHAPE_CONTEXT)}
        key = json.dumps([config.warm_start, config.warm_start_from, shape], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            if store is None:
                raise WarmStartMissing(
                    f"field 'warm_start' is {config.warm_start!r} but there is no result database to "
                    "find that trial in (--db, $ABLATE_DB, ./ablate.db)"
                )
            line = resolve_warm_start(store, config, runs_dir).describe()
        except WarmStartMissing as e:
            assert config.warm_start is not None
            source = (earlier or {}).get(parse_warm_start(config.warm_start)[0])
            if smoke:
                line = f"{e}: its --smoke trials start from random weights"
            elif source is None:
                raise StudyError(f"{study.where}: {e}") from None
            else:
                line = _check_planned_source(study, config, source)
        except StudyError as e:
            raise StudyError(f"{study.where}: {e}") from None
        if line not in lines:
            lines.append(line)
    return lines


def _check_planned_source(study: Study, config: TrialConfig, source: PlannedStudy) -> str:
    """The line for a warm start from a trial that an earlier study of the same file plans (its
    model checked against this one's), or a StudyError when that trial can give no weights."""
    from ablate.train import check_warm_start

    assert config.warm_start is not None
    name, number = parse_warm_start(config.warm_start)
    what = f"{study.where}: field 'warm_start' is {config.warm_start!r}"
    if source.study.train is not None:
        raise StudyError(f"{what} but study {name!r} trains with its own train= function, which keeps no checkpoint")
    if not source.specs:
        raise StudyError(
            f"{what} but study {name!r} is adaptive: its trials are numbered as they are proposed; "
            f"run it first (ablate run {source.study.source} --study {name})"
        )
    spec = next((s for s in source.specs if s.number == number), None)
    if spec is None:
        raise StudyError(f"{what} but study {name!r} plans trials 0 to {len(source.specs) - 1}, no trial {number}")
    try:
        check_warm_start(config, spec.config, None)
    except StudyError as e:
        raise StudyError(f"{study.where}: {e}") from None
    return (f"warm start {config.warm_start}: trial {number} of study {name}, which this file "
            "runs first (its checkpoint is checked before this study starts)")


def plan_warm_starts(
    planned: Sequence[PlannedStudy], *, db: str | None, runs_dir: Path, smoke: bool,
    store: ResultStore | None = None,
) -> list[PlannedStudy]:
    """The planned studies (of one file, in its order) with a line per warm-start source in
    their notes, after :func:`check_warm_starts`; the database is opened read-only (unless
    ``store`` is given) only when a trial warm-starts, and a missing one is no database."""
    from ablate.errors import NotAblateDatabaseError

    out: list[PlannedStudy] = []
    opened = None
    try:
        for p in planned:
            configs = [s.config for s in p.specs] or p.study.example_configs()
            if store is None and opened is None and any(c.warm_start is not None for c in configs):
                from ablate.store import ResultStore

                with contextlib.suppress(NotAblateDatabaseError):  # then the sources must be in the file
                    opened = ResultStore(db, read_only=True)
            lines = check_warm_starts(
                p.study, configs, store=store or opened, runs_dir=runs_dir, smoke=smoke,
                earlier={q.study.name: q for q in out},
            )
            out.append(dataclasses.replace(p, notes=[*p.notes, *lines]) if lines else p)
    finally:
        if opened is not None:
            opened.close()
    return out


def write_record(folder: Path, source: WarmStartSource) -> None:
    """Keep what a trial was warm-started from in its own folder (read again on resume)."""
    write_atomic(folder / WARM_START_FILE, json.dumps(source.record(), indent=1))


def read_record(folder: Path) -> WarmStartSource | None:
    """The source a resumed trial was warm-started from, as :func:`write_record` kept it."""
    try:
        return WarmStartSource(**json.loads((folder / WARM_START_FILE).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None
