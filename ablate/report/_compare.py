"""Studies compared: one table and one cost-against-accuracy figure across studies on the same data.

``ablate report A B`` (the iNaturalist write-up's Part B: fine-tuning against the CNN trained
from scratch, on accuracy, training time and generalisation). The first study named is the
reference, fixed by the command line before any result is read. Each study's best configuration
is selected on its validation metric (the study's ``metric``) and reported on the test
counterpart where every compared configuration has one, so the selection does not flatter the
number compared; each other study's selection is tested against the reference's with Welch's
t-test over seeds (the studies are independent runs: nothing pairs their seeds), its own
interval of the difference, Bonferroni over the family when more than two studies are compared,
and the smallest difference it could have detected.

Comparing studies on different data or different metrics compares nothing: :func:`check_comparable`
refuses them with one line saying why. :func:`compare_studies` computes the numbers (nothing drawn),
:func:`render_comparison` writes them; drawing is ``_plots.plot_study_cost``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ablate.errors import StudyError
from ablate.metrics import test_name
from ablate.report._model import ReportOptions, StudyData
from ablate.report._stats import (
    ALPHA,
    NO_DATA,
    NO_SPREAD,
    POWER,
    SINGLE,
    Comparison,
    adjust_family,
    compare_to_baseline,
    family_alpha,
    t_interval,
)
from ablate.report._table import ablation_table
from ablate.report._trials import clipped_to_range, counted_trials

#: The trial config fields that say which data a trial was trained and scored on (what the data
#: is and how it is split; not where it lives: data_root may differ between machines).
DATASET_FIELDS = ("dataset", "num_classes", "synthetic_samples", "train_split", "val_split", "test_split",
                  "split_seed", "max_train_samples")
#: Stored split sizes: the same declaration read from a different folder shows here.
SPLIT_SIZES = ("n_val", "n_test")
#: Below this many seeds per arm a test is said to have low power in words, not only in numbers.
LOW_N = 5
SELECTED = "best (validation)"
BASELINE = "baseline"


@dataclass(frozen=True)
class StudyTest(Comparison):
    """One study's selected configuration against the reference's, on ``metric``: the
    single-study table's :class:`~ablate.report._stats.Comparison` (Welch's test, adjusted for
    the family of the other studies), with what it compares."""

    study: str = ""
    label: str = ""
    reference_label: str = ""
    metric: str = ""

    @property
    def n_reference(self) -> int:
        return self.n_base


@dataclass
class StudyComparison:
    """Every number of a comparison of studies, computed and not yet drawn.

    ``rows``: one row per configuration of each study (``study``, ``config_hash``, ``label``,
    ``role``, ``n``, ``mean``/``ci_low``/``ci_high`` of ``metric`` over seeds, ``test_mean``,
    ``test_ci_low``/``test_ci_high``/``test_n`` of ``test_metric``, ``time_s`` (mean training
    time per trial), ``gap`` (mean over seeds of ``train_metric`` minus ``metric``)).
    """

    studies: list[str]
    metric: str  # the validation metric every study selected on
    direction: str
    reported: str  # the metric the tests compare: test_metric where every selection has it, else metric
    train_metric: str | None
    test_metric: str | None
    rows: pd.DataFrame
    tests: list[StudyTest]
    dataset: str  # the shared data, in words
    alpha: float = ALPHA
    notes: list[str] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        return self.studies[0]

    @property
    def interval_level(self) -> float:
        return 1 - family_alpha(sum(t.tested for t in self.tests), self.alpha)


def comparison_folder(studies: Sequence[str]) -> str:
    """``reports/<this>``: the study names joined by ``_vs_``, reference first."""
    return "_vs_".join(studies)


def check_study_names(studies: Sequence[str]) -> list[str]:
    """At least two different study names, in the order given."""
    twice = sorted({s for s in studies if list(studies).count(s) > 1})
    if twice:
        raise StudyError(f"study {twice[0]!r} is named twice; a comparison needs different studies")
    if len(studies) < 2:
        raise StudyError("a comparison needs at least two studies: ablate report STUDY OTHER [...]")
    return list(studies)


# ----------------------------------------------------------------------------- same data, same metric
def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else None if value is None or value != value else value


def dataset_identity(trials: pd.DataFrame) -> list[dict[str, Any]]:
    """The distinct data declarations (:data:`DATASET_FIELDS` of the stored trial configs) of the
    completed trials, with the stored split sizes (:data:`SPLIT_SIZES`) where recorded."""
    done = trials[trials["status"] == "completed"]
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for config in done["config"]:
        config = config if isinstance(config, Mapping) else {}
        identity = {f: _plain(config.get(f)) for f in DATASET_FIELDS}
        if identity.get("dataset") != "synthetic":
            identity.pop("synthetic_samples")  # only synthetic data is made of that many images
        found.setdefault(tuple(identity.items()), identity)
    sizes = {c: sorted({int(v) for v in done[c].dropna()}) for c in SPLIT_SIZES if c in done.columns}
    return [{**identity, **{c: tuple(v) for c, v in sizes.items() if v}} for identity in found.values()]


def _identity_text(identity: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_shown(v) if k in SPLIT_SIZES else v}" for k, v in identity.items() if v is not None)


def check_comparable(datas: Sequence[StudyData]) -> str:
    """The data every study ran on, in words; StudyError (one line) when the studies ran on
    different data, or select and rank by different metrics or directions."""
    first = datas[0]
    for d in datas[1:]:
        if (d.metric, d.direction) != (first.metric, first.direction):
            raise StudyError(f"cannot compare {first.study!r} ({first.metric}, {first.direction}) with {d.study!r} "
                             f"({d.metric}, {d.direction}): the studies select on different metrics")
    identities = {d.study: dataset_identity(d.trials) for d in datas}
    for name, found in identities.items():
        if len(found) > 1:
            raise StudyError(f"cannot compare study {name!r}: its completed trials ran on {len(found)} different "
                             f"datasets ({'; '.join(_identity_text(i) for i in found)})")
    reference = identities[first.study][0]
    for d in datas[1:]:
        other = identities[d.study][0]
        fields = [k for k in DATASET_FIELDS if reference.get(k) != other.get(k)]
        # A split size only where both studies stored one: older trials have none.
        fields += [k for k in SPLIT_SIZES if k in reference and k in other and reference[k] != other[k]]
        if fields:
            differences = "; ".join(f"{k} {_shown(reference.get(k))} vs {_shown(other.get(k))}" for k in fields)
            raise StudyError(f"cannot compare {first.study!r} with {d.study!r}: they ran on different data "
                             f"({differences})")
    return _identity_text(reference)


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return "/".join(map(str, value))
    return repr(value) if isinstance(value, str) else str(value)


# ------------------------------------------------------------------------------------- the numbers
def counterpart(metric: str, split: str, columns: Sequence[str]) -> str | None:
    """``val_acc`` -> ``train_acc`` / ``test_acc`` when that column holds values, else None."""
    if not metric.startswith("val_"):
        return None
    name = test_name(metric) if split == "test" else f"{split}_" + metric.removeprefix("val_")
    return name if name in columns else None


def _values(done: pd.DataFrame, column: str | None) -> dict[str, np.ndarray]:
    """Each configuration's values of ``column`` (trials without one left out)."""
    if column is None or column not in done.columns:
        return {}
    data = done[done[column].notna()]
    return {str(h): g.to_numpy(dtype=float) for h, g in data.groupby("config_hash", sort=False)[column]}


