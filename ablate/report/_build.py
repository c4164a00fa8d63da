"""Building a report: read the study from the store, compute every DataFrame, draw, write.

:func:`collect_report` turns store DataFrames into a :class:`Report` (numbers only),
:func:`render_report` draws and writes it, :func:`build_report` does both for a study in a
database. Each stage can be called alone, which is what the tests and the benchmark do.
"""

from __future__ import annotations

import functools
import gc
import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd

from ablate.errors import StudyError
from ablate.metrics import declare_metrics, declared_metrics
from ablate.report._effects import (
    IMPORTANCE_DEPTH,
    IMPORTANCE_SEEDS,
    IMPORTANCE_TREES,
    anova_table,
    continuous_points,
    estimated_marginal_means,
    factor_importance,
    interaction_means,
    is_full_grid,
    seeds_crossed,
    significant_interactions,
)
from ablate.report._figure_data import (
    compute_hours,
    cost_table,
    learning_curves,
    parallel_coordinates,
)
from ablate.report._model import Plot, Predictions, Report, ReportOptions, StudyData
from ablate.report._provenance import collect_provenance
from ablate.report._seeds import (
    chosen_rows,
    seed_view,
    seeds_caption,
    seeds_worth_drawing,
    trial_curves,
    trial_sections,
)
from ablate.report._table import ADAPTIVE, AblationTable, ablation_table, parse_baseline
from ablate.report._trials import (
    check_metric,
    counted_trials,
    format_level,
    formatted_levels,
    hashable_factors,
    metric_direction,
)

#: Learning curves show at most this many configurations (the baseline and the best ones).
MAX_CURVES = 8
#: The seeds figure shows at most this many configurations (one row each).
MAX_SEED_ROWS = 40
#: Interaction heatmaps are drawn for the pairs among this many factors (those with the widest
#: main effect), so a 4-factor grid gets 3 readable heatmaps instead of 6.
MAX_INTERACTION_FACTORS = 3
#: Beyond this many classes a confusion matrix is a grey square (HW2P2 has 7,000): none is drawn.
MAX_CONFUSION_CLASSES = 100


