"""Drawing functions: each takes what a data function returned and returns a matplotlib Figure.

Nothing here computes a statistic. matplotlib is imported inside the functions (and only its
object-oriented API, never pyplot's global state), so importing the report package stays cheap
and figures can be drawn from any thread.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from ablate.report._tables import metric_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ablate.report._data import ParallelCoordinates

PNG_DPI = 100
BASELINE_COLOR = "#d62728"
POINT_COLOR = "#1f77b4"
OTHER_COLOR = "#9aa5b1"
GPU_COLOR = "#2ca02c"
CPU_COLOR = "#7f7f7f"
GOOD, BAD = "#1a7f37", "#cf222e"
FONT_PT = 9
TITLE_PT = 11
_STYLE: dict[str, Any] = {
    "font.size": FONT_PT,
    "axes.titlesize": 10,
    "figure.titlesize": TITLE_PT,
    "axes.labelsize": FONT_PT,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "svg.fonttype": "none",
    # FreeType's hinting made every label a third slower to render, for no visible gain at
    # the report's sizes.
    "text.hinting": "no_hinting",
    # A fixed title position: the automatic one measured every tick label of the axes again to
    # dodge top tick labels, which these plots never have.
    "axes.titley": 1.0,
    # Default colours spelled out: matplotlib resolves its "C0" defaults through the property
    # cycler on every line and patch made, 1.4 ms each (a seventh of the drawing time).
    "lines.color": POINT_COLOR,
    "patch.facecolor": POINT_COLOR,
    "patch.edgecolor": "black",
}
#: Interaction heatmaps print mean, std and n in each cell up to this many cells in all; beyond
#: it, the mean alone (the caption gives the range of n), as 65 three-line cells cost a third
#: of a second to draw and are too small to read.
MAX_DETAILED_CELLS = 30

# Figures are laid out by hand, in inches, from the measured widths of their labels:
# matplotlib's constrained layout measured every text twice before drawing it, a third of each
# figure's time. A line of text is 1.3 em high.
_LINE_EM = 1.3


def report_style() -> AbstractContextManager[Any]:
    """The report's matplotlib style, for drawing and saving (rc_context: the caller's own
    matplotlib settings are left as they were)."""
    import matplotlib

    return matplotlib.rc_context(cast(Any, _STYLE))


def _text_width(texts: Sequence[str], pt: float = FONT_PT) -> float:
    """Inches taken by the widest line of ``texts`` at ``pt`` points."""
    return max((_line_width(line, pt) for t in texts for line in str(t).split("\n")), default=0.0)


@functools.lru_cache(maxsize=4096)
def _line_width(line: str, pt: float) -> float:
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    width, _, _ = text_to_path.get_text_width_height_descent(line, FontProperties(size=pt), ismath=False)
    return float(width) / 72


def _text_height(lines: int, pt: float = FONT_PT) -> float:
    """Inches taken by ``lines`` lines of text at ``pt`` points."""
    return lines * pt * _LINE_EM / 72


def _lines(texts: Sequence[str]) -> int:
    return max((str(t).count("\n") + 1 for t in texts), default=1)


def _title_lines(text: str, width_in: float, pt: float = TITLE_PT) -> str:
    """``text`` wrapped, word by word, to lines that fit a figure ``width_in`` inches wide."""
    lines: list[str] = []
    for word in text.split():
        if lines and _text_width([f"{lines[-1]} {word}"], pt) <= width_in - 0.3:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return "\n".join(lines) or text


def _panels(
    n: int,
    cols: int,
    width: float | Sequence[float],
    height: float,
    *,
    left: float,
    right: float,
    top: float,
    bottom: float,
    wspace: float = 0.0,
    hspace: float = 0.0,
    sharey: bool = False,
) -> tuple[Figure, list[Any]]:
    """A figure holding ``n`` axes in rows of ``cols``, every size in inches: panels of
    ``width`` x ``height`` (a width per column if a list), margins and gaps around them."""
    from matplotlib.figure import Figure

    rows = max(1, math.ceil(n / cols))
    widths = list(width) if isinstance(width, Sequence) else [float(width)] * cols
    fig_w = left + sum(widths) + wspace * (cols - 1) + right
    fig_h = top + rows * height + hspace * (rows - 1) + bottom
    fig = Figure(figsize=(fig_w, fig_h))
    axes: list[Any] = []
    for i in range(n):
        r, c = divmod(i, cols)
        x = left + sum(widths[:c]) + c * wspace
        y = fig_h - top - (r + 1) * height - r * hspace
        share = axes[0] if sharey and axes else None
        ax = fig.add_axes((x / fig_w, y / fig_h, widths[c] / fig_w, height / fig_h), sharey=share)
        if share is not None and c > 0:
            ax.tick_params(labelleft=False)
        axes.append(ax)
    return fig, axes


def _suptitle(fig: Figure, text: str, top_in: float = 0.08) -> None:
    """The figure's title, ``top_in`` inches below its top edge (already wrapped to fit)."""
    fig.suptitle(text, y=1 - top_in / fig.get_figheight(), va="top")