def _study_rows(data: StudyData, metric: str, direction: str, train: str | None, test: str | None) -> pd.DataFrame:
    table = ablation_table(
        data.trials, factors=list(data.factors), metric=metric, direction=direction, design=data.design,
        study_baseline=data.baseline, declared_levels=data.declared, base=data.base,
        metrics=[m for m in (metric, "duration_s") if m],
    )
    done = counted_trials(data.trials, metric)
    values = _values(done, metric)
    tests = _values(done, test)
    times = _values(done, "duration_s")
    gaps = _values(done.assign(_gap=done[train] - done[metric]), "_gap") if train in done.columns else {}
    rows = table.rows[table.rows["n"] > 0]
    means = rows[f"{metric}_mean"].to_numpy(dtype=float)
    best = int(np.nanargmin(means) if direction == "minimize" else np.nanargmax(means))
    out = []
    for i, (h, label) in enumerate(zip(rows["config_hash"], rows["label"], strict=True)):
        roles = [SELECTED] if i == best else []
        roles += [BASELINE] if h == table.baseline else []
        x, t = values.get(h, np.array([])), tests.get(h, np.array([]))
        lo, hi = clipped_to_range(t_interval(x.tolist()), metric)
        tlo, thi = clipped_to_range(t_interval(t.tolist()), test) if test else (math.nan, math.nan)
        out.append({
            "study": data.study, "config_hash": h, "label": str(label), "role": ", ".join(roles),
            "selected": i == best, "baseline": h == table.baseline, "n": len(x),
            "mean": float(x.mean()), "ci_low": lo, "ci_high": hi,
            "test_n": len(t), "test_mean": float(t.mean()) if len(t) else math.nan, "test_ci_low": tlo, "test_ci_high": thi,
            "time_s": float(times[h].mean()) if h in times else math.nan,
            "gap": float(gaps[h].mean()) if h in gaps and len(gaps[h]) else math.nan,
        })
    return pd.DataFrame(out)


