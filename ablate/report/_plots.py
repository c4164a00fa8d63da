"""Drawing functions: each takes what a data function returned and returns a matplotlib Figure.

Nothing here computes a statistic. Figures are laid out by matplotlib's constrained layout,
keyed by ``fig.legend`` and written by ``savefig``: PNG at :data:`PNG_DPI` (with its DPI in the
file) and PDF (vector), for papers. matplotlib is imported inside the functions (and only its
object-oriented API, never pyplot's global state), so importing the report package stays cheap
and figures can be drawn from any thread.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from ablate.metrics import METRICS
from ablate.report._tables import metric_label, time_unit

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ablate.report._figure_data import ParallelCoordinates

#: Print resolution of the PNGs: 200 dpi and up is what journals ask of line art with text.
PNG_DPI = 200
#: zlib level of the PNGs: 3 encodes the demo's figures in 0.17 s instead of 0.24 s at Pillow's
#: default 6, for files 15 % larger (level 1 is no faster: most of the time is row filtering).
PNG_COMPRESSION = 3
BASELINE_COLOR = "#d62728"
POINT_COLOR = "#1f77b4"
OTHER_COLOR = "#9aa5b1"
GPU_COLOR = "#2ca02c"
CPU_COLOR = "#7f7f7f"
GOOD, BAD = "#1a7f37", "#cf222e"
_STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "figure.titlesize": 11,
    "axes.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "svg.fonttype": "none",  # text stays text in SVG
    # Each figure picks its layout engine itself; none from the caller's rc comes back once
    # save_figure has solved the layout and removed the engine.
    "figure.autolayout": False,
    "figure.constrained_layout.use": False,
    # PDF text stays matplotlib's Type 3 glyphs (vector): TrueType (pdf.fonttype 42) had
    # fontTools parse the whole font again for every file, a fifth of the report's drawing time.
}
#: Interaction heatmaps print mean, std and n in each cell up to this many cells in all; beyond
#: it, the mean alone (the caption gives the range of n): smaller cells cannot hold three lines.
MAX_DETAILED_CELLS = 30
#: At most this many factors side by side in one row of the main-effects figure.
MAIN_EFFECTS_COLUMNS = 4


def report_style() -> AbstractContextManager[Any]:
    """The report's matplotlib style, for drawing and saving (rc_context: the caller's own
    matplotlib settings are left as they were)."""
    import matplotlib

    return matplotlib.rc_context(cast(Any, _STYLE))


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=PNG_DPI, layout="constrained")
    # An Agg canvas from the start: the layout and the PNG then measure text with one renderer
    # and share its cache of text sizes (a bare Figure gets a new renderer for each).
    FigureCanvasAgg(fig)
    return fig


def config_colors(config_hashes: Sequence[str]) -> dict[str, Any]:
    """One colour per configuration, the same in every plot (table order)."""
    import matplotlib

    n = len(config_hashes)
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"]
    if n <= 20:
        return {h: cmap(i) for i, h in enumerate(config_hashes)}
    return {h: cmap(i / max(n - 1, 1)) for i, h in enumerate(config_hashes)}


def axis_label(metric: str) -> str:
    """An axis label with the metric table's unit: accuracies are fractions of 1, losses are nats."""
    unit = METRICS.get(metric, where="report").unit if metric in METRICS else ""
    return metric_label(metric, unit or None)


def _wrap(text: str, width: int = 14) -> str:
    """A tick label on several lines: a quantile bin "0.001 – 0.01" breaks at its dash."""
    if " – " in text:
        low, high = text.split(" – ", 1)
        return f"{low} –\n{high}"
    return "\n".join(textwrap.wrap(text, width)) or text


def _key(fig: Figure, handles: Sequence[Any], labels: Sequence[str], title: str | None = None) -> None:
    """The figure's legend below its axes, in as many columns as fit its width."""
    longest = max((len(label) for label in labels), default=1)
    columns = max(1, min(len(labels), int(fig.get_figwidth() * 72 / (8 * 0.6 * longest + 40))))
    fig.legend(handles, labels, loc="outside lower center", ncols=columns, title=title,
               title_fontsize=8, alignment="left" if title else "center")


