"""Writing the ablation table: Markdown, CSV, LaTeX (booktabs), and a rich table for the terminal.

All formats render the same cells from :func:`table_cells`, so a number reads the same in the
paper, on GitHub and in the terminal.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ablate.report._data import AblationTable, format_level, formatted_levels

METRIC_NAMES = {
    "train_acc": "final train acc",
    "train_loss": "final train loss",
    "val_acc": "final val acc",
    "val_loss": "final val loss",
    "val_top5": "final val top-5",
    "best_val_acc": "best val acc",
    "test_acc": "test acc",
    "test_loss": "test loss",
    "duration_s": "train time",
}


class Cell(NamedTuple):
    """One table cell: its text, the number to sort by, and whether it is the column's best.
    (A tuple: a table of 2,000 rows holds 30,000 of them.)"""

    text: str
    value: float | str | None = None
    best: bool = False
    significant: bool = False


#: Header names and rows of cells, as :func:`table_cells` returns them.
Cells = tuple[list[str], list[list[Cell]]]


def time_unit(seconds: pd.Series) -> tuple[str, float]:
    """A readable unit for training times: s below 2 min, min below 2 h, else h."""
    typical = float(np.nanmedian(seconds.to_numpy(dtype=float))) if seconds.notna().any() else 0.0
    if typical < 120:
        return "s", 1.0
    if typical < 7200:
        return "min", 60.0
    return "h", 3600.0


def metric_label(metric: str, unit: str | None = None) -> str:
    name = METRIC_NAMES.get(metric, metric.replace("_", " "))
    return f"{name} ({unit})" if unit else name


def _num(value: float, digits: int = 3) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _signed(value: float, digits: int = 3) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:+.{digits}f}"


def format_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def table_cells(table: AblationTable) -> Cells:
    """Header names and rows of display cells for every writer (compute them once and pass them
    to each writer's ``cells``)."""
    rows = table.rows
    unit, scale = time_unit(rows["duration_s_mean"]) if "duration_s_mean" in rows else ("s", 1.0)
    digits = {m: 3 for m in table.metrics}
    if "duration_s_mean" in rows and rows["duration_s_mean"].notna().any():
        # Three significant digits for a typical time, the same decimals on every row.
        typical = float(np.nanmedian(rows["duration_s_mean"].to_numpy(dtype=float))) / scale
        digits["duration_s"] = int(np.clip(2 - math.floor(math.log10(typical)), 0, 3)) if typical > 0 else 1
    header = [*table.factors, "n"]
    for m in table.metrics:
        header.append(metric_label(m, unit if m == "duration_s" else None))
    header += [f"Δ {table.metric}", "95 % CI of Δ", "p (Holm)", "test"]
    # Column by column from plain lists: iterrows made 2,000 rows cost 0.4 s per writer.
    columns: list[list[Cell]] = []
    for f in table.factors:
        values = rows[f].tolist()
        columns.append([Cell(text, _sort_value(v)) for text, v in zip(formatted_levels(rows[f]), values, strict=True)])
    n, excluded = rows["n"].astype(int).tolist(), rows["excluded"].astype(int).tolist()
    columns.append([Cell(str(k) + (f" ({e} excl.)" if e else ""), float(k)) for k, e in zip(n, excluded, strict=True)])
    for m in table.metrics:
        best = rows["config_hash"].isin(table.best(m)).tolist()
        s = scale if m == "duration_s" else 1.0
        column = []
        for mean, std, k, is_best in zip(rows[f"{m}_mean"].tolist(), rows[f"{m}_std"].tolist(), n, best, strict=True):
            text = _num(mean / s, digits[m])
            if k > 1 and not math.isnan(std):
                text += f" ± {_num(std / s, digits[m])}"
            column.append(Cell(text, None if math.isnan(mean) else float(mean), best=is_best))
        columns.append(column)
    comparisons = zip(*(rows[c].tolist() for c in ("is_baseline", "diff", "ci_low", "ci_high", "p_holm", "significant", "test")),
                      strict=True)
    tail: list[list[Cell]] = []
    for is_base, diff, low, high, p, significant, test in comparisons:
        if is_base:
            tail.append([Cell("baseline", 0.0), Cell(""), Cell(""), Cell("baseline")])
            continue
        ci = "–" if math.isnan(low) else f"[{_signed(low)}, {_signed(high)}]"
        test = test if test != "n = 1" else "n = 1: no test"
        tail.append([
            Cell(_signed(diff), None if math.isnan(diff) else float(diff)),
            Cell(ci, None if math.isnan(low) else float(low)),
            Cell(format_p(p) + (" *" if significant else ""), None if math.isnan(p) else float(p), significant=bool(significant)),
            Cell(test, test),
        ])
    out = [[*row, *rest] for row, rest in zip(zip(*columns, strict=True), tail, strict=True)] if columns else [list(t) for t in tail]
    return header, out


def _sort_value(value: Any) -> float | str:
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and not math.isnan(float(value)):
        return float(value)
    return format_level(value)


def table_notes(table: AblationTable, *, study: str | None = None) -> list[str]:
    """The sentences a reader needs under the table: baseline, tests, exclusions, n = 1."""
    notes = []
    base = table.baseline_row
    if base is not None:
        levels = ", ".join(f"{f}={format_level(base[f])}" for f in table.factors) or base["label"]
        notes.append(f"Baseline: {levels} ({table.baseline_reason}).")
    notes.append("Cells: mean ± std over seeds (n = completed seeds); best value per column in bold.")
    tests = table.tests_used
    if tests:
        names = {"paired t": "paired t-test by seed", "Welch t": "Welch's t-test"}
        notes.append(
            f"Δ = difference of {table.metric} means from the baseline; p: "
            f"{' or '.join(names[t] for t in tests)} (paired when both rows hold the same seeds), "
            f"Holm-corrected across {table.n_tests} comparison(s); * = p < {table.alpha:g}. "
            "95 % CI: percentile bootstrap of the difference (9,999 resamples, seeded)."
        )
    if (table.rows["test"] == "n = 1").any():
        notes.append("Rows with a single seed (n = 1) on either side have no p-value and no interval.")
    if table.excluded:
        parts = ", ".join(f"{v} {k}" for k, v in sorted(table.excluded.items()))
        notes.append(f"Excluded from every statistic: {parts} trial(s).")
    return notes


def constants_line(table: AblationTable) -> str:
    """Constant factors, stated once above the table."""
    parts = [f"{k} = {format_level(v)}" for k, v in table.constants.items()]
    seeds = ", ".join(str(s) for s in table.seeds)
    text = ("Constant: " + ", ".join(parts) + ". ") if parts else ""
    return text + f"Seeds: {seeds}."


# ------------------------------------------------------------------------------ writers
_MD_SPECIAL = str.maketrans({"|": "\\|", "*": "\\*"})


def _md_escape(text: str) -> str:
    return text.translate(_MD_SPECIAL)


def markdown_table(table: AblationTable, cells: Cells | None = None) -> str:
    """The table as GitHub Markdown (best in bold), with the constants above and notes below."""
    header, rows = cells or table_cells(table)
    lines = [constants_line(table), ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
    aligns = ["---"] * len(table.factors) + ["---:"] * (len(header) - len(table.factors) - 1) + ["---"]
    lines.append("| " + " | ".join(aligns) + " |")
    for row in rows:
        texts = []
        for c in row:
            t = _md_escape(c.text)
            texts.append(f"**{t}**" if c.best and t else t)
        lines.append("| " + " | ".join(texts) + " |")
    lines.append("")
    lines += [f"{n}" for n in table_notes(table)]
    return "\n".join(lines) + "\n"


_TEX_SPECIAL = str.maketrans({"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                              "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"})


def tex_escape(text: str) -> str:
    return text.translate(_TEX_SPECIAL)


def latex_table(table: AblationTable, cells: Cells | None = None) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``), best values in bold."""
    header, rows = cells or table_cells(table)
    spec = "l" * len(table.factors) + "r" * (len(header) - len(table.factors) - 1) + "l"

    def cell(c: Cell) -> str:
        t = tex_escape(c.text).replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("–", "--")
        if "-" in t:
            t = re.sub(r"(?<![\w.])-(?=\d)", "$-$", t)  # a minus sign, not a hyphen
        return rf"\textbf{{{t}}}" if c.best and t else t

    lines = [
        f"% {tex_escape(constants_line(table))}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(cell(Cell(h)) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% {tex_escape(n)}" for n in table_notes(table)]
    return "\n".join(lines) + "\n"


def csv_frame(table: AblationTable) -> pd.DataFrame:
    """The table's raw numbers, one row per configuration, for scripts and spreadsheets."""
    rows = table.rows.drop(columns=["first_number"])
    for k, v in table.constants.items():
        if k not in rows.columns:
            rows[k] = v
    for m in table.metrics:
        rows[f"{m}_best"] = rows["config_hash"].isin(table.best(m))
    return rows


def write_tables(
    table: AblationTable, out: Path, cells: Cells | None = None, *, markdown: str | None = None
) -> list[Path]:
    """Write table.md, table.csv and table.tex into ``out``; return their paths. ``cells`` and
    ``markdown`` are :func:`table_cells` and :func:`markdown_table` when already computed."""
    cells = cells or table_cells(table)
    paths = [out / "table.md", out / "table.csv", out / "table.tex"]
    paths[0].write_text(markdown or markdown_table(table, cells), encoding="utf-8")
    csv_frame(table).to_csv(paths[1], index=False)
    paths[2].write_text(latex_table(table, cells), encoding="utf-8")
    return paths


def terminal_columns(
    table: AblationTable, cells: Cells, width: int | None, *, rows: int = 40
) -> tuple[list[int], bool]:
    """Which columns of :func:`table_cells` a terminal ``width`` characters wide shows, and
    whether factor names in the header break after their underscores to make them fit.

    Always the factors, n, the study metric and its difference from the baseline (and the
    Holm p-value when tests ran); then the other metrics, the CI and the test, each while the
    table still fits, so no cell is cut. ``width=None`` shows every column.
    """
    header, body = cells
    if width is None:
        return list(range(len(header))), False
    nf = len(table.factors)
    metric = nf + 1 + table.metrics.index(table.metric)
    delta, ci, p, test = len(header) - 4, len(header) - 3, len(header) - 2, len(header) - 1
    core = [*range(nf), nf, metric, delta] + ([p] if table.n_tests else [])
    # Without tests (n = 1) the p column is all dashes: not worth a column in a terminal.
    extra = [i for i in [*range(nf + 1, nf + 1 + len(table.metrics)), ci, test] if i not in core]
    values = [[row[i].text for row in body[:rows]] for i in range(len(header))]

    def fits(columns: list[int], broken: bool) -> bool:
        # rich: a space either side of each cell, a rule between cells and at both ends
        sizes = [_column_width(header[i], values[i], broken=broken and i < nf) for i in columns]
        return sum(sizes) + 3 * len(columns) + 1 <= width

    broken = not fits(core, False)
    shown = list(core)
    while len(shown) > nf + 2 and not fits(shown, broken):  # keep factors, n and the metric at least
        shown.pop()
    for i in extra:
        if fits(sorted([*shown, i]), broken):
            shown = sorted([*shown, i])
    return sorted(shown), broken


def _header_text(name: str, values: list[str], *, broken: bool) -> str:
    """A factor name on several lines, broken after its underscores (cnn_ / activation), when
    it is wider than its values and the table needs the room."""
    if broken and "_" in name and len(name) > max((len(v) for v in values), default=0):
        return name.replace("_", "_\n")
    return name


def _column_width(name: str, values: list[str], *, broken: bool) -> int:
    # Each header line whole: rich sizes a column to it, and squeezing cells would wrap them.
    lines = _header_text(name, values, broken=broken).split("\n")
    return max([len(v) for v in values] + [len(line) for line in lines])


def rich_table(table: AblationTable, *, title: str | None = None, max_rows: int = 40, width: int | None = None) -> Any:
    """The table for the terminal (best in bold green, significant p in bold): at most
    ``max_rows`` rows, and the columns that fit ``width`` characters (see
    :func:`terminal_columns`; all of them without a width). The caption names what is left out."""
    from rich.table import Table
    from rich.text import Text

    cells = table_cells(table)
    header, rows = cells
    columns, broken = terminal_columns(table, cells, width, rows=max_rows)
    shown = rows[:max_rows]
    hidden = [header[i] for i in range(len(header)) if i not in columns]
    parts = [f"{max_rows:,} of {len(rows):,} rows shown"] if len(rows) > max_rows else []
    parts += [f"not shown: {', '.join(hidden)}"] if hidden else []
    parts[:1] = [parts[0][:1].upper() + parts[0][1:]] if parts else []
    if parts:
        parts.append("the full table is in table.md, table.csv and index.html")
    caption = constants_line(table) + ("\n" + "; ".join(parts) + "." if parts else "")
    t = Table(title=title, caption=caption)
    nf = len(table.factors)
    for i in columns:
        values = [row[i].text for row in shown]
        left = i < nf or i == len(header) - 1
        t.add_column(_header_text(header[i], values, broken=broken and i < nf), justify="left" if left else "right",
                     overflow="fold")
    for cells_of_row in shown:
        # Text, not markup: a CI like "[-0.01, +0.02]" must not be read as a style tag.
        t.add_row(*(Text(c.text, style="bold green" if c.best else "bold" if c.significant else "")
                    for c in (cells_of_row[i] for i in columns)))
    return t