def compare_studies(datas: Sequence[StudyData], alpha: float = ALPHA) -> StudyComparison:
    """Check the studies are comparable, then every row, selection and test (nothing drawn)."""
    if len(datas) < 2:
        raise StudyError("a comparison needs at least two studies: ablate report STUDY OTHER [...]")
    dataset = check_comparable(datas)
    metric, direction = datas[0].metric, datas[0].direction
    # A column any study holds values of: a study without them shows "–" in that column.
    columns = set().union(*(set(c for c in d.trials.columns if d.trials[c].notna().any()) for d in datas))
    train = counterpart(metric, "train", sorted(columns))
    test = counterpart(metric, "test", sorted(columns))
    rows = pd.concat([_study_rows(d, metric, direction, train, test) for d in datas], ignore_index=True)
    notes: list[str] = []
    selected = rows[rows["selected"]].set_index("study")
    reported = test if test is not None and (selected["test_n"] > 0).all() else metric
    if reported == metric:
        why = (f"No test split scored for every selected configuration: the comparison is on {metric}"
               if metric.startswith("val_") else f"The studies select on {metric}, which is not a validation metric, "
               "and the comparison is on it too")
        notes.append(f"{why}, the metric that also selected each configuration, so each side's number is optimistic "
                     "(most for the study that tried more configurations).")
    done = {d.study: counted_trials(d.trials, metric) for d in datas}
    arms = {s: _values(done[s], reported).get(str(selected.loc[s, "config_hash"]), np.array([])) for s in selected.index}
    reference = datas[0].study
    others = [d.study for d in datas[1:]]
    # Welch's test of each other study against the reference, Bonferroni over those tested: the
    # single-study table's statistics, unpaired (no seed is shared across studies).
    tested = adjust_family(
        [compare_to_baseline(arms[s], [], arms[reference], [], paired=False) for s in others], alpha
    )
    tests = [
        StudyTest(
            **{f.name: getattr(c, f.name) for f in fields(Comparison)},
            study=s, label=str(selected.loc[s, "label"]), reference_label=str(selected.loc[reference, "label"]),
            metric=reported,
        )
        for s, c in zip(others, tested, strict=True)
    ]
    counts = {d.study: int(rows["study"].eq(d.study).sum()) for d in datas}
    many = [s for s, k in counts.items() if k > 1]
    if many:
        notes.append("Best (validation): the configuration with the best mean " + metric + " of its study; picked among "
                     + ", ".join(f"{counts[s]} configurations of {s}" for s in many)
                     + ", so its validation number is the best of several and optimistic; its test number is not.")
    return StudyComparison(
        studies=[d.study for d in datas], metric=metric, direction=direction, reported=reported,
        train_metric=train, test_metric=test, rows=rows, tests=tests, dataset=dataset, alpha=alpha, notes=notes,
        descriptions={d.study: d.description for d in datas},
    )