# ---------------------------------------------------------------------------- main effects
def plot_main_effects(
    effects: Mapping[str, pd.DataFrame], metric: str, *, baseline_levels: Mapping[str, str] | None = None
) -> Figure:
    """The metric per level of each factor, mean with its 95 % CI as error bars, one panel per
    factor on a shared y axis (at most :data:`MAIN_EFFECTS_COLUMNS` panels a row)."""
    factors = list(effects)
    cols = max(1, min(MAIN_EFFECTS_COLUMNS, len(factors)))
    rows = math.ceil(len(factors) / cols)
    levels = max((len(df) for df in effects.values()), default=1)
    fig = _figure(max(4.5, cols * max(2.2, 0.6 * levels + 0.8)), 0.6 + 2.6 * rows)
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False).ravel()
    for ax, factor in zip(axes, factors, strict=False):
        df = effects[factor]
        x = np.arange(len(df))
        mean = df["mean"].to_numpy(dtype=float)
        # A level with one value has no interval: its bar is just the point.
        low = np.nan_to_num(mean - df["ci_low"].to_numpy(dtype=float))
        high = np.nan_to_num(df["ci_high"].to_numpy(dtype=float) - mean)
        base = (baseline_levels or {}).get(factor)
        colors = [BASELINE_COLOR if base is not None and str(lv) == base else POINT_COLOR for lv in df["level"]]
        ax.plot(x, mean, color="#999999", linewidth=1, zorder=1)
        ax.errorbar(x, mean, yerr=[low, high], fmt="none", ecolor="#555555", elinewidth=1.5, capsize=4, zorder=2)
        ax.scatter(x, mean, c=colors, s=36, zorder=3)
        ax.set_xticks(x, [f"{_wrap(str(lv), 12)}\nn={k}" for lv, k in zip(df["level"], df["n"], strict=True)])
        ax.set_xlim(-0.5, len(df) - 0.5)
        ax.set_title(factor)
        ax.grid(axis="x", visible=False)
    for ax in axes[len(factors):]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel(axis_label(metric))
    title = f"Main effects on {metric_label(metric)}: model means, 95 % CI"
    if baseline_levels:
        title += "\n(red: the baseline's level; the other factors held at the baseline)"
    fig.suptitle(title)
    return fig


def interaction_cells_detailed(pairs: Sequence[tuple[str, str, pd.DataFrame]]) -> bool:
    """Whether the heatmaps print mean, std and n in their cells (else the mean alone)."""
    return sum(len(means) for _, _, means in pairs) <= MAX_DETAILED_CELLS


def plot_interactions(pairs: Sequence[tuple[str, str, pd.DataFrame]], metric: str, direction: str) -> Figure:
    """One heatmap per pair of factors, on one colour scale; cells show the mean (with std and n
    when there are few cells, see :data:`MAX_DETAILED_CELLS`)."""
    from matplotlib.colors import Normalize

    from ablate.report._trials import format_level

    grids = []
    for row_factor, col_factor, means in pairs:
        m = means.assign(_r=means[row_factor].map(format_level), _c=means[col_factor].map(format_level))
        order_r, order_c = list(dict.fromkeys(m["_r"])), list(dict.fromkeys(m["_c"]))
        # pivot sorts its labels; keep the study's level order instead.
        grids.append([m.pivot(index="_r", columns="_c", values=v).reindex(index=order_r, columns=order_c)
                      for v in ("mean", "std", "n")])
    every = np.concatenate([g[0].to_numpy(dtype=float).ravel() for g in grids])
    every = every[np.isfinite(every)]
    norm = Normalize(float(every.min()), float(every.max())) if every.size else Normalize(0, 1)
    detailed = interaction_cells_detailed(pairs)
    cell_w, cell_h = (0.8, 0.55) if detailed else (0.55, 0.32)
    widths = [max(1.6, cell_w * g[0].shape[1]) for g in grids]
    height = max(1.6, cell_h * max(g[0].shape[0] for g in grids))
    fig = _figure(sum(widths) + 1.2 * len(grids) + 1.2, height + 1.5)
    axes = fig.subplots(1, len(grids), squeeze=False, width_ratios=widths).ravel()
    cmap = "viridis" if direction == "maximize" else "viridis_r"
    image = None
    for ax, (row_factor, col_factor, _), (table, std, count) in zip(axes, pairs, grids, strict=True):
        values = table.to_numpy(dtype=float)
        image = ax.imshow(values, cmap=cmap, norm=norm, aspect="auto")
        for i, j in np.ndindex(values.shape):
            v = values[i, j]
            if not np.isfinite(v):
                continue
            s = std.iloc[i, j]
            text = f"{v:.3f}"
            if detailed:
                text += (f"\n± {s:.3f}" if np.isfinite(s) else "") + f"\nn={int(count.iloc[i, j])}"
            dark = (norm(v) < 0.5) == (direction == "maximize")
            ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color="white" if dark else "black")
        ax.set_xticks(range(values.shape[1]), [_wrap(str(c), 10) for c in table.columns])
        ax.set_yticks(range(values.shape[0]), [str(r) for r in table.index])
        ax.set_xlabel(col_factor)
        ax.set_ylabel(row_factor)
        ax.grid(False)
        ax.set_title(f"{row_factor} x {col_factor}")
    assert image is not None
    fig.colorbar(image, ax=list(axes), label=axis_label(metric), shrink=0.9)
    fig.suptitle(f"Interactions: {metric_label(metric)}, mean" + (" ± std" if detailed else ""))
    return fig


