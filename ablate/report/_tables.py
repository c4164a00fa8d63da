"""Writing the ablation table: Markdown, CSV, LaTeX (booktabs), and a rich table for the terminal.

All formats render the same cells from :func:`table_cells`, so a number reads the same in the
paper, on GitHub and in the terminal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ablate.errors import StudyError
from ablate.metrics import METRICS
from ablate.report._stats import IDENTICAL, NO_SPREAD, PAIRED, POWER, SINGLE, WELCH
from ablate.report._table import AblationTable
from ablate.report._trials import NO_METRIC, format_level, formatted_levels


class Cell(NamedTuple):
    """One table cell: its text, the number to sort by, and whether it is the column's best.
    (A tuple: a table of 2,000 rows holds 30,000 of them.)"""

    text: str
    value: float | str | None = None
    best: bool = False
    significant: bool = False


class Cells(NamedTuple):
    """The table as :func:`table_cells` returns it: header names, rows of cells, each column's
    key (what ``--columns`` names) and whether it is text (left-aligned) rather than a number."""

    header: list[str]
    rows: list[list[Cell]]
    keys: list[str]
    text: list[bool]


def time_unit(seconds: pd.Series) -> tuple[str, float]:
    """A readable unit for training times: s below 2 min, min below 2 h, else h."""
    typical = float(np.nanmedian(seconds.to_numpy(dtype=float))) if seconds.notna().any() else 0.0
    if typical < 120:
        return "s", 1.0
    if typical < 7200:
        return "min", 60.0
    return "h", 3600.0


def metric_label(metric: str, unit: str | None = None) -> str:
    """The metric table's label of ``metric`` ("final val acc"), with ``unit`` in brackets."""
    name = METRICS.get(metric, where="report").label if metric in METRICS else metric.replace("_", " ")
    return f"{name} ({unit})" if unit else name


def _num(value: float, digits: int = 3) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _signed(value: float, digits: int = 3) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:+.{digits}f}"


def format_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def column_keys(table: AblationTable) -> list[str]:
    """Every column the table can show, by key, in order: the factors, ``settings`` (when
    configurations differ in more than their factors), ``n``, the metrics, then ``diff``,
    ``ci``, ``p``, ``detectable`` and ``test``."""
    return [*table.factors, *(["settings"] if table.settings else []), "n", *table.metrics,
            "diff", "ci", "p", "detectable", "test"]


def check_columns(table: AblationTable, columns: Sequence[str] | None) -> list[str]:
    """The chosen column keys in table order (all when None); unknown keys are a user error."""
    keys = column_keys(table)
    if columns is None:
        return keys
    wanted = [c.strip() for c in columns if c.strip()]
    unknown = [c for c in wanted if c not in keys]
    if unknown or not wanted:
        raise StudyError(f"--columns {unknown[0] if unknown else ''!r} is not a column of the table; "
                         f"allowed: {', '.join(keys)}")
    return [k for k in keys if k in wanted]


def _level_text(level: float) -> str:
    return f"{100 * level:.4g} %"