def _small_blas() -> AbstractContextManager[Any]:
    """One BLAS thread: our matrices are small (a 2,000 x 90 ANOVA design), and on a busy
    machine OpenBLAS's threads fight over cores: the ANOVA took 1.6 s instead of 0.09 s."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # it comes with scikit-learn; without it, BLAS keeps its default
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


F = TypeVar("F", bound=Callable[..., Any])


def _with_small_blas(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _small_blas():
            return fn(*args, **kwargs)

    return cast(F, wrapper)


@_with_small_blas
def collect_report(data: StudyData, options: ReportOptions | None = None) -> Report:
    """Compute every table and plot's data from the store's DataFrames; nothing is drawn."""
    options = options or ReportOptions()
    metric = options.metric or data.metric
    direction = data.direction if metric == data.metric else metric_direction(metric)
    trials, design, factors = data.trials, data.design, list(data.factors)
    if not trials.empty:
        check_metric(metric, trials, study=data.study)
    baseline = parse_baseline(options.baseline) if isinstance(options.baseline, str) else options.baseline
    trials = hashable_factors(trials, [f for f in factors if f in trials.columns])
    table = ablation_table(
        trials,
        factors=factors,
        metric=metric,
        direction=direction,
        design=design,
        baseline=baseline or None,
        study_baseline=data.baseline,
        declared_levels=data.declared,
        base=data.base,
    )
    if data.seeds:
        table.seeds = sorted(int(s) for s in data.seeds)
    if options.columns is not None:
        from ablate.report._tables import check_columns

        check_columns(table, options.columns)  # a user mistake: before anything is written
    done = counted_trials(trials, metric)
    notes: list[str] = []
    varying = table.factors
    base_row = table.baseline_row

    hold = None
    crossed = seeds_crossed(done)
    if design == "ofat" and base_row is not None:
        hold = {f: base_row[f] for f in varying}
        from ablate.report._effects import main_effects

        effects = {f: main_effects(done, f, metric, hold=hold) for f in varying}
        effects_model = "a one-factor OLS model of the trials at the baseline of the other factors"
    else:
        # The ANOVA's model (two-way interactions) where the grid is full, else the additive one.
        full = design == "grid" and len(varying) >= 2 and is_full_grid(done, varying)
        effects = (estimated_marginal_means(done, varying, metric, seed_block=crossed, interactions=full)
                   if varying else {})
        effects_model = ("the OLS model of all factors" + (" and their two-way interactions" if full else " (additive)")
                         + (" with seed as a block" if crossed else ""))
    if effects and all(e["df"].iloc[0] <= 0 for e in effects.values() if len(e)):
        notes.append("Main effects have no interval: the model has no residual degrees of freedom.")

    interactions: list[tuple[str, str, pd.DataFrame]] = []
    anova = None
    if design == "grid" and len(varying) >= 2:
        spread = {f: float(e["mean"].max() - e["mean"].min()) if len(e) else 0.0 for f, e in effects.items()}
        top = sorted(varying, key=lambda f: -spread[f])[:MAX_INTERACTION_FACTORS]
        for a, b in itertools.combinations([f for f in varying if f in top], 2):
            interactions.append((a, b, interaction_means(done, a, b, metric)))
        if len(varying) > MAX_INTERACTION_FACTORS:
            notes.append(f"Interaction heatmaps: pairs among the {MAX_INTERACTION_FACTORS} factors with the widest main effect ({', '.join(top)}).")
    if design == "grid" and varying:
        if is_full_grid(done, varying):
            anova = anova_table(done, varying, metric, seed_block=crossed)
        else:
            notes.append(
                "No ANOVA table: it needs every combination of levels with at least 2 completed seeds."
            )
    interacting = significant_interactions(anova)

    rows = table.rows[table.rows["n"] > 0]
    ranked = rows.sort_values(f"{metric}_mean", ascending=direction == "minimize")["config_hash"].tolist()
    chosen = list(dict.fromkeys([*(x for x in [table.baseline] if x), *ranked]))[:MAX_CURVES]
    order = [h for h in table.rows["config_hash"] if h in chosen]
    epochs = data.epochs
    epoch_rows = epochs(done.loc[done["config_hash"].isin(order), "trial_id"].tolist()) if callable(epochs) else epochs
    curves = (
        learning_curves(epoch_rows, done, configs=order)
        if epoch_rows is not None and not epoch_rows.empty
        else pd.DataFrame(columns=["config_hash", "series", "epoch", "mean", "std", "n"])
    )
    if len(rows) > MAX_CURVES:
        notes.append(f"Learning curves show the baseline and the best configurations ({MAX_CURVES} of {len(rows)}).")

    parallel = parallel_coordinates(table) if varying and len(rows) >= 2 else None
    importance = None
    scatter: dict[str, pd.DataFrame] = {}
    if design in ADAPTIVE:
        for f in varying:
            points = continuous_points(done, f, metric)
            if points is not None:
                scatter[f] = points
        try:
            importance = factor_importance(done, varying, metric, direction, categorical=set(data.declared or {}))
        except (ValueError, RuntimeError) as e:  # fANOVA refuses degenerate data (one trial, no spread)
            notes.append(f"No factor importance: {e}")
        except ImportError:  # Optuna's fANOVA fits scikit-learn's random forest
            notes.append("No factor importance: it needs scikit-learn (pip install scikit-learn).")
    series, series_rows = trial_curves(metric, direction, epochs=epoch_rows, read=data.epoch_series)
    sections = trial_sections(table, trials, series, series_rows)
    has_time = "duration_s" in done.columns and done["duration_s"].notna().any()
    cost = cost_table(table, done) if has_time else None
    hours = compute_hours(trials, varying) if has_time and varying else None

    return Report(
        study=data.study,
        design=design,
        metric=metric,
        direction=direction,
        description=data.description,
        table=table,
        base=dict(data.base or {}),
        status_counts={str(k): int(v) for k, v in trials["status"].value_counts().items()},
        effects=effects,
        effects_hold=hold,
        interactions=interactions,
        anova=anova,
        curves=curves,
        curve_configs=order,
        parallel=parallel,
        importance=importance if importance is not None and not importance.empty else None,
        cost=cost,
        hours=hours,
        predictions=_best_predictions(table, done, data.artifacts, metric, direction, notes),
        notes=notes,
        effects_model=effects_model,
        interacting=interacting,
        scatter=scatter,
        columns=options.columns,
        seeds=seed_view(table, trials),
        trial_sections=sections,
    )


def _best_predictions(
    table: AblationTable,
    done: pd.DataFrame,
    artifacts: pd.DataFrame | None,
    metric: str,
    direction: str,
    notes: list[str],
) -> Predictions | None:
    """The stored predictions of the best completed trial that has any."""
    if artifacts is None or artifacts.empty:
        return None
    preds = artifacts[artifacts["kind"] == "predictions"]
    candidates = done[done["trial_id"].isin(preds["trial_id"]) & done[metric].notna()]
    if candidates.empty:
        return None
    best = candidates.sort_values(metric, ascending=direction == "minimize").iloc[0]
    path = Path(str(preds.loc[preds["trial_id"] == best["trial_id"], "path"].iloc[0]))
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("images", "labels", "preds", "class_names")}
            extra = {k: data[k] for k in ("split", "confusion") if k in data.files}
    except (OSError, KeyError, ValueError) as e:
        notes.append(f"No prediction grid: the artifact {path} could not be read ({e}).")
        return None
    label = table.rows.set_index("config_hash").loc[best["config_hash"], "label"]
    return Predictions(
        trial_number=int(best["number"]),
        label=f"{label}, seed {int(best['seed'])}",
        images=arrays["images"],
        labels=arrays["labels"],
        preds=arrays["preds"],
        class_names=[str(c) for c in arrays["class_names"]],
        seed=int(best["seed"]),
        split=str(extra["split"]) if "split" in extra else None,
        confusion=extra.get("confusion"),
    )


# ------------------------------------------------------------------------------ rendering
#: Every plot a report may write, so a re-run removes those that no longer apply (and nothing else).
PLOT_NAMES = ("main_effects", "interactions", "learning_curves", "seeds", "parallel_coordinates",
              "importance", "cost", "compute_hours", "predictions")


def key_labels(report: Report) -> tuple[dict[str, str], str | None]:
    """Names of the configurations in the plots' keys, and the line above them.

    OFAT rows keep their labels ("baseline", "image_size=64"). Other designs list the levels
    alone under one line naming the factors ("model, lr" over "cnn, 0.1"): the same facts in
    half the characters, and every character of a key costs drawing time (the long keys of a
    5-factor random search were a quarter of its drawing).
    """
    table = report.table
    rows = table.rows
    if report.design == "ofat" or not table.factors:
        return dict(zip(rows["config_hash"], rows["label"], strict=True)), None
    levels = [formatted_levels(rows[f]) for f in table.factors]
    names = [", ".join(parts) for parts in zip(*levels, strict=True)]
    return dict(zip(rows["config_hash"], names, strict=True)), ", ".join(table.factors) + ":"


def draw_report(
    report: Report, out: Path, *, vector: Sequence[str] = (), workers: int | None = None
) -> list[Plot]:
    """Draw every figure the report has data for into ``out`` (PNG, and the ``vector`` formats).

    ``workers`` processes draw in parallel (default: half the CPU cores; 1 draws in this process).
    """
    from ablate.report import _plots as P
    from ablate.report._tables import metric_label, time_unit

    table = report.table
    # One colour per configuration, the same in every plot. Beyond 10 rows colours would blur
    # together: only the configurations drawn as learning curves get one, the rest are grey.
    rows = list(table.rows["config_hash"])
    colors = P.config_colors(rows if len(rows) <= 10 else report.curve_configs)
    labels, key_title = key_labels(report)
    m = metric_label(report.metric)
    jobs: list[tuple[Plot, Any]] = []

    if report.effects:
        hold = {f: format_level(v) for f, v in report.effects_hold.items()} if report.effects_hold else None
        how = ("each level at the baseline of the other factors (OFAT)" if hold
               else "averaged with equal weight over the other factors' levels")
        caption = (f"{m} per factor level: estimated marginal means of {report.effects_model}, {how}; "
                   "error bars: 95 % interval from the model's residual error, clipped to the metric's range.")
        if report.interacting:
            caption += (f" The ANOVA finds a significant interaction ({', '.join(report.interacting)}): a main effect "
                        "averages over it, read the interaction heatmap too.")
        jobs.append((Plot("main_effects", "Main effects", caption),
                     lambda: P.plot_main_effects(report.effects, report.metric, baseline_levels=hold)))
    if report.interactions:
        names = ", ".join(f"{a} x {b}" for a, b, _ in report.interactions)
        caption = f"Mean {m} for each combination of levels: {names}."
        if not P.interaction_cells_detailed(report.interactions):
            n = pd.concat([means["n"] for _, _, means in report.interactions])
            caption += (f" {len(n)} cells: each shows the mean alone (n = {int(n.min())} to {int(n.max())} trials "
                        "per cell); mean, std and n of every cell come from `interaction_means`.")
        jobs.append((Plot("interactions", "Interactions", caption),
                     lambda: P.plot_interactions(report.interactions, report.metric, report.direction)))
    if not report.curves.empty:
        curve_labels = {h: labels[h] for h in report.curve_configs}
        jobs.append((Plot("learning_curves", "Learning curves", "Per epoch, completed trials only: mean over seeds, band ±1 std."),
                     lambda: P.plot_learning_curves(report.curves, curve_labels, colors, key_title=key_title)))
    if report.seeds is not None and seeds_worth_drawing(report.seeds):
        view = chosen_rows(report.seeds, report.direction, MAX_SEED_ROWS)
        shown = (f" {len(view)} of {len(report.seeds)} configurations: the baseline, those still running, then the best."
                 if len(view) < len(report.seeds) else "")
        jobs.append((Plot("seeds", "Seeds per configuration", seeds_caption(m) + shown),
                     lambda: P.plot_seeds(view, report.metric, labels, key_title=key_title)))
    if report.parallel is not None:
        chosen = f" Drawn: {report.parallel.chosen}; the axes span all of them." if report.parallel.chosen else ""
        jobs.append((Plot("parallel_coordinates", "Parallel coordinates", f"One line per configuration (mean over seeds), coloured by {m}.{chosen}"),
                     lambda: P.plot_parallel_coordinates(report.parallel, report.direction)))
    if report.importance is not None:
        used, done_n = int(report.importance["trials"].iloc[0]), int(report.status_counts.get("completed", 0))
        over = f"{used} of the {done_n} completed trials (a seeded sample)" if used < done_n else f"the {done_n} completed trials"
        jobs.append((Plot("importance", "Factor importance", f"fANOVA (Optuna's FanovaImportanceEvaluator, {IMPORTANCE_TREES} trees of depth <= {IMPORTANCE_DEPTH}, choices as categories) over {over}; bar: mean over {IMPORTANCE_SEEDS} forest seeds, {_stability(report.importance)}."),
                     lambda: P.plot_importance(report.importance, report.metric)))
    if report.cost is not None:
        unit = time_unit(report.cost["time_s"])
        jobs.append((Plot("cost", "Accuracy against cost", f"{m} against mean training time per configuration; circled: Pareto front."),
                     lambda: P.plot_cost(report.cost, report.metric, report.direction, colors, unit,
                                         labels=labels, key_title=key_title)))
    if report.hours is not None and not report.hours.empty:
        jobs.append((Plot("compute_hours", "Compute per factor level", "Device time spent, summed over every trial that ran (start-up excluded)."),
                     lambda: P.plot_compute_hours(report.hours)))
    if report.predictions is not None:
        p = report.predictions
        split = f"{p.split} split" if p.split else "held-out split"
        shown = f"trial {p.trial_number} ({p.label})"
        caption = (f"{len(p.labels)} class-balanced images of the {split}, predicted by the best checkpoint of "
                   f"{shown}, the best completed trial: green right, red wrong.")
        confusion = p.confusion
        if confusion is not None and len(confusion) > MAX_CONFUSION_CLASSES:
            caption += f" No confusion matrix: {len(confusion)} classes are more than a figure can show."
            confusion = None
        elif confusion is not None:
            caption += f" Right: the confusion matrix of the whole {split} ({int(confusion.sum())} images)."
        jobs.append((Plot("predictions", "Predictions of the best trial", caption),
                     lambda: P.plot_predictions(p.images, p.labels, p.preds, p.class_names,
                                                title=f"Best trial {p.trial_number}, {p.label}: {split} predictions",
                                                confusion=confusion,
                                                confusion_title=f"confusion matrix, {split}")))

    order = [plot.name for plot, _ in jobs]
    # Costly figures first (the demo's, dearest first), so parallel workers finish together.
    costly = ("predictions", "learning_curves", "seeds", "cost", "parallel_coordinates")
    jobs.sort(key=lambda job: costly.index(job[0].name) if job[0].name in costly else len(costly))
    # Default: half the logical cores (roughly the physical ones), so a 2-core Colab or CI box
    # draws in-process, where forked workers would only compete for the same core.
    n = min(len(jobs), workers if workers is not None else (os.cpu_count() or 2) // 2)
    if n > 1 and "fork" in multiprocessing.get_all_start_methods():
        # Figures are independent and matplotlib holds the GIL while it renders: draw them in
        # forked processes, which inherit the data (closures need no pickling).
        global _PENDING
        _PENDING = (jobs, out, tuple(vector))
        try:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=n, mp_context=context) as pool:
                list(pool.map(_draw_pending, range(len(jobs))))
        finally:
            _PENDING = None
    else:
        with P.report_style(), _figure_garbage_freed_each():
            for plot, draw in jobs:
                _save(plot, draw, out, vector)
    return [plot for plot, _ in sorted(jobs, key=lambda job: order.index(job[0].name))]


@contextmanager
def _figure_garbage_freed_each() -> Iterator[None]:
    """The automatic garbage collector off while figures are drawn (see :func:`_save`).

    A figure is 5,000-11,000 objects in reference cycles. Allocating them set off, about once a
    report, a full collection over every object of the process (some 200,000: pandas,
    matplotlib, statsmodels), 0.5-0.9 s on a busy machine, for garbage that is all young.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _save(plot: Plot, draw: Callable[[], Any], out: Path, vector: Sequence[str]) -> None:
    from ablate.report._plots import save_figure

    save_figure(draw(), out, plot.name, vector=vector)
    # The figure just written is garbage, and all of it is in the youngest generation: collecting
    # that generation alone frees it, without walking the process's older objects.
    gc.collect(0)


