"""Drawing functions: each takes what a data function returned and returns a matplotlib Figure.

Nothing here computes a statistic. matplotlib is imported inside the functions (and only its
object-oriented API, never pyplot's global state), so importing the report package stays cheap
and figures can be drawn from any thread.
"""

from __future__ import annotations

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

PNG_DPI = 110
BASELINE_COLOR = "#d62728"
POINT_COLOR = "#1f77b4"
OTHER_COLOR = "#9aa5b1"
GPU_COLOR = "#2ca02c"
CPU_COLOR = "#7f7f7f"
GOOD, BAD = "#1a7f37", "#cf222e"
_STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "svg.fonttype": "none",
}


def report_style() -> AbstractContextManager[Any]:
    """The report's matplotlib style, for drawing and saving (rc_context: the caller's own
    matplotlib settings are left as they were)."""
    import matplotlib

    return matplotlib.rc_context(cast(Any, _STYLE))


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


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


def _legend_columns(labels: Sequence[str], width_in: float) -> int:
    """As many legend columns as fit the figure's width (about 15 characters per inch at 8 pt)."""
    longest = max((len(label) for label in labels), default=10) + 6
    return max(1, min(3, int(width_in * 15) // longest))


def _suptitle(fig: Figure, text: str) -> None:
    """A figure title wrapped to the figure's width (about 11 characters per inch at 10 pt)."""
    import textwrap

    width = int(fig.get_figwidth() * 11)
    fig.suptitle("\n".join(textwrap.wrap(text, width)) or text)


def _wrap(text: str, width: int = 14) -> str:
    """A tick label on several lines: a quantile bin "0.001 – 0.01" breaks at its dash."""
    import textwrap

    if " – " in text:
        low, high = text.split(" – ", 1)
        return f"{low} –\n{high}"
    return "\n".join(textwrap.wrap(text, width)) or text


# ---------------------------------------------------------------------------- main effects
def plot_main_effects(
    effects: Mapping[str, pd.DataFrame], metric: str, *, baseline_levels: Mapping[str, str] | None = None
) -> Figure:
    """One panel per factor: mean of the metric per level with its 95 % CI as error bars."""
    n = len(effects)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = _figure(3.6 * cols + 0.6, 3.0 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    for ax, (factor, df) in zip(axes, effects.items(), strict=False):
        x = np.arange(len(df))
        mean = df["mean"].to_numpy(dtype=float)
        low = (mean - df["ci_low"].to_numpy(dtype=float))
        high = (df["ci_high"].to_numpy(dtype=float) - mean)
        base = (baseline_levels or {}).get(factor)
        colors = [BASELINE_COLOR if base is not None and lv == base else POINT_COLOR for lv in df["level"]]
        ax.plot(x, mean, color="#999999", linewidth=1, zorder=1)
        ax.errorbar(x, mean, yerr=[np.nan_to_num(low), np.nan_to_num(high)], fmt="none", ecolor="#555555", capsize=4, zorder=2)
        ax.scatter(x, mean, c=colors, s=36, zorder=3)
        ax.set_xticks(x, [f"{_wrap(lv, 12)}\nn={k}" for lv, k in zip(df["level"], df["n"], strict=True)])
        ax.set_xlim(-0.5, len(df) - 0.5)
        ax.set_xlabel(factor)
        ax.set_title(factor)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel(axis_label(metric))
    title = f"Main effects on {metric_label(metric)}: mean and 95 % CI over trials"
    if baseline_levels:
        title += " (red: the baseline's level; the other factors held at the baseline)"
    _suptitle(fig, title)
    return fig


def plot_interactions(pairs: Sequence[tuple[str, str, pd.DataFrame]], metric: str, direction: str) -> Figure:
    """One heatmap per pair of factors, on one colour scale; cells show mean, std and n."""
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
    widths = [max(2.6, 1.05 * g[0].shape[1] + 1.0) for g in grids]
    height = max(g[0].shape[0] for g in grids)
    fig = _figure(max(5.0, sum(widths) + 1.2), max(3.0, 0.7 * height + 1.7))
    axes = np.atleast_1d(fig.subplots(1, len(grids), squeeze=False, width_ratios=widths)).ravel()
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
            text = f"{v:.3f}" + (f"\n± {s:.3f}" if np.isfinite(s) else "") + f"\nn={int(count.iloc[i, j])}"
            dark = (norm(v) < 0.5) == (direction == "maximize")
            ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color="white" if dark else "black")
        ax.set_xticks(range(values.shape[1]), [_wrap(str(c), 10) for c in table.columns])
        ax.set_yticks(range(values.shape[0]), [str(r) for r in table.index])
        ax.set_xlabel(col_factor)
        ax.set_ylabel(row_factor)
        ax.grid(False)
        ax.set_title(f"{row_factor} x {col_factor}")
    assert image is not None
    fig.colorbar(image, ax=list(axes), label=axis_label(metric))
    _suptitle(fig, f"Interactions: {metric_label(metric)}, mean ± std")
    return fig


# ------------------------------------------------------------------------- learning curves
def plot_learning_curves(curves: pd.DataFrame, labels: Mapping[str, str], colors: Mapping[str, Any]) -> Figure:
    """Accuracy and loss per epoch: mean over seeds with a ±1 std band; train dashed, val solid."""
    from matplotlib.lines import Line2D

    kinds = [k for k in ("acc", "loss") if curves["series"].str.endswith(k).any()]
    ncols = _legend_columns([*labels.values(), "train"], 10.5)
    fig = _figure(10.5, 3.5 + 0.2 * math.ceil((len(labels) + 2) / ncols))
    axes = np.atleast_1d(fig.subplots(1, len(kinds), squeeze=False)).ravel()
    for ax, kind in zip(axes, kinds, strict=True):
        for h in labels:
            for split, style in (("train", "--"), ("val", "-")):
                part = curves[(curves["config_hash"] == h) & (curves["series"] == f"{split}_{kind}")]
                if part.empty:
                    continue
                e = part["epoch"].to_numpy()
                m = part["mean"].to_numpy(dtype=float)
                s = np.nan_to_num(part["std"].to_numpy(dtype=float))
                ax.plot(e, m, linestyle=style, color=colors[h], linewidth=1.5)
                ax.fill_between(e, m - s, m + s, color=colors[h], alpha=0.15, linewidth=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (fraction)" if kind == "acc" else "loss (nats)")
        ax.set_title("accuracy" if kind == "acc" else "loss")
    handles = [Line2D([], [], color=colors[h], linewidth=2, label=labels[h]) for h in labels]
    handles += [
        Line2D([], [], color="black", linestyle="-", label="val"),
        Line2D([], [], color="black", linestyle="--", label="train"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols)
    _suptitle(fig, "Learning curves: mean over seeds, band = ±1 std")
    return fig


# -------------------------------------------------------------------- parallel coordinates
def plot_parallel_coordinates(pc: ParallelCoordinates, direction: str) -> Figure:
    """One polyline per configuration across the factor axes, coloured by the metric."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    axes_names = pc.axes
    fig = _figure(max(6.0, 1.9 * len(axes_names) + 1.5), 4.2)
    ax = fig.subplots()
    values = pc.lines["value"].to_numpy(dtype=float)
    norm = Normalize(float(np.nanmin(values)), float(np.nanmax(values)) if len(values) else 1.0)
    cmap = matplotlib.colormaps["viridis" if direction == "maximize" else "viridis_r"]
    x = np.arange(len(axes_names))
    # Best lines drawn last, so they stay visible on top of the rest.
    from matplotlib.collections import LineCollection

    order = np.argsort(values if direction == "maximize" else -values)
    ys = pc.lines[axes_names].to_numpy(dtype=float)[order]
    segments = np.stack([np.broadcast_to(x, ys.shape), ys], axis=-1)
    alpha = 0.9 if len(values) <= 50 else 0.35
    ax.add_collection(LineCollection(list(segments), colors=cmap(norm(values[order])), linewidths=1.4, alpha=alpha))
    for j, name in enumerate(axes_names):
        ax.axvline(j, color="#444444", linewidth=0.8)
        for pos, label in pc.ticks[name]:
            ax.text(j + 0.04, pos, label, fontsize=7.5, va="center", ha="left",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    ax.set_xticks(x, [_wrap(n, 16) for n in axes_names])
    ax.set_xlim(-0.2, len(axes_names) - 0.5)
    ax.set_ylim(-0.08, 1.08)
    ax.set_yticks([])
    ax.grid(False)
    ax.spines["left"].set_visible(False)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=axis_label(pc.metric))
    _suptitle(fig, f"Parallel coordinates: one line per configuration, coloured by {metric_label(pc.metric)}")
    return fig


def plot_importance(importance: pd.DataFrame, metric: str) -> Figure:
    """Horizontal bars of fANOVA importance, most important on top."""
    df = importance.iloc[::-1]
    fig = _figure(6.0, 0.45 * len(df) + 1.4)
    ax = fig.subplots()
    bars = ax.barh(df["factor"], df["importance"], color=POINT_COLOR)
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in df["importance"]], padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, float(df["importance"].max()) * 1.15))
    ax.set_xlabel("importance (fraction of variance, fANOVA)")
    ax.set_title(f"Factor importance for {metric_label(metric)} (Optuna fANOVA)")
    return fig


# ---------------------------------------------------------------------------------- cost
def plot_cost(cost: pd.DataFrame, metric: str, direction: str, colors: Mapping[str, Any], time_unit: tuple[str, float]) -> Figure:
    """Metric against training time (and images/s), Pareto-optimal configurations outlined."""
    unit, scale = time_unit
    panels = [("time_s", f"training time per trial ({unit})", scale)]
    if "images_per_s" in cost.columns and cost["images_per_s"].notna().any():
        panels.append(("images_per_s", "throughput (images/s)", 1.0))
    fig = _figure(5.0 * len(panels) + 0.5, 4.0)
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True, squeeze=False)).ravel()
    marked = cost["config_hash"].isin(list(colors)).to_numpy()
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
            ax.legend(loc="best")
        ax.set_xlabel(label)
        ax.set_title(f"{metric_label(metric)} vs {label.split(' (')[0]}")
    axes[0].set_ylabel(axis_label(metric))
    if marked.any():
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", linestyle="", color=colors[h], label=lab)
                   for h, lab in zip(cost["config_hash"][marked], cost["label"][marked], strict=True)]
        if not marked.all():
            handles.append(Line2D([], [], marker="o", linestyle="", color=OTHER_COLOR, label="other configurations"))
        fig.legend(handles=handles, loc="outside lower center",
                   ncols=_legend_columns([str(h.get_label()) for h in handles], 5.0 * len(panels) + 0.5))
    return fig


def plot_compute_hours(hours: pd.DataFrame) -> Figure:
    """Device hours per factor level, GPU and CPU stacked, one panel per factor."""
    factors = list(dict.fromkeys(hours["factor"]))
    cols = min(len(factors), 3)
    rows = math.ceil(len(factors) / cols)
    fig = _figure(3.6 * cols + 0.6, 2.9 * rows + 0.7)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, f in zip(axes, factors, strict=False):
        part = hours[hours["factor"] == f]
        levels = list(dict.fromkeys(part["level"]))
        bottom = np.zeros(len(levels))
        for device, color in (("GPU", GPU_COLOR), ("CPU", CPU_COLOR)):
            h = part[part["device"] == device].set_index("level")["hours"].reindex(levels).fillna(0.0).to_numpy()
            if h.any():
                ax.bar(range(len(levels)), h, bottom=bottom, color=color, label=device)
                bottom += h
        ax.set_xticks(range(len(levels)), [_wrap(str(lv), 12) for lv in levels])
        ax.set_xlabel(f)
        ax.set_ylabel("device hours (h)")
        ax.set_title(f)
    for ax in axes[len(factors):]:
        ax.set_visible(False)
    from matplotlib.patches import Patch

    used = [d for d in ("GPU", "CPU") if (hours["device"] == d).any()]
    fig.legend(handles=[Patch(color=GPU_COLOR if d == "GPU" else CPU_COLOR, label=f"{d} hours") for d in used],
               loc="outside upper right", ncols=len(used))
    _suptitle(fig, "Compute spent per factor level (all trials that ran, failed included)")
    return fig


# ---------------------------------------------------------------------------- predictions
def plot_predictions(images: np.ndarray, labels: np.ndarray, preds: np.ndarray, class_names: Sequence[str], *, title: str, columns: int = 10, rows: int = 3) -> Figure:
    """A grid of test images with true and predicted labels (green right, red wrong)."""
    n = min(len(images), columns * rows)
    rows = max(1, math.ceil(n / columns))
    fig = _figure(1.45 * columns, 1.75 * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    names = [str(c) for c in class_names]

    def name(i: int) -> str:
        return names[i] if 0 <= i < len(names) else str(i)

    for k, ax in enumerate(axes):
        ax.axis("off")
        if k >= n:
            continue
        img = np.asarray(images[k])
        if img.dtype != np.uint8:  # floats of any range: stretch to [0, 1] for imshow
            lo, hi = float(img.min()), float(img.max())
            img = (img - lo) / (hi - lo or 1.0)
        ax.imshow(img.squeeze(), cmap="gray" if img.ndim == 2 or img.shape[-1] == 1 else None, interpolation="nearest")
        ok = int(labels[k]) == int(preds[k])
        ax.set_title(f"true: {name(int(labels[k]))[:14]}\npred: {name(int(preds[k]))[:14]}", fontsize=7, color=GOOD if ok else BAD)
    _suptitle(fig, title)
    return fig


# ----------------------------------------------------------------------------------- saving
def save_figure(fig: Figure, out: Path, name: str, *, svg: bool = True) -> Path:
    """Write ``name.png`` (and ``name.svg``) into ``out``; return the PNG's path."""
    png = out / f"{name}.png"
    fig.savefig(png, dpi=PNG_DPI, facecolor="white")
    if svg:
        # The layout solved for the PNG holds for the SVG (same inches): skip solving it again,
        # which is a third of the cost of a figure.
        fig.set_layout_engine("none")
        fig.savefig(out / f"{name}.svg", facecolor="white")
    return png