def _title_height(text: str) -> float:
    return _text_height(text.count("\n") + 1, TITLE_PT) + 0.16


#: A key entry: its label and the Line2D properties of its sample (a line, a marker alone, or
#: a thick line standing for a filled area).
KeyEntry = tuple[str, dict[str, Any]]
_KEY_PT = 8
_KEY_SAMPLE = 0.3  # inches of line drawn as an entry's sample


def _key_layout(entries: Sequence[KeyEntry], width_in: float, title: str | None = None) -> tuple[int, float, float]:
    """Columns, column width and height (inches) of a key fitting ``width_in``."""
    col_w = _KEY_SAMPLE + 0.1 + _text_width([label for label, _ in entries], _KEY_PT) + 0.25
    ncols = max(1, min(len(entries), int(width_in // col_w)))
    rows = math.ceil(len(entries) / ncols) + (1 if title else 0)
    return ncols, col_w, rows * _text_height(1, _KEY_PT) * 1.1 + 0.1


def _draw_key(fig: Figure, entries: Sequence[KeyEntry], width: float, *, top: float, center: float | None = None,
              right: float | None = None, title: str | None = None) -> None:
    """A legend drawn as plain lines and texts, laid out by :func:`_key_layout` for ``width``
    inches, ``top`` inches above the figure's bottom edge, centred on ``center`` or ending at
    ``right`` (inches from the left), under an optional ``title`` line. Matplotlib's own
    legend measured and boxed every label before drawing it: 40 % of the time of a figure
    with a long legend."""
    from matplotlib.lines import Line2D

    ncols, col_w, _ = _key_layout(entries, width)
    rows = math.ceil(len(entries) / ncols)
    row_h = _text_height(1, _KEY_PT) * 1.1
    left = (center - ncols * col_w / 2) if center is not None else (right or fig.get_figwidth()) - ncols * col_w
    inches = fig.dpi_scale_trans
    if title:
        fig.text(left, top - 0.05 - 0.5 * row_h, title, transform=inches, va="center", ha="left", fontsize=_KEY_PT,
                 color="#444444")
        top -= row_h
    for i, (label, style) in enumerate(entries):
        c, r = divmod(i, rows)  # column by column, as matplotlib's legend fills them
        x, y = left + c * col_w, top - 0.05 - (r + 0.5) * row_h
        xs = [x + _KEY_SAMPLE / 2] if style.get("linestyle") == "" else [x, x + _KEY_SAMPLE]
        fig.add_artist(Line2D(xs, [y] * len(xs), transform=inches, **style))
        fig.text(x + _KEY_SAMPLE + 0.1, y, label, transform=inches, va="center", ha="left", fontsize=_KEY_PT)


def config_colors(config_hashes: Sequence[str]) -> dict[str, Any]:
    """One colour per configuration, the same in every plot (table order)."""
    import matplotlib

    n = len(config_hashes)
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"]
    if n <= 20:
        return {h: cmap(i) for i, h in enumerate(config_hashes)}
    return {h: cmap(i / max(n - 1, 1)) for i, h in enumerate(config_hashes)}


def axis_label(metric: str) -> str:
    """An axis label with its unit: accuracies are fractions of 1, losses are nats."""
    name = metric_label(metric)
    if "acc" in metric or "top5" in metric:
        return f"{name} (fraction)"
    if "loss" in metric:
        return f"{name} (nats)"
    return name


def _wrap(text: str, width: int = 14) -> str:
    """A tick label on several lines: a quantile bin "0.001 – 0.01" breaks at its dash."""
    import textwrap

    if " – " in text:
        low, high = text.split(" – ", 1)
        return f"{low} –\n{high}"
    return "\n".join(textwrap.wrap(text, width)) or text


def _category_labels(ax: Any, positions: Sequence[float], labels: Sequence[str], axis: str = "x") -> None:
    """Labels at category positions along an axis, drawn as plain texts where tick labels
    would be, with no tick objects (each tick is five artists: 1.5 ms to build, as much to
    draw, for a mark nobody needs beside a named category)."""
    from matplotlib.transforms import ScaledTranslation

    pad = (plt_rc(f"{axis}tick.major.size") + plt_rc(f"{axis}tick.major.pad")) / 72
    inches = ax.get_figure().dpi_scale_trans
    if axis == "x":
        ax.set_xticks([])
        where = ax.get_xaxis_transform() + ScaledTranslation(0, -pad, inches)
        for x, label in zip(positions, labels, strict=True):
            ax.text(x, 0, label, transform=where, ha="center", va="top", fontsize=FONT_PT)
    else:
        ax.set_yticks([])
        where = ax.get_yaxis_transform() + ScaledTranslation(-pad, 0, inches)
        for y, label in zip(positions, labels, strict=True):
            ax.text(0, y, label, transform=where, ha="right", va="center", fontsize=FONT_PT)


#: Left margin of a panel whose y axis shows metric values: tick labels of up to 6 characters
#: and the axis label.
_Y_AXIS = 0.1 + 0.45 + _text_height(1) + 0.12


# ---------------------------------------------------------------------------- main effects
#: Main-effect rows are at most this wide (inches): factors are packed into rows of one axes each.
MAIN_EFFECTS_ROW = 12.0
#: Gap between two factors on a main-effects row, in level widths.
_FACTOR_GAP = 0.8


def plot_main_effects(
    effects: Mapping[str, pd.DataFrame], metric: str, *, baseline_levels: Mapping[str, str] | None = None
) -> Figure:
    """The metric per level of each factor, mean with its 95 % CI as error bars, factors side
    by side on one shared y axis (a row of axes, not an axes per factor: half the drawing)."""
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    ticks = {f: [f"{_wrap(lv, 12)}\nn={k}" for lv, k in zip(df["level"], df["n"], strict=True)]
             for f, df in effects.items()}
    every = [t for labels in ticks.values() for t in labels]
    per_level = max(0.5, _text_width(every) + 0.12)
    # Pack factors into rows, in order, as many as fit MAIN_EFFECTS_ROW inches.
    rows: list[list[str]] = []
    units: list[float] = []
    for f, df in effects.items():
        width = len(df) + (_FACTOR_GAP if rows and rows[-1] else 0.0)
        if rows and (units[-1] + width) * per_level <= MAIN_EFFECTS_ROW:
            rows[-1].append(f)
            units[-1] += width
        else:
            rows.append([f])
            units.append(float(len(df)))
    # Rows at least 4 in wide, so a study of two 2-level factors still gets a readable plot.
    per_level = max(per_level, 4.0 / max(units, default=1.0))
    tick_h = _text_height(_lines(every)) + 0.12
    factor_h = _text_height(1, 10) + 0.1
    row_w = max(units, default=1.0) * per_level
    title = f"Main effects on {metric_label(metric)}: mean and 95 % CI over trials"
    if baseline_levels:
        title += " (red: the baseline's level; the other factors held at the baseline)"
    title = _title_lines(title, _Y_AXIS + row_w + 0.2)
    top, height, gap = _title_height(title) + factor_h, 2.3, tick_h + factor_h + 0.15
    fig_w, fig_h = _Y_AXIS + row_w + 0.2, top + len(rows) * height + (len(rows) - 1) * gap + tick_h + 0.05
    fig = Figure(figsize=(fig_w, fig_h))
    first = None
    for r, factors in enumerate(rows):
        y0 = fig_h - top - (r + 1) * height - r * gap
        ax = fig.add_axes((_Y_AXIS / fig_w, y0 / fig_h, units[r] * per_level / fig_w, height / fig_h), sharey=first)
        first = first or ax
        # One artist per kind for the whole row (lines, CI bars, caps, points): errorbar() and a
        # scatter per factor built a dozen artists each.
        start, positions, labels = 0.0, [], []
        lines, bars, caps, points, colors = [], [], [], [], []
        for i, factor in enumerate(factors):
            df = effects[factor]
            x = start + np.arange(len(df))
            mean = df["mean"].to_numpy(dtype=float)
            # A level with one value has no interval: its bar is just the point.
            low = np.where(np.isnan(df["ci_low"].to_numpy(dtype=float)), mean, df["ci_low"].to_numpy(dtype=float))
            high = np.where(np.isnan(df["ci_high"].to_numpy(dtype=float)), mean, df["ci_high"].to_numpy(dtype=float))
            base = (baseline_levels or {}).get(factor)
            colors += [BASELINE_COLOR if base is not None and lv == base else POINT_COLOR for lv in df["level"]]
            lines.append(np.column_stack([x, mean]))
            bars += [[(xi, lo), (xi, hi)] for xi, lo, hi in zip(x, low, high, strict=True)]
            caps += [(xi, lo) for xi, lo in zip(x, low, strict=True)] + [(xi, hi) for xi, hi in zip(x, high, strict=True)]
            points.append(np.column_stack([x, mean]))
            ax.text(x.mean(), 1.0, factor, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=10)
            if i:
                ax.axvline(start - (_FACTOR_GAP + 1) / 2, color="#bbbbbb", linewidth=0.8)
            positions += x.tolist()
            labels += ticks[factor]
            start = x[-1] + 1 + _FACTOR_GAP
        ax.add_collection(LineCollection(lines, colors="#999999", linewidths=1, zorder=1))
        ax.add_collection(LineCollection(bars, colors="#555555", linewidths=1.5, zorder=2))
        cap_xy = np.asarray(caps, dtype=float)
        ax.plot(cap_xy[:, 0], cap_xy[:, 1], linestyle="", marker="_", markersize=8, markeredgewidth=1.5,
                color="#555555", zorder=2)
        xy = np.concatenate(points)
        ax.scatter(xy[:, 0], xy[:, 1], c=colors, s=36, zorder=3)
        _category_labels(ax, positions, labels)
        ax.set_xlim(-0.5, start - _FACTOR_GAP - 0.5)
        ax.set_ylabel(axis_label(metric))
    fig.suptitle(title, y=1 - 0.08 / fig_h, va="top")
    return fig


def interaction_cells_detailed(pairs: Sequence[tuple[str, str, pd.DataFrame]]) -> bool:
    """Whether the heatmaps print mean, std and n in their cells (else the mean alone)."""
    return sum(len(means) for _, _, means in pairs) <= MAX_DETAILED_CELLS


def plot_interactions(pairs: Sequence[tuple[str, str, pd.DataFrame]], metric: str, direction: str) -> Figure:
    """One heatmap per pair of factors, on one colour scale; cells show the mean (with std and n
    when there are few cells, see :data:`MAX_DETAILED_CELLS`)."""
    from matplotlib.colors import Normalize

    from ablate.report._data import format_level

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
    col_labels = [[_wrap(str(c), 10) for c in g[0].columns] for g in grids]
    row_labels = [[str(r) for r in g[0].index] for g in grids]
    cell_w = max(0.62 if detailed else 0.5, max(_text_width(c) for c in col_labels) + 0.1)
    cell_h = 0.5 if detailed else 0.3
    widths = [max(1.0, cell_w * g[0].shape[1]) for g in grids]
    widths = [w * max(1.0, 3.0 / sum(widths)) for w in widths]  # 3 in of heatmaps at least
    height = max(1.2, cell_h * max(g[0].shape[0] for g in grids))
    y_labels = max(_text_width(r) for r in row_labels) + 0.1 + _text_height(1) + 0.15
    tick_h = _text_height(_lines([c for cs in col_labels for c in cs])) + 0.12
    colorbar = 0.15 + 0.12 + 0.5 + _text_height(1) + 0.1
    title = _title_lines(f"Interactions: {metric_label(metric)}, mean" + (" ± std" if detailed else ""),
                         y_labels + sum(widths) + y_labels * (len(grids) - 1) + colorbar)
    panel_title = _text_height(1, 10) + 0.12
    fig, axes = _panels(len(grids), len(grids), widths, height, left=y_labels, right=colorbar,
                        top=_title_height(title) + panel_title, bottom=tick_h + _text_height(1) + 0.1,
                        wspace=y_labels)
    cmap = "viridis" if direction == "maximize" else "viridis_r"
    image = None
    for ax, (row_factor, col_factor, _), (table, std, count), cols in zip(axes, pairs, grids, col_labels, strict=True):
        values = table.to_numpy(dtype=float)
        image = ax.imshow(values, cmap=cmap, norm=norm, aspect="auto")
        for i, j in np.ndindex(values.shape):
            v = values[i, j]
            if not np.isfinite(v):
                continue
            s = std.iloc[i, j]
            if detailed:
                text = f"{v:.3f}" + (f"\n± {s:.3f}" if np.isfinite(s) else "") + f"\nn={int(count.iloc[i, j])}"
            else:
                text = f"{v:.3f}"
            dark = (norm(v) < 0.5) == (direction == "maximize")
            ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color="white" if dark else "black")
        ax.set_xticks(range(values.shape[1]), cols)
        ax.set_yticks(range(values.shape[0]), [str(r) for r in table.index])
        ax.set_xlabel(col_factor)
        ax.set_ylabel(row_factor)
        ax.grid(False)
        ax.set_title(f"{row_factor} x {col_factor}")
    assert image is not None
    last = axes[-1].get_position()
    cax = fig.add_axes((last.x1 + 0.15 / fig.get_figwidth(), last.y0, 0.12 / fig.get_figwidth(), last.height))
    fig.colorbar(image, cax=cax, label=axis_label(metric))
    _suptitle(fig, title)
    return fig


# ------------------------------------------------------------------------- learning curves
def plot_learning_curves(
    curves: pd.DataFrame, labels: Mapping[str, str], colors: Mapping[str, Any], *, key_title: str | None = None
) -> Figure:
    """Accuracy and loss per epoch: mean over seeds with a ±1 std band; train dashed, val solid.
    ``labels`` name the configurations in the key, under ``key_title``."""
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.ticker import MaxNLocator

    kinds = [k for k in ("acc", "loss") if curves["series"].str.endswith(k).any()]
    width, gap = 4.4, _Y_AXIS + 0.2
    fig_w = _Y_AXIS + len(kinds) * width + gap * (len(kinds) - 1) + 0.2
    entries: list[KeyEntry] = [(labels[h], {"color": colors[h], "linewidth": 2}) for h in labels]
    entries += [("val", {"color": "black"}), ("train", {"color": "black", "linestyle": "--"})]
    key_h = _key_layout(entries, fig_w - 0.2, key_title)[2]
    title = _title_lines("Learning curves: mean over seeds, band = ±1 std", fig_w)
    panel_title = _text_height(1, 10) + 0.12
    fig, axes = _panels(len(kinds), len(kinds), width, 2.8, left=_Y_AXIS, right=0.2, top=_title_height(title) + panel_title,
                        bottom=_text_height(2) + 0.25 + key_h, wspace=gap)
    by_config = dict(tuple(curves.groupby(["config_hash", "series"], sort=False)))
    for ax, kind in zip(axes, kinds, strict=True):
        # One collection per line style and one for the bands: a Line2D and a fill_between
        # per curve cost 3 ms each to build and draw.
        bands, band_colors = [], []
        for split, style in (("train", "--"), ("val", "-")):
            lines, line_colors = [], []
            for h in labels:
                part = by_config.get((h, f"{split}_{kind}"))
                if part is None or part.empty:
                    continue
                e = part["epoch"].to_numpy(dtype=float)
                m = part["mean"].to_numpy(dtype=float)
                s = np.nan_to_num(part["std"].to_numpy(dtype=float))
                lines.append(np.column_stack([e, m]))
                line_colors.append(colors[h])
                bands.append(np.concatenate([np.column_stack([e, m - s]), np.column_stack([e, m + s])[::-1]]))
                band_colors.append(colors[h])
            if lines:
                ax.add_collection(LineCollection(lines, colors=line_colors, linestyles=style, linewidths=1.5, zorder=2),
                                  autolim=True)
        if bands:
            ax.add_collection(PolyCollection(bands, facecolors=band_colors, alpha=0.15, linewidths=0, zorder=1),
                              autolim=True)
        ax.autoscale_view()
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (fraction)" if kind == "acc" else "loss (nats)")
        ax.set_title("accuracy" if kind == "acc" else "loss")
    _draw_key(fig, entries, fig_w - 0.2, top=key_h, center=fig.get_figwidth() / 2, title=key_title)
    _suptitle(fig, title)
    return fig


# -------------------------------------------------------------------- parallel coordinates
def plot_parallel_coordinates(pc: ParallelCoordinates, direction: str) -> Figure:
    """One polyline per configuration across the factor axes, coloured by the metric (at most
    the configurations :func:`~ablate.report.parallel_coordinates` kept)."""
    import matplotlib
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.colors import Normalize

    axes_names = pc.axes
    names = [_wrap(n, 16) for n in axes_names]
    width = max(5.0, 1.8 * len(axes_names))
    shown = f" ({len(pc.lines)} of {pc.total:,} configurations)" if pc.chosen else ""
    # No colour bar: the last axis is the metric itself, each line ends at its value there.
    title = _title_lines(f"Parallel coordinates: one line per configuration{shown}, coloured by "
                         f"{metric_label(pc.metric)} (the last axis)", 0.2 + width + 0.3)
    fig, (ax,) = _panels(1, 1, width, 3.0, left=0.2, right=0.3, top=_title_height(title) + 0.05,
                         bottom=_text_height(_lines(names)) + 0.15)
    values = pc.lines["value"].to_numpy(dtype=float)
    norm = Normalize(float(np.nanmin(values)), float(np.nanmax(values)) if len(values) else 1.0)
    cmap = matplotlib.colormaps["viridis" if direction == "maximize" else "viridis_r"]
    x = np.arange(len(axes_names))
    # Best lines drawn last, so they stay visible on top of the rest.
    order = np.argsort(values if direction == "maximize" else -values)
    ys = pc.lines[axes_names].to_numpy(dtype=float)[order]
    segments = np.stack([np.broadcast_to(x, ys.shape), ys], axis=-1)
    alpha = 0.9 if len(values) <= 50 else 0.35
    ax.add_collection(LineCollection(list(segments), colors=cmap(norm(values[order])), linewidths=1.4, alpha=alpha))
    xlim, ylim = (-0.2, len(axes_names) - 0.5), (-0.08, 1.08)
    # Labels on white boxes over the lines: the boxes are one collection sized from the measured
    # labels (a box drawn by each text cost a millisecond per label).
    per_in = ((xlim[1] - xlim[0]) / width, (ylim[1] - ylim[0]) / 3.0)
    pad, label_h = 0.03, _text_height(1, 7.5) * 0.8
    boxes = []
    for j, name in enumerate(axes_names):
        ax.axvline(j, color="#444444", linewidth=0.8)
        for pos, label in pc.ticks[name]:
            ax.text(j + 0.04, pos, label, fontsize=7.5, va="center", ha="left", zorder=4)
            x0, x1 = j + 0.04 - pad * per_in[0], j + 0.04 + (_text_width([label], 7.5) + pad) * per_in[0]
            y0, y1 = pos - (label_h / 2 + pad) * per_in[1], pos + (label_h / 2 + pad) * per_in[1]
            boxes.append([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    ax.add_collection(PolyCollection(boxes, facecolors="white", edgecolors="none", alpha=0.8, zorder=3))
    ax.set_xticks(x, names)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_yticks([])
    ax.grid(False)
    ax.spines["left"].set_visible(False)
    _suptitle(fig, title)
    return fig


def plot_importance(importance: pd.DataFrame, metric: str) -> Figure:
    """Horizontal bars of fANOVA importance, most important on top."""
    df = importance.iloc[::-1]
    title = _title_lines(f"Factor importance for {metric_label(metric)} (Optuna fANOVA)", 6.0)
    left = _text_width(list(df["factor"])) + 0.25
    fig, (ax,) = _panels(1, 1, 4.6, 0.32 * len(df) + 0.2, left=left, right=0.4, top=_title_height(title),
                         bottom=_text_height(2) + 0.2)
    bars = ax.barh(df["factor"], df["importance"], color=POINT_COLOR)
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in df["importance"]], padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, float(df["importance"].max()) * 1.15))
    ax.set_xlabel("importance (fraction of variance, fANOVA)")
    _suptitle(fig, title)
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
    unit, scale = time_unit
    panels = [("time_s", f"training time per trial ({unit})", scale)]
    if "images_per_s" in cost.columns and cost["images_per_s"].notna().any():
        panels.append(("images_per_s", "throughput (images/s)", 1.0))
    marked = cost["config_hash"].isin(list(colors)).to_numpy()
    names = labels if labels is not None else dict(zip(cost["config_hash"], cost["label"], strict=True))
    entries: list[KeyEntry] = [(names[h], {"marker": "o", "linestyle": "", "color": colors[h]})
                               for h in cost["config_hash"][marked]]
    if not marked.all():
        entries.append(("other configurations", {"marker": "o", "linestyle": "", "color": OTHER_COLOR, "alpha": 0.6}))
    entries.append(("Pareto front", {"color": "black", "linewidth": 1, "marker": "o", "markersize": 9,
                                     "markerfacecolor": "none", "markevery": [1]}))
    width, gap = 4.2, 0.3
    fig_w = _Y_AXIS + len(panels) * width + gap * (len(panels) - 1) + 0.2
    key_h = _key_layout(entries, fig_w - 0.2, key_title)[2]
    panel_title = _text_height(1, 10) + 0.2
    fig, axes = _panels(len(panels), len(panels), width, 2.8, left=_Y_AXIS, right=0.2, top=panel_title,
                        bottom=_text_height(2) + 0.25 + key_h, wspace=gap, sharey=True)
    point_colors = [colors.get(h, OTHER_COLOR) for h in cost["config_hash"]]
    for ax, (col, label, s) in zip(axes, panels, strict=True):
        x = cost[col].to_numpy(dtype=float) / s
        y = cost["value"].to_numpy(dtype=float)
        ax.scatter(x[~marked], y[~marked], c=OTHER_COLOR, s=22, alpha=0.6, zorder=3)
        ax.scatter(x[marked], y[marked], c=[c for c, m in zip(point_colors, marked, strict=True) if m], s=40, zorder=4)
        if col == "time_s":
            front = cost["pareto"].to_numpy(dtype=bool)
            order = np.argsort(x[front])
            ax.step(x[front][order], y[front][order], where="post", color="black", linewidth=1, zorder=2, label="Pareto front")
            ax.scatter(x[front], y[front], s=110, facecolors="none", edgecolors="black", zorder=5)
        ax.set_xlabel(label)
        ax.set_title(f"{metric_label(metric)} vs {label.split(' (')[0]}")
    axes[0].set_ylabel(axis_label(metric))
    _draw_key(fig, entries, fig_w - 0.2, top=key_h, center=fig.get_figwidth() / 2, title=key_title)
    return fig


def plot_compute_hours(hours: pd.DataFrame) -> Figure:
    """Device hours per factor level, GPU and CPU stacked: one bar per level, the levels of each
    factor under a heading with its name."""
    factors = list(dict.fromkeys(hours["factor"]))
    # Hours per (factor, level) and device, in the data function's order of levels.
    table = hours.pivot_table(index=["factor", "level"], columns="device", values="hours", aggfunc="sum", sort=False)
    positions: list[float] = []
    labels: list[str] = []
    headings: list[tuple[float, str]] = []
    stacks: dict[str, list[float]] = {"GPU": [], "CPU": []}
    y = 0.0
    for f in factors:
        headings.append((y, f))
        y += 1.0
        for (_, level), row in table.loc[[f]].iterrows():
            for device in stacks:
                value = row.get(device, 0.0)
                stacks[device].append(0.0 if pd.isna(value) else float(value))
            positions.append(y)
            labels.append(str(level))
            y += 1.0
        y += 0.4  # a gap between factors
    used = [d for d in ("GPU", "CPU") if any(stacks[d])] or ["CPU"]
    title = "Compute spent per factor level (all trials that ran, failed included)"
    left = max(_text_width(labels), _text_width([f for _, f in headings])) + 0.25
    title = _title_lines(title, left + 4.8)
    entries: list[KeyEntry] = [(f"{d} hours", {"color": GPU_COLOR if d == "GPU" else CPU_COLOR, "linewidth": 7})
                               for d in used]
    key_h = _key_layout(entries, 4.4)[2]
    width = 4.4
    fig, (ax,) = _panels(1, 1, width, 0.2 * y + 0.1, left=left, right=0.4, top=_title_height(title) + key_h,
                         bottom=_text_height(2) + 0.2)
    left_edge = np.zeros(len(positions))
    for device in used:
        widths = np.asarray(stacks[device])
        ax.barh(positions, widths, left=left_edge, height=0.8, color=GPU_COLOR if device == "GPU" else CPU_COLOR)
        left_edge += widths
    _category_labels(ax, positions, labels, axis="y")
    # Factor names where the level names are, in bold, above their levels.
    pad = (plt_rc("ytick.major.size") + plt_rc("ytick.major.pad")) / 72 / width
    for at, name in headings:
        ax.text(-pad, at, name, transform=ax.get_yaxis_transform(), ha="right", va="center", fontweight="bold")
    ax.set_ylim(y - 0.4 - 0.5, -0.5)  # first factor on top
    ax.set_xlabel("device hours (h)")
    ax.grid(axis="y", visible=False)
    _draw_key(fig, entries, 4.4, top=fig.get_figheight() - _title_height(title), right=fig.get_figwidth() - 0.4)
    _suptitle(fig, title)
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


def plot_predictions(images: np.ndarray, labels: np.ndarray, preds: np.ndarray, class_names: Sequence[str], *, title: str, columns: int = 10, rows: int = 3) -> Figure:
    """A grid of test images with true and predicted labels (green right, red wrong), drawn as
    one mosaic in a single axes (30 small axes cost more than the rest of the report)."""
    n = min(len(images), columns * rows)
    rows = max(1, math.ceil(n / columns))
    columns = min(columns, max(n, 1))
    tiles = [_as_rgb(images[k]) for k in range(n)]
    side = max((max(t.shape[:2]) for t in tiles), default=8)
    # Small images (8 px digits) are enlarged by whole pixels, so the mosaic has room for gaps.
    scale = max(1, math.ceil(96 / side))
    tiles = [np.repeat(np.repeat(t, scale, axis=0), scale, axis=1) for t in tiles]
    h = max((t.shape[0] for t in tiles), default=8)
    w = max((t.shape[1] for t in tiles), default=8)
    # Room above each tile for its two label lines, in mosaic pixels.
    tile_in, label_in, gap_in = 1.25, _text_height(2, 7) + 0.06, 0.1
    px_per_in = w / tile_in
    label_px, gap_px = round(label_in * px_per_in), round(gap_in * px_per_in)
    cell_h, cell_w = h + label_px, w + gap_px
    mosaic = np.ones((rows * cell_h, columns * cell_w, 3))
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        y0, x0 = r * cell_h + label_px, c * cell_w
        mosaic[y0 : y0 + tile.shape[0], x0 : x0 + tile.shape[1]] = tile
    wrapped = _title_lines(title, columns * (tile_in + gap_in))
    fig, (ax,) = _panels(1, 1, columns * (tile_in + gap_in), rows * (tile_in + label_in), left=0.1, right=0.05,
                         top=_title_height(wrapped), bottom=0.05)
    ax.imshow(mosaic, interpolation="antialiased", aspect="auto")
    ax.set_axis_off()
    names = [str(c) for c in class_names]

    def name(i: int) -> str:
        return names[i] if 0 <= i < len(names) else str(i)

    for k in range(n):
        r, c = divmod(k, columns)
        ok = int(labels[k]) == int(preds[k])
        ax.text(c * cell_w + w / 2, r * cell_h + label_px - 2, f"true: {name(int(labels[k]))[:14]}\npred: {name(int(preds[k]))[:14]}",
                fontsize=7, color=GOOD if ok else BAD, ha="center", va="bottom")
    _suptitle(fig, wrapped)
    return fig


# ----------------------------------------------------------------------------------- saving
def save_figure(fig: Figure, out: Path, name: str, *, svg: bool = False) -> Path:
    """Write ``name.png`` (and ``name.svg`` when asked) into ``out``; return the PNG's path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    png = out / f"{name}.png"
    _place_axis_labels(fig)
    fig.set_dpi(PNG_DPI)
    fig.set_facecolor("white")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    png.write_bytes(png_bytes(np.asarray(canvas.buffer_rgba())))
    if svg:
        fig.savefig(out / f"{name}.svg", facecolor="white")
    return png


def _place_axis_labels(fig: Figure) -> None:
    """At most 6 intervals between numeric ticks, and each axis label where matplotlib would
    put it, beside its tick labels, computed from their text.

    Matplotlib places a label at draw time from the rendered boxes of the tick labels, measuring
    every one of them again: a quarter of a panel's drawing time. Their text is known before
    drawing, and :func:`_text_width` measures a line once per report.
    """
    from matplotlib.ticker import AutoLocator, MaxNLocator

    fig_w, fig_h = fig.get_size_inches()
    for ax in fig.axes:
        if not ax.axison:
            continue
        for axis in (ax.xaxis, ax.yaxis):
            # At most 6 intervals: the automatic choice put up to 9 on a 2.8 in axis, and every
            # tick is a label, a grid line and two marks to build and draw.
            if type(axis.get_major_locator()) is AutoLocator:
                axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
        box = ax.get_position()
        for axis, size_in in ((ax.xaxis, box.height * fig_h), (ax.yaxis, box.width * fig_w)):
            if not axis.label.get_text() or size_in <= 0:
                continue
            labels = axis.get_majorticklabels()
            texts = [t.get_text() for t in labels]
            pt = float(labels[0].get_fontsize()) if labels else float(FONT_PT)
            name = "xtick" if axis is ax.xaxis else "ytick"
            gap = (plt_rc(f"{name}.major.size") + plt_rc(f"{name}.major.pad") + axis.labelpad) / 72
            if axis is ax.xaxis:
                extent = _lines(texts) * pt * 1.2 / 72 if texts else 0.0
                side = axis.get_label_position()
                y = -(gap + extent) / size_in if side == "bottom" else 1 + (gap + extent) / size_in
                axis.set_label_coords(0.5, y)
            else:
                extent = _text_width(texts, pt)
                side = axis.get_label_position()
                x = -(gap + extent) / size_in if side == "left" else 1 + (gap + extent) / size_in
                axis.set_label_coords(x, 0.5)


def plt_rc(key: str) -> float:
    import matplotlib

    return float(cast(Any, matplotlib.rcParams)[key])


def png_bytes(pixels: np.ndarray, level: int = 1) -> bytes:
    """A PNG file of an (height, width, 4) uint8 RGBA image; RGB when every pixel is opaque.

    Written here, not by Pillow through savefig: Pillow's adaptive row filters took 30 to 60 ms
    per figure, unfiltered rows with zlib level 1 take half that, files about as small.
    """
    import struct
    import zlib

    if pixels[..., 3].min() == 255:
        pixels = pixels[..., :3]
    height, width, channels = pixels.shape
    rows = np.zeros((height, width * channels + 1), dtype=np.uint8)  # a 0 byte per row: no filter
    rows[:, 1:] = pixels.reshape(height, -1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6 if channels == 4 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + chunk(b"IEND", b""))