def table_cells(table: AblationTable, columns: Sequence[str] | None = None) -> Cells:
    """Header names and rows of display cells for every writer (compute them once and pass them
    to each writer's ``cells``); ``columns`` chooses columns by key (see :func:`column_keys`)."""
    keys = check_columns(table, columns)
    rows = table.rows
    unit, scale = time_unit(rows["duration_s_mean"]) if "duration_s_mean" in rows else ("s", 1.0)
    digits = {m: 3 for m in table.metrics}
    if "duration_s_mean" in rows and rows["duration_s_mean"].notna().any():
        # Three significant digits for a typical time, the same decimals on every row.
        typical = float(np.nanmedian(rows["duration_s_mean"].to_numpy(dtype=float))) / scale
        digits["duration_s"] = int(np.clip(2 - math.floor(math.log10(typical)), 0, 3)) if typical > 0 else 1
    n = rows["n"].astype(int).tolist()
    base = rows["is_baseline"].tolist()
    tested = [t in (PAIRED, WELCH) for t in rows["test"]]
    # Column by column from plain lists: iterrows made 2,000 rows cost 0.4 s per writer.
    made: dict[str, tuple[str, list[Cell]]] = {}
    for f in table.factors:
        made[f] = (f, [Cell(text, _sort_value(v)) for text, v in zip(formatted_levels(rows[f]), rows[f].tolist(), strict=True)])
    if table.settings:
        made["settings"] = ("settings", [Cell(t, t) for t in rows["settings"].tolist()])
    excluded = rows["excluded"].astype(int).tolist()
    made["n"] = ("n", [Cell(str(k) + (f" ({e} excl.)" if e else ""), float(k)) for k, e in zip(n, excluded, strict=True)])
    for m in table.metrics:
        best = rows["config_hash"].isin(table.best(m)).tolist()
        s = scale if m == "duration_s" else 1.0
        column = []
        for mean, std, k, row_n, is_best in zip(rows[f"{m}_mean"].tolist(), rows[f"{m}_std"].tolist(),
                                                rows[f"{m}_n"].tolist(), n, best, strict=True):
            text = _num(mean / s, digits[m])
            if k > 1 and not math.isnan(std):
                text += f" ± {_num(std / s, digits[m])}"
            if k != row_n and not math.isnan(mean):
                text += f" (n = {k})"  # this metric is missing in some of the row's trials
            column.append(Cell(text, None if math.isnan(mean) else float(mean), best=is_best))
        made[m] = (metric_label(m, unit if m == "duration_s" else None), column)
    diff = rows["diff"].tolist()
    made["diff"] = (f"Δ {table.metric}", [Cell("baseline", 0.0) if b else Cell(_signed(d), None if math.isnan(d) else float(d))
                                          for b, d in zip(base, diff, strict=True)])
    made["ci"] = (f"{_level_text(table.interval_level)} CI of Δ",
                  [Cell("" if b else "–" if math.isnan(lo) else f"[{_signed(lo)}, {_signed(hi)}]", None if math.isnan(lo) else float(lo))
                   for b, lo, hi in zip(base, rows["ci_low"].tolist(), rows["ci_high"].tolist(), strict=True)])
    made["p"] = ("p (Bonferroni)", [
        Cell("" if b else format_p(p) + (" *" if sig else ""), None if math.isnan(p) else float(p), significant=bool(sig))
        for b, p, sig in zip(base, rows["p_adjusted"].tolist(), rows["significant"].tolist(), strict=True)])
    made["detectable"] = (f"detectable Δ ({POWER:.0%} power)", [
        Cell("" if b else _num(v), None if math.isnan(v) else float(v))
        for b, v in zip(base, rows["detectable"].tolist(), strict=True)])
    made["test"] = ("test", [Cell(text, text) for text in (
        _verdict(t, b, ok, sig, d, table.direction)
        for t, b, ok, sig, d in zip(rows["test"].tolist(), base, tested, rows["significant"].tolist(), diff, strict=True))])
    columns_made = [made[k] for k in keys]
    header = [h for h, _ in columns_made]
    body = [list(r) for r in zip(*(c for _, c in columns_made), strict=True)] if columns_made else []
    is_text = [k in table.factors or k in ("settings", "test") for k in keys]
    return Cells(header, body, keys, is_text)


def _verdict(test: str, is_base: bool, tested: bool, significant: bool, diff: float, direction: str) -> str:
    """What the row's test says: better / worse when it rejects, else inconclusive (or why no test)."""
    if is_base:
        return "baseline"
    if not tested:
        return test
    if not significant:
        return f"{test}: inconclusive"
    better = diff > 0 if direction == "maximize" else diff < 0
    return f"{test}: {'better' if better else 'worse'}"


def _sort_value(value: Any) -> float | str:
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and not math.isnan(float(value)):
        return float(value)
    return format_level(value)