# ------------------------------------------------------------------------- learning curves
def plot_learning_curves(
    curves: pd.DataFrame, labels: Mapping[str, str], colors: Mapping[str, Any], *, key_title: str | None = None
) -> Figure:
    """Accuracy and loss per epoch: mean over seeds with a ±1 std band; train dashed, val solid.
    ``labels`` name the configurations in the key, under ``key_title``."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    kinds = [k for k in ("acc", "loss") if curves["series"].str.endswith(k).any()]
    fig = _figure(0.6 + 4.6 * len(kinds), 3.6 + 0.18 * math.ceil(len(labels) / 3))
    axes = fig.subplots(1, len(kinds), squeeze=False).ravel()
    by_config = dict(tuple(curves.groupby(["config_hash", "series"], sort=False)))
    for ax, kind in zip(axes, kinds, strict=True):
        for h in labels:
            for split, style in (("train", "--"), ("val", "-")):
                part = by_config.get((h, f"{split}_{kind}"))
                if part is None or part.empty:
                    continue
                e = part["epoch"].to_numpy(dtype=float)
                m = part["mean"].to_numpy(dtype=float)
                s = np.nan_to_num(part["std"].to_numpy(dtype=float))
                ax.plot(e, m, linestyle=style, color=colors[h], linewidth=1.5)
                ax.fill_between(e, m - s, m + s, color=colors[h], alpha=0.15, linewidth=0)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (fraction)" if kind == "acc" else "loss (nats)")
        ax.set_title("accuracy" if kind == "acc" else "loss")
    handles = [Line2D([], [], color=colors[h], linewidth=2) for h in labels]
    handles += [Line2D([], [], color="black"), Line2D([], [], color="black", linestyle="--")]
    _key(fig, handles, [*labels.values(), "val", "train"], key_title)
    fig.suptitle("Learning curves: mean over seeds, band = ±1 std")
    return fig


# ---------------------------------------------------------------------------------- seeds
def plot_seeds(view: pd.DataFrame, metric: str, labels: Mapping[str, str], *, key_title: str | None = None) -> Figure:
    """One row per configuration (``seed_view``'s rows, top to bottom): each done seed's value
    as a dot, the mean as a diamond with its 95 % t interval as a bar (none for one seed), and
    beside each row's name how many seeds are done of those planned and what still runs."""
    rows = len(view)
    fig = _figure(7.5, 1.3 + 0.22 * max(rows, 3))
    ax = fig.subplots()
    y = np.arange(rows)[::-1].astype(float)  # the first row on top
    base = view["is_baseline"].to_numpy(dtype=bool)
    # One artist per kind of mark, not per row: 40 rows of scatter calls cost half a second.
    counts = [len(v) for v in view["values"]]
    dots_x = np.concatenate([np.asarray(v, dtype=float) for v in view["values"]]) if sum(counts) else np.empty(0)
    dots_y = np.repeat(y, counts)
    dots_c = np.repeat(np.where(base, BASELINE_COLOR, POINT_COLOR), counts)
    ax.scatter(dots_x, dots_y, s=22, c=list(dots_c), alpha=0.7, linewidths=0, zorder=2)
    low, high = view["ci_low"].to_numpy(dtype=float), view["ci_high"].to_numpy(dtype=float)
    mean = view["mean"].to_numpy(dtype=float)
    has = np.isfinite(low)
    ax.hlines(y[has], low[has], high[has], color="#333333", linewidth=1.6, zorder=3)
    ax.vlines(np.r_[low[has], high[has]], np.r_[y[has], y[has]] - 0.18, np.r_[y[has], y[has]] + 0.18,
              color="#333333", linewidth=1.2, zorder=3)
    # Hollow: a single seed's dot shows through its mean.
    ax.scatter(mean[np.isfinite(mean)], y[np.isfinite(mean)], marker="D", s=34, facecolors="none",
               edgecolors="#333333", linewidths=1.2, zorder=4)
    # Each row's name with its seeds done of planned and what still runs: "16, basic · 2/3 seeds (1 running)".
    names = [f"{labels.get(h, str(h))} · {_seed_count(r)}" for h, r in zip(view["config_hash"], view.itertuples(), strict=True)]
    ax.set_yticks(y, names)
    ax.set_ylim(-0.7, rows - 0.3)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(axis_label(metric))
    if key_title:
        ax.set_ylabel(key_title.rstrip(":"))
    title = f"{metric_label(metric)} per seed: dots = seeds, diamond = mean, bar = 95 % t interval"
    if view["is_baseline"].any():
        title += "\n(red: the baseline)"
    fig.suptitle(title)
    return fig


def _seed_count(row: Any) -> str:
    text = f"{row.done}/{row.planned} seeds"
    waiting = [f"{getattr(row, s)} {s}" for s in ("running", "queued") if getattr(row, s)]
    if waiting:
        text += " (" + ", ".join(waiting) + ")"
    elif row.done == 1:
        text += " (n = 1: no interval)"
    return text


# -------------------------------------------------------------------- parallel coordinates
#: Tick labels on one parallel axis closer than this (fraction of the axis) are thinned out.
_MIN_TICK_GAP = 0.07


def _even_ticks(lo: float, hi: float, *, log: bool = False) -> list[tuple[float, str]]:
    """Round ticks between ``lo`` and ``hi``, at their positions on a [0, 1] axis scaled from
    lo to hi (log10 of them when ``log``), as matplotlib's locators choose them."""
    from matplotlib.ticker import LogLocator, MaxNLocator

    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [(0.5, f"{lo:.3g}")]
    if log:
        marks = [m for m in LogLocator(subs=(1.0, 2.0, 5.0)).tick_values(lo, hi) if lo * 0.999 <= m <= hi * 1.001]
        marks = marks if len(marks) <= 6 else [m for m in marks if math.isclose(math.log10(m) % 1, 0, abs_tol=1e-9)]
        span = math.log10(hi) - math.log10(lo)
        return [((math.log10(m) - math.log10(lo)) / span, f"{m:g}") for m in marks]
    marks = [m for m in MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
             if lo - 1e-12 * abs(hi) <= m <= hi + 1e-12 * abs(hi)]
    return [((m - lo) / (hi - lo), f"{m:.4g}") for m in marks]


def _evened(ticks: Sequence[tuple[float, str]]) -> list[tuple[float, str]]:
    """A numeric axis' ticks at round values: the data's ticks over a continuous range sit at
    evenly spaced but odd values (0.00123, 0.0457, ...); their first and last give the range."""
    if len(ticks) < 3:
        return list(ticks)
    try:
        values = [float(label) for _, label in ticks]
    except ValueError:
        return list(ticks)  # categories
    positions = np.array([p for p, _ in ticks])
    if not np.allclose(np.diff(positions), positions[1] - positions[0]) or positions[0] != 0 or positions[-1] != 1:
        return list(ticks)  # one tick per level: they are the levels themselves
    lo, hi = values[0], values[-1]
    # On a log axis the values step by a constant ratio, on a linear one by a constant difference.
    log = lo > 0 and not np.allclose(np.diff(values), values[1] - values[0], rtol=0.02)
    return _even_ticks(lo, hi, log=log)


def _thinned(ticks: Sequence[tuple[float, str]]) -> list[tuple[float, str]]:
    """Ticks whose labels would overlap dropped (always keeping the first and last)."""
    ordered = sorted(ticks)
    kept: list[tuple[float, str]] = []
    for i, tick in enumerate(ordered):
        last = i == len(ordered) - 1
        if kept and tick[0] - kept[-1][0] < _MIN_TICK_GAP:
            if not last or len(kept) == 1:
                continue
            kept.pop()
        kept.append(tick)
    return kept


def plot_parallel_coordinates(pc: ParallelCoordinates, direction: str) -> Figure:
    """One polyline per configuration across the factor axes, coloured by the metric (at most
    the configurations :func:`~ablate.report.parallel_coordinates` kept), with its colour bar."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    names = pc.axes
    fig = _figure(max(6.0, 1.7 * len(names) + 1.5), 4.2)
    ax = fig.subplots()
    values = pc.lines["value"].to_numpy(dtype=float)
    lo, hi = (float(np.nanmin(values)), float(np.nanmax(values))) if len(values) else (0.0, 1.0)
    norm = Normalize(lo, hi if hi > lo else lo + 1e-9)
    cmap = matplotlib.colormaps["viridis" if direction == "maximize" else "viridis_r"]
    x = np.arange(len(names))
    # Best lines drawn last, so they stay visible on top of the rest.
    order = np.argsort(values if direction == "maximize" else -values)
    ys = pc.lines[names].to_numpy(dtype=float)[order]
    segments = np.stack([np.broadcast_to(x, ys.shape), ys], axis=-1)
    alpha = 0.9 if len(values) <= 50 else 0.35
    ax.add_collection(LineCollection(list(segments), colors=cmap(norm(values[order])), linewidths=1.4, alpha=alpha))
    for j, name in enumerate(names):
        ax.axvline(j, color="#444444", linewidth=0.8, zorder=2)
        # The metric axis is scaled from its values' range: round ticks from that range.
        ticks = _even_ticks(lo, hi) if name == pc.metric and hi > lo else _evened(pc.ticks[name])
        for pos, label in _thinned(ticks):
            ax.plot([j - 0.03, j], [pos, pos], color="#444444", linewidth=0.8, zorder=2)
            ax.text(j + 0.04, pos, label, fontsize=7.5, va="center", ha="left", zorder=4,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    ax.set_xticks(x, [_wrap(n, 16) for n in names])
    ax.set_xlim(-0.2, len(names) - 0.5)
    ax.set_ylim(-0.06, 1.06)
    ax.set_yticks([])
    ax.grid(False)
    ax.spines[["left", "bottom"]].set_visible(False)
    ax.tick_params(axis="x", length=0)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=axis_label(pc.metric), pad=0.01)
    shown = f" ({len(pc.lines)} of {pc.total:,} configurations)" if pc.chosen else ""
    fig.suptitle(f"Parallel coordinates: one line per configuration{shown}, coloured by {metric_label(pc.metric)}")
    return fig


def plot_importance(importance: pd.DataFrame, metric: str) -> Figure:
    """Horizontal bars of fANOVA importance, most important on top."""
    df = importance.iloc[::-1]
    fig = _figure(6.0, 1.3 + 0.32 * len(df))
    ax = fig.subplots()
    bars = ax.barh(df["factor"], df["importance"], color=POINT_COLOR)
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in df["importance"]], padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, float(df["importance"].max()) * 1.15))
    ax.set_xlabel("importance (fraction of variance, fANOVA)")
    ax.grid(axis="y", visible=False)
    fig.suptitle(f"Factor importance for {metric_label(metric)} (Optuna fANOVA)")
    return fig


# ---------------------------------------------------------------------------------- cost
def plot_cost(
    cost: pd.DataFrame,
    metric: str,
    direction: str,
    colors: Mapping[str, Any],
    time_unit: tuple[str, float],
    *,
    labels: Mapping[str, str] | None = None,
    key_title: str | None = None,
) -> Figure:
    """Metric against training time (and images/s), Pareto-optimal configurations outlined.
    The configurations with a colour are named in the key by ``labels`` (default: the cost
    table's), under ``key_title``."""
    from matplotlib.lines import Line2D

    unit, scale = time_unit
    panels = [("time_s", f"training time per trial ({unit})", scale)]
    if "images_per_s" in cost.columns and cost["images_per_s"].notna().any():
        panels.append(("images_per_s", "throughput (images/s)", 1.0))
    marked = cost["config_hash"].isin(list(colors)).to_numpy()
    names = labels if labels is not None else dict(zip(cost["config_hash"], cost["label"], strict=True))
    shown = list(cost["config_hash"][marked])
    fig = _figure(0.8 + 4.3 * len(panels), 3.8 + 0.18 * math.ceil((len(shown) + 2) / 3))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False).ravel()
    point_colors = [colors[h] for h in shown]
    for ax, (col, label, s) in zip(axes, panels, strict=True):
        x = cost[col].to_numpy(dtype=float) / s
        y = cost["value"].to_numpy(dtype=float)
        ax.scatter(x[~marked], y[~marked], c=OTHER_COLOR, s=22, alpha=0.6, zorder=3)
        ax.scatter(x[marked], y[marked], c=point_colors, s=40, zorder=4)
        if col == "time_s":
            front = cost["pareto"].to_numpy(dtype=bool)
            order = np.argsort(x[front])
            ax.step(x[front][order], y[front][order], where="post", color="black", linewidth=1, zorder=2)
            ax.scatter(x[front], y[front], s=110, facecolors="none", edgecolors="black", zorder=5)
        ax.set_xlabel(label)
        ax.set_title(f"{metric_label(metric)} vs {label.split(' (')[0]}")
    axes[0].set_ylabel(axis_label(metric))
    handles = [Line2D([], [], marker="o", linestyle="", color=colors[h]) for h in shown]
    texts = [names[h] for h in shown]
    if not marked.all():
        handles.append(Line2D([], [], marker="o", linestyle="", color=OTHER_COLOR, alpha=0.6))
        texts.append("other configurations")
    handles.append(Line2D([], [], color="black", linewidth=1, marker="o", markersize=9, markerfacecolor="none"))
    texts.append("Pareto front")
    _key(fig, handles, texts, key_title)
    return fig


def plot_study_cost(rows: pd.DataFrame, studies: Sequence[str], metric: str) -> Figure:
    """Studies compared (``_compare``): the metric, mean with its 95 % interval, against mean
    training time per trial; one marker per configuration, coloured by study, each study's
    selected configuration ringed. ``rows``: :class:`~ablate.report._compare.StudyComparison` rows."""
    import matplotlib
    from matplotlib.lines import Line2D

    unit, scale = time_unit(rows["time_s"])
    cmap = matplotlib.colormaps["tab10"]
    fig = _figure(5.6, 4.4)
    ax = fig.subplots()
    handles, texts = [], []
    for i, study in enumerate(studies):
        part = rows[rows["study"] == study]
        x = part["time_s"].to_numpy(dtype=float) / scale
        y = part["mean"].to_numpy(dtype=float)
        low, high = part["ci_low"].to_numpy(dtype=float), part["ci_high"].to_numpy(dtype=float)
        has = ~np.isnan(low)
        color = cmap(i % 10)
        ax.errorbar(x[has], y[has], yerr=[y[has] - low[has], high[has] - y[has]], fmt="none", ecolor=color,
                    elinewidth=1, capsize=2, alpha=0.7, zorder=3)
        ax.scatter(x, y, color=color, s=28, zorder=4)
        chosen = part["selected"].to_numpy(dtype=bool)
        ax.scatter(x[chosen], y[chosen], s=130, facecolors="none", edgecolors=color, linewidths=1.6, zorder=5)
        handles.append(Line2D([], [], marker="o", linestyle="", color=color))
        texts.append(f"{study} ({len(part)} configuration{'s' if len(part) != 1 else ''})")
    if rows["time_s"].notna().any() and rows["time_s"].max() / max(rows["time_s"].min(), 1e-9) > 20:
        ax.set_xscale("log")  # minutes of a head-only fine-tune beside hours of a full one
    handles.append(Line2D([], [], marker="o", linestyle="", markersize=10, markerfacecolor="none",
                          markeredgecolor="black"))
    texts.append("best by validation")
    ax.set_xlabel(f"training time per trial ({unit})")
    ax.set_ylabel(axis_label(metric))
    ax.set_title(f"{metric_label(metric)} vs training time")
    _key(fig, handles, texts)
    return fig


def plot_compute_hours(hours: pd.DataFrame) -> Figure:
    """Device time per factor level, GPU and CPU stacked: a panel per factor, one bar per level,
    in a unit chosen by the size of the bars (seconds, minutes or hours)."""
    from matplotlib.patches import Patch

    factors = list(dict.fromkeys(hours["factor"]))
    # Hours per (factor, level) and device, in the data function's order of levels.
    table = hours.pivot_table(index=["factor", "level"], columns="device", values="hours", aggfunc="sum", sort=False)
    table = table.fillna(0.0)
    used = [d for d in ("GPU", "CPU") if d in table.columns and table[d].any()] or ["CPU"]
    unit, scale = time_unit(table[used].sum(axis=1) * 3600.0)
    counts = [len(table.loc[[f]]) for f in factors]
    fig = _figure(6.4, 1.3 + 0.24 * sum(counts) + 0.35 * len(factors))
    axes = fig.subplots(len(factors), 1, sharex=True, squeeze=False, height_ratios=counts).ravel()
    for ax, factor in zip(axes, factors, strict=True):
        part = table.loc[[factor]]
        levels = [str(level) for _, level in part.index]
        left = np.zeros(len(part))
        for device in used:
            widths = part[device].to_numpy(dtype=float) * 3600.0 / scale if device in part else np.zeros(len(part))
            ax.barh(levels, widths, left=left, height=0.8, color=GPU_COLOR if device == "GPU" else CPU_COLOR)
            left += widths
        ax.invert_yaxis()  # first level on top
        ax.set_ylabel(factor, rotation=0, ha="right", va="center", fontweight="bold")
        ax.grid(axis="y", visible=False)
    axes[-1].set_xlabel(f"device time ({unit})")
    fig.legend([Patch(color=GPU_COLOR if d == "GPU" else CPU_COLOR) for d in used], [f"{d} time" for d in used],
               loc="outside lower center", ncols=len(used))
    fig.suptitle("Compute spent per factor level (all trials that ran, failed included)")
    return fig


# ---------------------------------------------------------------------------- predictions
def _as_rgb(image: np.ndarray) -> np.ndarray:
    """An image as floats in [0, 1] with 3 channels (grey repeated), for the mosaic."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)  # channels first, as torch stores them
    if img.dtype == np.uint8:
        img = img.astype(float) / 255.0
    else:  # floats of any range: stretch to [0, 1]
        lo, hi = float(img.min()), float(img.max())
        img = (img.astype(float) - lo) / (hi - lo or 1.0)
    if img.ndim == 2:
        img = img[..., None]
    return np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img[..., :3]


def plot_predictions(
    images: np.ndarray,
    labels: np.ndarray,
    preds: np.ndarray,
    class_names: Sequence[str],
    *,
    title: str,
    confusion: np.ndarray | None = None,
    confusion_title: str = "confusion matrix",
    columns: int = 10,
    rows: int = 3,
) -> Figure:
    """A grid of images with true and predicted labels (green right, red wrong), beside the
    confusion matrix (rows: true class) when there is one. The images are one mosaic in one
    axes: 30 small axes would cost more than the rest of the report."""
    n = min(len(images), columns * rows)
    columns = min(columns, max(n, 1)) if confusion is None else min(columns, 6)
    rows = max(1, math.ceil(n / columns))
    n = min(n, columns * rows)
    tiles = [_as_rgb(images[k]) for k in range(n)]
    side = max((max(t.shape[:2]) for t in tiles), default=8)
    # Small images (8 px digits) are enlarged by whole pixels, with a white gap and label room.
    scale = max(1, math.ceil(64 / side))
    tiles = [np.repeat(np.repeat(t, scale, axis=0), scale, axis=1) for t in tiles]
    h = max((t.shape[0] for t in tiles), default=8)
    w = max((t.shape[1] for t in tiles), default=8)
    label_px, gap_px = round(0.55 * h), round(0.12 * w)
    cell_h, cell_w = h + label_px, w + gap_px
    mosaic = np.ones((rows * cell_h, columns * cell_w, 3))
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        y0, x0 = r * cell_h + label_px, c * cell_w
        mosaic[y0 : y0 + tile.shape[0], x0 : x0 + tile.shape[1]] = tile
    grid_w = 0.95 * columns
    grid_h = grid_w * mosaic.shape[0] / mosaic.shape[1]
    matrix_w = 0.0 if confusion is None else min(max(3.0, 0.32 * len(class_names) + 1.4), 9.0)
    fig = _figure(grid_w + matrix_w + 0.3, max(grid_h, matrix_w - 0.4) + 0.6)
    if confusion is None:
        ax = fig.subplots()
    else:
        ax, cax = fig.subplots(1, 2, width_ratios=[grid_w, matrix_w])
    # As RGBA bytes: matplotlib resamples a float image in float64, several times slower, and
    # adds the alpha channel of an RGB one by stacking float64 ones (a quarter of its drawing).
    rgba = np.dstack([(mosaic * 255).round().astype(np.uint8), np.full(mosaic.shape[:2], 255, np.uint8)])
    ax.imshow(rgba, interpolation="nearest")
    ax.set_axis_off()
    names = [str(c) for c in class_names]

    def name(i: int) -> str:
        return names[i] if 0 <= i < len(names) else str(i)

    for k in range(n):
        r, c = divmod(k, columns)
        ok = int(labels[k]) == int(preds[k])
        ax.text(c * cell_w + w / 2, r * cell_h + label_px - 1, f"true: {name(int(labels[k]))[:12]}\npred: {name(int(preds[k]))[:12]}",
                fontsize=6.5, color=GOOD if ok else BAD, ha="center", va="bottom")
    if confusion is not None:
        _confusion_matrix(cax, np.asarray(confusion), names, confusion_title)
    fig.suptitle(title)
    return fig


def _confusion_matrix(ax: Axes, counts: np.ndarray, names: Sequence[str], title: str) -> None:
    """Counts of (true, predicted) classes, shaded by the share of each true class."""
    totals = counts.sum(axis=1, keepdims=True)
    share = counts / np.where(totals == 0, 1, totals)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    k = len(counts)
    if k <= 20:  # beyond, the numbers are too small to read: the shading says it
        for i, j in np.ndindex(counts.shape):
            if counts[i, j]:
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=6.5 if k > 10 else 7.5,
                        color="white" if share[i, j] > 0.5 else "black")
    ticks = range(k) if k <= 20 else range(0, k, math.ceil(k / 20))
    ax.set_xticks(list(ticks), [names[i][:10] for i in ticks], rotation=90 if k > 10 else 0)
    ax.set_yticks(list(ticks), [names[i][:10] for i in ticks])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.grid(False)
    ax.set_title(title)


# ----------------------------------------------------------------------------------- saving
def save_figure(fig: Figure, out: Path, name: str, *, vector: Sequence[str] = ()) -> Path:
    """Write ``name.png`` at :data:`PNG_DPI` (the DPI recorded in the file) and the ``vector``
    formats asked for (``pdf``, ``svg``) into ``out``; return the PNG's path."""
    engine = fig.get_layout_engine()
    if engine is not None:
        # The layout solved once, at the PNG's resolution, then the engine removed: savefig
        # would otherwise run a whole draw of its own just to solve it (for every format), and
        # that draw cost as much as the drawing that writes the pixels. Same pixels either way.
        fig.set_dpi(PNG_DPI)  # text measured at the resolution it is drawn at
        engine.execute(fig)
        fig.set_layout_engine(None)
    png = out / f"{name}.png"
    fig.savefig(png, dpi=PNG_DPI, facecolor="white", pil_kwargs={"compress_level": PNG_COMPRESSION})
    for ext in vector:
        fig.savefig(out / f"{name}.{ext}", facecolor="white")
    return png