_PENDING: tuple[list[tuple[Plot, Any]], Path, tuple[str, ...]] | None = None


def _draw_pending(index: int) -> str:
    from ablate.report._plots import report_style

    assert _PENDING is not None, "only called in a worker forked by draw_report"
    jobs, out, vector = _PENDING
    plot, draw = jobs[index]
    with report_style(), _figure_garbage_freed_each():
        _save(plot, draw, out, vector)
    return plot.name


def _remove_stale(out: Path, keep: Sequence[Plot]) -> None:
    names = {p.name for p in keep}
    for path in [*out.glob("*.png"), *out.glob("*.pdf"), *out.glob("*.svg")]:
        if path.stem in PLOT_NAMES and path.stem not in names:
            path.unlink()


def _stability(importance: pd.DataFrame) -> str:
    spread = float((importance["high"] - importance["low"]).max()) if "high" in importance else 0.0
    return f"importances moved by up to {spread:.2f} between forest seeds"


def render_report(report: Report, out: Path | str, options: ReportOptions | None = None) -> Path:
    """Write tables, plots, index.html and report.md into ``out``; return index.html's path.
    (Every user mistake is caught while the report is computed, before anything is written.)"""
    from ablate.report._html import write_html, write_markdown
    from ablate.report._tables import markdown_table, table_cells, write_tables

    options = options or ReportOptions()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells = table_cells(report.table, report.columns)  # once for the four writers
    table_md = markdown_table(report.table, cells)  # table.md and report.md
    write_tables(report.table, out, cells, markdown=table_md, study=report.study)
    plots = draw_report(report, out, vector=options.vector_formats, workers=options.workers)
    _remove_stale(out, plots)
    write_markdown(report, plots, out / "report.md", cells, table_md=table_md)
    return write_html(report, plots, out / "index.html", cells)