def table_notes(table: AblationTable) -> list[str]:
    """The sentences a reader needs under the table: baseline, tests, power, exclusions."""
    notes = []
    base = table.baseline_row
    if base is not None:
        levels = ", ".join(f"{f}={format_level(base[f])}" for f in table.factors) or base["label"]
        notes.append(f"Baseline: {levels} ({table.baseline_reason}).")
    notes.append("Cells: mean ± std over seeds (n = seeds counted; a cell with fewer values gives its own n); "
                 "best value per column in bold.")
    tests = table.tests_used
    if tests:
        names = {PAIRED: "paired t-test over the seed-wise differences", WELCH: "Welch's t-test (Welch-Satterthwaite df)"}
        m = table.n_tests
        notes.append(
            f"Δ = difference of {table.metric} means from the baseline; p: "
            f"{' or '.join(names[t] for t in tests)} (paired when both rows hold the same seeds), "
            f"Bonferroni-adjusted over the {m} comparison(s); * = adjusted p < {table.alpha:g}. "
            f"CI: the same test's simultaneous {_level_text(table.interval_level)} interval "
            f"(level 1 - {table.alpha:g}/{m}), so it excludes 0 exactly when the row has a *."
        )
        notes.append(
            f"A row without * is inconclusive, not 'no effect': 'detectable Δ' is the smallest difference its "
            f"test finds with {POWER:.0%} power at the observed seed noise; smaller true differences are likely missed."
        )
    if table.post_hoc:
        notes.append("Post hoc baseline: the row was chosen after seeing the results, so its p-values are optimistic "
                     "and not a valid test; declare baseline= in the study for a confirmatory table.")
    reasons = set(table.rows["test"])
    if SINGLE in reasons:
        notes.append("Rows with a single seed (n = 1) on either side have no test and no interval.")
    if IDENTICAL in reasons or NO_SPREAD in reasons:
        notes.append("'identical differences: no test': every seed gave the same difference (or no spread on either "
                     "side), so a t-test has no noise to measure; the Δ is exact for these seeds.")
    if table.excluded:
        parts = ", ".join(f"{v} {k}" for k, v in sorted(table.excluded.items()))
        extra = f" (a completed trial without {table.metric} is missing for every column)" if NO_METRIC in table.excluded else ""
        notes.append(f"Excluded from every statistic: {parts} trial(s){extra}.")
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
    cells = cells or table_cells(table)
    header, rows = cells.header, cells.rows
    lines = [constants_line(table), ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
    aligns = ["---" if text else "---:" for text in cells.text]
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


def latex_table(table: AblationTable, cells: Cells | None = None, *, study: str = "") -> str:
    """A booktabs ``table`` float with caption and label (needs ``\\usepackage{booktabs}``),
    best values in bold; the notes follow as comments."""
    cells = cells or table_cells(table)
    header, rows = cells.header, cells.rows
    spec = "".join("l" if text else "r" for text in cells.text)

    def cell(c: Cell) -> str:
        t = tex_escape(c.text).replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("–", "--")
        if "-" in t:
            t = re.sub(r"(?<![\w.])-(?=\d)", "$-$", t)  # a minus sign, not a hyphen
        return rf"\textbf{{{t}}}" if c.best and t else t

    seeds = len(table.seeds)
    caption = (f"Ablation of {metric_label(table.metric)}: mean $\\pm$ std over {seeds} seed(s), "
               f"difference from the baseline with its {tex_escape(_level_text(table.interval_level))} simultaneous "
               f"interval; * = Bonferroni-adjusted $p < {table.alpha:g}$.")
    label = "tab:" + re.sub(r"[^A-Za-z0-9_:-]", "-", study or "ablation")
    lines = [
        f"% {tex_escape(constants_line(table))}",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{caption}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(cell(Cell(h)) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    lines += [f"% {tex_escape(n)}" for n in table_notes(table)]
    return "\n".join(lines) + "\n"


def per_seed_cells(table: AblationTable) -> tuple[list[str], list[list[str]]]:
    """Every replicate's value of the study metric: one row per configuration, one column per
    seed ("–" where that seed did not count), in the table's order."""
    frame = table.per_seed
    seed_columns = [c for c in frame.columns if c.startswith("seed ")]
    header = ["configuration", *seed_columns]
    rows = [[str(label), *(_num(v) for v in values)]
            for label, values in zip(frame["label"], frame[seed_columns].to_numpy(dtype=float).tolist(), strict=True)]
    return header, rows


def csv_frame(table: AblationTable) -> pd.DataFrame:
    """The table's raw numbers, one row per configuration, for scripts and spreadsheets."""
    rows = table.rows.drop(columns=["first_number"])
    for k, v in table.constants.items():
        if k not in rows.columns:
            # One value per row: a list constant (mean/std, erasing scale) is not a column of its own.
            rows[k] = pd.Series([v] * len(rows), index=rows.index, dtype=object)
    for m in table.metrics:
        rows[f"{m}_best"] = rows["config_hash"].isin(table.best(m))
    return rows


def write_tables(
    table: AblationTable, out: Path, cells: Cells | None = None, *, markdown: str | None = None, study: str = ""
) -> list[Path]:
    """Write table.md, table.csv and table.tex into ``out``; return their paths. ``cells`` and
    ``markdown`` are :func:`table_cells` and :func:`markdown_table` when already computed."""
    cells = cells or table_cells(table)
    paths = [out / "table.md", out / "table.csv", out / "table.tex"]
    paths[0].write_text(markdown or markdown_table(table, cells), encoding="utf-8")
    csv_frame(table).to_csv(paths[1], index=False)
    paths[2].write_text(latex_table(table, cells, study=study), encoding="utf-8")
    return paths


def terminal_columns(
    table: AblationTable, cells: Cells, width: int | None, *, rows: int = 40
) -> tuple[list[int], bool]:
    """Which columns of :func:`table_cells` a terminal ``width`` characters wide shows, and
    whether factor names in the header break after their underscores to make them fit.

    Always the factors, n, the study metric and its difference from the baseline (and the
    adjusted p-value when tests ran); then the settings, the test's verdict, the interval and the
    other columns, each while the table still fits, so no cell is cut. ``width=None`` shows every column.
    """
    header, body, keys = cells.header, cells.rows, cells.keys
    if width is None:
        return list(range(len(header))), False
    factor_positions = [i for i, k in enumerate(keys) if k in table.factors]
    wanted = ["n", table.metric, "diff", *(["p"] if table.n_tests else [])]
    core = [*factor_positions, *(keys.index(k) for k in wanted if k in keys)]
    # Without tests (n = 1) the p column is all dashes: not worth a column in a terminal.
    # Then what a row is (settings) and what its test says, before the other metrics.
    first = {"settings": 0, "test": 1, "ci": 2}
    extra = sorted((i for i, k in enumerate(keys) if i not in core and (k != "p" or table.n_tests)),
                   key=lambda i: first.get(keys[i], 3))
    values = [[row[i].text for row in body[:rows]] for i in range(len(header))]
    is_factor = [k in table.factors for k in keys]

    def fits(columns: list[int], broken: bool) -> bool:
        # rich: a space either side of each cell, a rule between cells and at both ends
        sizes = [_column_width(header[i], values[i], broken=broken and is_factor[i]) for i in columns]
        return sum(sizes) + 3 * len(columns) + 1 <= width

    broken = not fits(core, False)
    shown = list(core)
    keep = len(factor_positions) + 2
    while len(shown) > keep and not fits(shown, broken):  # keep factors, n and the metric at least
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


def rich_table(
    table: AblationTable, cells: Cells | None = None, *, title: str | None = None, max_rows: int = 40,
    width: int | None = None,
) -> Any:
    """The table for the terminal (best in bold green, significant p in bold): at most
    ``max_rows`` rows, and the columns that fit ``width`` characters (see
    :func:`terminal_columns`; all of them without a width). The caption names what is left out."""
    cells = cells or table_cells(table)
    header, rows = cells.header, cells.rows
    columns, broken = terminal_columns(table, cells, width, rows=max_rows)
    shown = rows[:max_rows]
    hidden = [header[i] for i in range(len(header)) if i not in columns]
    parts = [f"{max_rows:,} of {len(rows):,} rows shown"] if len(rows) > max_rows else []
    parts += [f"not shown: {', '.join(hidden)}"] if hidden else []
    parts[:1] = [parts[0][:1].upper() + parts[0][1:]] if parts else []
    if parts:
        parts.append("the full table is in table.md, table.csv and index.html")
    caption = constants_line(table) + ("\n" + "; ".join(parts) + "." if parts else "")
    headers = [_header_text(header[i], [row[i].text for row in shown], broken=broken and cells.keys[i] in table.factors)
               for i in columns]
    return cells_rich_table(cells, columns, headers, max_rows=max_rows, title=title, caption=caption)


def cells_rich_table(
    cells: Cells, columns: list[int] | None = None, headers: list[str] | None = None, *, max_rows: int = 40,
    title: str | None = None, caption: str | None = None,
) -> Any:
    """``cells`` as a rich table (the ablation table's, the comparison's): the ``columns`` asked
    for (all by default) under ``headers`` (the cells' own by default), the first ``max_rows``
    rows, best in bold green, significant in bold."""
    from rich.table import Table
    from rich.text import Text

    columns = list(range(len(cells.header))) if columns is None else columns
    headers = [cells.header[i] for i in columns] if headers is None else headers
    t = Table(title=title, caption=caption)
    for i, name in zip(columns, headers, strict=True):
        t.add_column(name, justify="left" if cells.text[i] else "right", overflow="fold")
    for cells_of_row in cells.rows[:max_rows]:
        # Text, not markup: a CI like "[-0.01, +0.02]" must not be read as a style tag.
        t.add_row(*(Text(c.text, style="bold green" if c.best else "bold" if c.significant else "")
                    for c in (cells_of_row[i] for i in columns)))
    return t
