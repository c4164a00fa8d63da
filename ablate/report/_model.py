"""The report's data model: what the user asks for, what the store holds, what was computed.

Plain dataclasses and nothing else, so the stages that build (``_build``), draw (``_plots``)
and write (``_html``, ``_tables``) a report import them without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ablate.report._figure_data import ParallelCoordinates
from ablate.report._provenance import Provenance
from ablate.report._seeds import ConfigTrials
from ablate.report._table import AblationTable

#: Column keys ``--columns`` chooses from (besides factor and metric names).
TABLE_COLUMNS = ("factors", "settings", "n", "metrics", "diff", "ci", "p", "detectable", "test")


@dataclass(frozen=True)
class ReportOptions:
    """What a user chooses about a report (``ablate report``'s options).

    ``baseline``: ``{factor: level}``, ``"factor=level,..."``, ``"best"`` (picked post hoc,
    labelled so) or None (the study's declared baseline, else the first declared levels).
    ``metric``: the column to test on (default: the study's). ``columns``: the table's columns
    by key (factor names, ``settings``, ``n``, metric names, ``diff``, ``ci``, ``p``,
    ``detectable``, ``test``); None shows them all. ``pdf``, ``svg``: also write every figure
    in that vector format (each costs about as much as the PNGs: off by default).
    ``workers``: processes drawing figures (None: half the cores).
    """

    baseline: Mapping[str, Any] | str | None = None
    metric: str | None = None
    columns: Sequence[str] | None = None
    pdf: bool = False
    svg: bool = False
    workers: int | None = None

    @property
    def vector_formats(self) -> tuple[str, ...]:
        return tuple(ext for ext, wanted in (("pdf", self.pdf), ("svg", self.svg)) if wanted)


@dataclass
class StudyData:
    """A study as the store holds it: what :func:`collect_report` computes a report from.

    ``epochs`` is :func:`ablate.store.load_epochs`'s frame, or a function returning the epoch
    rows of the trial ids it is given (only the configurations drawn as learning curves).
    ``declared`` holds each choice factor's declared levels in order (the default baseline is
    the first of each); ``baseline`` the study's declared baseline, if any.
    """

    study: str
    design: str
    trials: pd.DataFrame
    factors: Sequence[str]
    metric: str
    direction: str
    epochs: pd.DataFrame | Callable[[Sequence[int]], pd.DataFrame] | None = None
    #: Reads one per-epoch column of every trial (trial_id, epoch, column), for the curves of
    #: each row's trials; without it they come from ``epochs`` when that is a frame.
    epoch_series: Callable[[str], pd.DataFrame] | None = None
    baseline: Mapping[str, Any] | None = None
    declared: Mapping[str, Sequence[Any]] | None = None
    base: Mapping[str, Any] | None = None
    description: str = ""
    seeds: Sequence[int] | None = None
    artifacts: pd.DataFrame | None = None


@dataclass
class Predictions:
    """Stored test-set predictions of one trial (arrays from the trainer's .npz artifact)."""

    trial_number: int
    label: str
    images: np.ndarray
    labels: np.ndarray
    preds: np.ndarray
    class_names: list[str]
    seed: int | None = None
    split: str | None = None  # "test" or "val"; None from an older trainer
    confusion: np.ndarray | None = None  # the whole split's, rows true class, columns predicted


@dataclass
class Report:
    """Every number of a report, computed and not yet drawn."""

    study: str
    design: str
    metric: str
    direction: str
    description: str
    table: AblationTable
    base: dict[str, Any]
    status_counts: dict[str, int]
    effects: dict[str, pd.DataFrame]
    effects_hold: dict[str, Any] | None
    interactions: list[tuple[str, str, pd.DataFrame]]
    anova: pd.DataFrame | None
    curves: pd.DataFrame
    curve_configs: list[str]
    parallel: ParallelCoordinates | None
    importance: pd.DataFrame | None
    cost: pd.DataFrame | None
    hours: pd.DataFrame | None
    predictions: Predictions | None
    notes: list[str] = field(default_factory=list)
    provenance: Provenance | None = None
    #: The model the main effects come from, in words (for the figure's caption).
    effects_model: str = ""
    #: Interactions the ANOVA found significant: main effects average over them.
    interacting: list[str] = field(default_factory=list)
    #: Continuous factors of a search: every trial as a point and a trend (see continuous_points).
    scatter: dict[str, pd.DataFrame] = field(default_factory=dict)
    columns: Sequence[str] | None = None
    #: Per configuration: seeds done / planned, mean and t interval, what still runs (see seed_view).
    seeds: pd.DataFrame | None = None
    #: Per configuration: its trials with their curves, for the page's per-row sections.
    trial_sections: list[ConfigTrials] = field(default_factory=list)


@dataclass(frozen=True)
class Plot:
    """One drawn figure: file stem, section title and the caption written under it."""

    name: str
    title: str
    caption: str