def comparison_verdicts(comparison: StudyComparison) -> list[str]:
    """Each test in words: the difference, its interval, the adjusted p, and what the test could
    detect (low power said so when the arms are small)."""
    from ablate.report._tables import format_p

    m = sum(t.tested for t in comparison.tests)
    lines = []
    better_sign = 1 if comparison.direction == "maximize" else -1
    for t in comparison.tests:
        head = (f"{t.study} ({t.label}) vs {comparison.reference} ({t.reference_label}) on {t.metric}: "
                f"Δ = {t.diff:+.3f}" if t.diff == t.diff else f"{t.study} vs {comparison.reference}: no values")
        if not t.tested:
            reason = {SINGLE: f"no test: {t.n} and {t.n_reference} seed(s); a test needs at least 2 on each side "
                              "(run the selected configurations with more seeds)",
                      NO_SPREAD: "no test: every seed gave the same value on both sides",
                      NO_DATA: "no test: no values"}.get(t.test, t.test)
            lines.append(f"{head}; {reason}.")
            continue
        significant = t.p_adjusted < comparison.alpha
        verdict = (("better" if better_sign * t.diff > 0 else "worse") + " than the reference") if significant \
            else "inconclusive"
        level = 100 * comparison.interval_level
        p_text = format_p(t.p_adjusted)
        p_text = f"p < {p_text[1:]}" if p_text.startswith("<") else f"p = {p_text}"
        text = (f"{head}, {level:.4g} % CI [{t.ci_low:+.3f}, {t.ci_high:+.3f}] (Welch's t-test, df = {t.df:.1f}), "
                f"{p_text}" + (f" (Bonferroni over {m})" if m > 1 else "") + f": {verdict}.")
        power = f" The smallest difference this test detects with {POWER:.0%} power is {t.detectable:.3f}"
        small = min(t.n, t.n_reference) < LOW_N
        if not significant:
            text += ((f" Low power: {t.n} and {t.n_reference} seeds per arm." if small else "") + power
                     + "; a smaller true difference is likely missed, so this is not evidence of no difference.")
        elif small:
            text += (f" Few seeds ({t.n} and {t.n_reference} per arm): a difference found with little data tends to "
                     f"be overstated.{power}.")
        lines.append(text)
    return lines


# ------------------------------------------------------------------------------------ the writing
def _num(value: float, digits: int = 3) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def _mean_ci(mean: float, low: float, high: float, n: int) -> str:
    if n == 0 or mean != mean:
        return "–"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]" if low == low else f"{mean:.3f} (n = 1)"