def build_report(
    study: str, db: str | None = None, out: Path | str | None = None, options: ReportOptions | None = None
) -> Path:
    """Read ``study`` from the result database and write its report into ``out`` (default
    ``reports/<study>``); return index.html's path."""
    report = load_report(study, db=db, options=options)
    return render_report(report, Path(out) if out is not None else Path("reports") / study, options)


def load_study_data(study: str, store: Any) -> StudyData:
    """A study and its trials read through the store's public API (``store``: an open
    :class:`ablate.store.ReadOnlyResults` or ResultStore); epochs are read later, only for the curves drawn."""
    from ablate.store import load_epochs

    info = store.load_study(study)
    trials = store.load_trials(study)
    if trials.empty or not (trials["status"] == "completed").any():
        counts = ", ".join(f"{v} {k}" for k, v in trials["status"].value_counts().items())
        raise StudyError(f"study {study!r} has no completed trials to report ({counts or 'no trials'})")
    definition = info.definition or {}
    declare_metrics(declared_metrics(definition))  # the study's own metrics: labels, directions, ranges
    declared = {name: list(spec["levels"]) for name, spec in (definition.get("factors") or {}).items()
                if isinstance(spec, Mapping) and "levels" in spec}

    def epochs(trial_ids: Sequence[int]) -> pd.DataFrame:
        # The curves need the epochs of at most MAX_CURVES configurations, not every row.
        return load_epochs(study, store, trial_ids=trial_ids)

    def epoch_series(column: str) -> pd.DataFrame:
        # Each row's section shows every trial's curve: one column of every epoch, not whole rows.
        return cast(pd.DataFrame, store.load_epoch_series(study, column))

    return StudyData(
        study=study,
        design=info.design,
        trials=trials,
        factors=list(info.factors),
        metric=info.metric,
        direction=metric_direction(info.metric, study_metric=info.metric, study_direction=info.direction),
        epochs=epochs,
        epoch_series=epoch_series,
        baseline=definition.get("baseline") or None,
        declared=declared,
        base=definition.get("base", {}),
        description=info.description or "",
        seeds=info.seeds,
        artifacts=store.load_artifacts(study),
    )


def load_report(study: str, db: str | None = None, options: ReportOptions | None = None) -> Report:
    """Read a study through the store's public API and compute its :class:`Report`."""
    from ablate.store import ReadOnlyResults

    options = options or ReportOptions()
    # Read-only: a mistyped path or another application's database is an error, left as it
    # was; and for a SQLite file no SQLAlchemy is imported.
    with ReadOnlyResults(db) as store:
        data = load_study_data(study, store)
        if options.metric:
            check_metric(options.metric, data.trials, study=study)
        report = collect_report(data, options)
        report.provenance = collect_provenance(data.trials, store.load_environments(study))
        return report
