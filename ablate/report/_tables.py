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
    best = {m: table.best(m) for m in table.metrics}
    # Plain dicts, not iterrows: a Series per row made 2,000 rows cost 0.4 s per writer.
    levels = {f: [(text, _sort_value(v)) for text, v in zip(formatted_levels(rows[f]), rows[f].tolist(), strict=True)]
              for f in table.factors}
    out: list[list[Cell]] = []
    for i, r in enumerate(rows.to_dict("records")):
        cells = [Cell(*levels[f][i]) for f in table.factors]
        n_text = str(int(r["n"])) + (f" ({int(r['excluded'])} excl.)" if r["excluded"] else "")
        cells.append(Cell(n_text, float(r["n"])))
        for m in table.metrics:
            mean, std = r[f"{m}_mean"], r[f"{m}_std"]
            s = scale if m == "duration_s" else 1.0
            text = _num(mean / s, digits[m])
            if r["n"] > 1 and not math.isnan(std):
                text += f" ± {_num(std / s, digits[m])}"
            cells.append(Cell(text, None if math.isnan(mean) else float(mean), best=r["config_hash"] in best[m]))
        if r["is_baseline"]:
            cells += [Cell("baseline", 0.0), Cell(""), Cell(""), Cell("baseline")]
        else:
            ci = "–" if math.isnan(r["ci_low"]) else f"[{_signed(r['ci_low'])}, {_signed(r['ci_high'])}]"
            p_text = format_p(r["p_holm"]) + (" *" if r["significant"] else "")
            test = r["test"] if r["test"] != "n = 1" else "n = 1: no test"
            cells += [
                Cell(_signed(r["diff"]), None if math.isnan(r["diff"]) else float(r["diff"])),
                Cell(ci, None if math.isnan(r["ci_low"]) else float(r["ci_low"])),
                Cell(p_text, None if math.isnan(r["p_holm"]) else float(r["p_holm"]), significant=bool(r["significant"])),
                Cell(test, test),
            ]
        out.append(cells)
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


def write_tables(table: AblationTable, out: Path, cells: Cells | None = None) -> list[Path]:
    """Write table.md, table.csv and table.tex into ``out``; return their paths."""
    cells = cells or table_cells(table)
    paths = [out / "table.md", out / "table.csv", out / "table.tex"]
    paths[0].write_text(markdown_table(table, cells), encoding="utf-8")
    csv_frame(table).to_csv(paths[1], index=False)
    paths[2].write_text(latex_table(table, cells), encoding="utf-8")
    return paths


def rich_table(table: AblationTable, *, title: str | None = None, max_rows: int = 40) -> Any:
    """The table for the terminal (best in bold green, significant p in bold)."""
    from rich.table import Table
    from rich.text import Text

    header, rows = table_cells(table)
    t = Table(*header, title=title, caption=constants_line(table))
    for cells in rows[:max_rows]:
        # Text, not markup: a CI like "[-0.01, +0.02]" must not be read as a style tag.
        t.add_row(*(Text(c.text, style="bold green" if c.best else "bold" if c.significant else "") for c in cells))
    if len(rows) > max_rows:
        t.add_row(*(["…"] * len(header)))
    return t