def comparison_cells(comparison: StudyComparison) -> Any:
    """The table's cells (the single-study table's :class:`~ablate.report._tables.Cells`)."""
    from ablate.report._tables import Cell, Cells, metric_label, time_unit

    rows = comparison.rows
    unit, scale = time_unit(rows["time_s"])
    typical = float(np.nanmedian(rows["time_s"].to_numpy(dtype=float))) / scale if rows["time_s"].notna().any() else 0.0
    # Three significant digits for a typical time, the same decimals on every row (as the study table).
    digits = int(np.clip(2 - math.floor(math.log10(typical)), 0, 3)) if typical > 0 else 1
    header = ["study", "configuration", "role", "n", f"{metric_label(comparison.metric)} mean [95 % CI]"]
    keys = ["study", "configuration", "role", "n", "metric"]
    if comparison.test_metric is not None:
        header.append(f"{metric_label(comparison.test_metric)} mean [95 % CI]")
        keys.append("test")
    header.append(f"train time per trial ({unit})")
    keys.append("time")
    if comparison.train_metric is not None:
        header.append(f"gap: {comparison.train_metric} − {comparison.metric}")
        keys.append("gap")
    body = []
    for r in rows.to_dict("records"):
        cells = [Cell(r["study"], r["study"]), Cell(r["label"], r["label"]), Cell(r["role"], r["role"], best=r["selected"]),
                 Cell(str(r["n"]), float(r["n"])),
                 Cell(_mean_ci(r["mean"], r["ci_low"], r["ci_high"], r["n"]), r["mean"], best=r["selected"])]
        if comparison.test_metric is not None:
            cells.append(Cell(_mean_ci(r["test_mean"], r["test_ci_low"], r["test_ci_high"], r["test_n"]),
                              None if r["test_mean"] != r["test_mean"] else r["test_mean"],
                              best=r["selected"] and comparison.reported == comparison.test_metric))
        cells.append(Cell(_num(r["time_s"] / scale, digits), None if r["time_s"] != r["time_s"] else r["time_s"]))
        if comparison.train_metric is not None:
            cells.append(Cell("–" if r["gap"] != r["gap"] else f"{r['gap']:+.3f}",
                              None if r["gap"] != r["gap"] else r["gap"]))
        body.append(cells)
    return Cells(header, body, keys, [k in ("study", "configuration", "role") for k in keys])


def comparison_notes(comparison: StudyComparison) -> list[str]:
    """The sentences under the table: reference, selection, cells, gap."""
    notes = [
        f"Reference: {comparison.reference} (named first). Data: {comparison.dataset}.",
        f"Cells: mean over seeds with its 95 % Student-t interval, clipped to the metric's range (n = 1: no "
        f"interval). Each study's best configuration "
        f"is selected on {'validation' if comparison.metric.startswith('val_') else 'its metric'} "
        f"({comparison.metric}, {comparison.direction}), marked '{SELECTED}'; "
        f"'{BASELINE}': the study's own baseline (declared, else its first levels).",
    ]
    if comparison.train_metric is not None:
        notes.append(f"Gap: {comparison.train_metric} − {comparison.metric} per trial, mean over seeds (generalisation "
                     "gap on the validation split; larger: more overfitting)."
                     if comparison.direction == "maximize" else
                     f"Gap: {comparison.train_metric} − {comparison.metric} per trial, mean over seeds (negative: the "
                     "validation loss is above the training loss).")
    return notes


def markdown_text(comparison: StudyComparison, cells: Any, figure: str | None) -> str:
    """report.md's text (table.md holds the table and its notes alone)."""
    lines = [f"# Studies compared: {' vs '.join(comparison.studies)}", ""]
    described = [f"- {s}: {d}" for s, d in comparison.descriptions.items() if d]
    lines += [*described, ""] if described else []
    lines += ["## Table", "", markdown_table_text(comparison, cells), "## Statistical comparison", ""]
    lines += [f"- {v}" for v in comparison_verdicts(comparison)]
    lines.append("")
    if figure:
        lines += ["## Accuracy against cost", "", f"![Accuracy against cost]({figure}.png)", "",
                  f"_{figure_caption(comparison)}_", ""]
    if comparison.notes:
        lines += ["## Notes", "", *(f"- {n}" for n in comparison.notes), ""]
    return "\n".join(lines)


def markdown_table_text(comparison: StudyComparison, cells: Any) -> str:
    def row(texts: Sequence[str]) -> str:
        return "| " + " | ".join(t.replace("|", "\\|") for t in texts) + " |"

    lines = [row(cells.header), row(["---" if t else "---:" for t in cells.text])]
    lines += [row([f"**{c.text}**" if c.best and c.text else c.text for c in r]) for r in cells.rows]
    return "\n".join([*lines, "", *comparison_notes(comparison)]) + "\n"


def figure_caption(comparison: StudyComparison) -> str:
    return (f"{comparison.metric} (mean over seeds, bars: 95 % interval) against mean training time per trial; one "
            f"marker per configuration, coloured by study; ringed: each study's best by validation.")


def write_html(comparison: StudyComparison, cells: Any, path: Path, figure: str | None) -> Path:
    """The self-contained page (styles, sorting script and the figure inline), like the study report's."""
    from ablate.report._html import _CSS, _JS, _e, _html_table, _img

    title = " vs ".join(comparison.studies)
    body = [f"<h1>Studies compared: {_e(title)}</h1>"]
    body += [f'<p class="meta">{_e(s)}: {_e(d)}</p>' for s, d in comparison.descriptions.items() if d]
    body.append("<h2>Table</h2>")
    body.append(_html_table(cells, baseline=[bool(s and r) for s, r in zip(
        comparison.rows["study"] == comparison.reference, comparison.rows["selected"], strict=True)]))
    body.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in comparison_notes(comparison)) + "</ul>")
    body.append('<p class="caption">Click a column header to sort. The same table: table.md, table.csv.</p>')
    body.append("<h2>Statistical comparison</h2>")
    body.append('<ul class="notes">' + "".join(f"<li>{_e(v)}</li>" for v in comparison_verdicts(comparison)) + "</ul>")
    if figure:
        body.append("<h2>Accuracy against cost</h2>")
        body.append(f"<figure>{_img(path.parent / f'{figure}.png', 'Accuracy against cost')}"
                    f'<p class="caption">{_e(figure_caption(comparison))}</p></figure>')
    if comparison.notes:
        body.append("<h2>Notes</h2>")
        body.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in comparison.notes) + "</ul>")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f"<title>{_e(title)}: studies compared</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{_JS}</script>\n</body></html>\n")
    path.write_text(page, encoding="utf-8")
    return path


FIGURE = "cost"


def csv_frame(comparison: StudyComparison) -> pd.DataFrame:
    """The rows for scripts: every number unrounded, columns named by their metric."""
    names = {"mean": f"{comparison.metric}_mean", "ci_low": f"{comparison.metric}_ci_low",
             "ci_high": f"{comparison.metric}_ci_high", "time_s": "duration_s_mean"}
    if comparison.test_metric is not None:
        names |= {f"test_{k}": f"{comparison.test_metric}_{k}" for k in ("n", "mean", "ci_low", "ci_high")}
    if comparison.train_metric is not None:
        names["gap"] = f"gap_{comparison.train_metric}_minus_{comparison.metric}"
    frame = comparison.rows.drop(columns=["selected", "baseline"])
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("test_") and comparison.test_metric is None])
    return frame.rename(columns=names)


def render_comparison(comparison: StudyComparison, out: Path | str, options: ReportOptions | None = None) -> Path:
    """Write index.html, report.md, table.md, table.csv and the figure into ``out``; return index.html's path."""
    from ablate.report._plots import plot_study_cost, report_style, save_figure

    options = options or ReportOptions()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells = comparison_cells(comparison)
    (out / "table.md").write_text(markdown_table_text(comparison, cells), encoding="utf-8")
    csv_frame(comparison).to_csv(out / "table.csv", index=False)
    figure = None
    if comparison.rows["time_s"].notna().any():
        with report_style():
            save_figure(plot_study_cost(comparison.rows, comparison.studies, comparison.metric), out, FIGURE,
                        vector=options.vector_formats)
        figure = FIGURE
    else:
        comparison.notes.append("No cost figure: no trial recorded its training time (duration_s).")
    (out / "report.md").write_text(markdown_text(comparison, cells, figure), encoding="utf-8")
    return write_html(comparison, cells, out / "index.html", figure)


def load_comparison(studies: Sequence[str], db: str | None = None) -> StudyComparison:
    """Read each study through the store (read-only, as the study report does) and compare them."""
    from ablate.report._build import load_study_data
    from ablate.store import ReadOnlyResults

    names = check_study_names(studies)
    with ReadOnlyResults(db) as store:
        datas = [load_study_data(name, store) for name in names]
    return compare_studies(datas)
