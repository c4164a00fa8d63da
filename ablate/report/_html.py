"""Writing index.html (self-contained: CSS, a few lines of JS and the PNGs inline) and report.md.

Both pages hold the same content in the same order; the Markdown one links the PNGs next to
it, so it renders on GitHub when the report folder is committed.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.report._model import Plot, Report
from ablate.report._provenance import provenance_lines
from ablate.report._tables import (
    Cells,
    constants_line,
    format_p,
    markdown_table,
    metric_label,
    per_seed_cells,
    table_cells,
    table_notes,
)

_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --head: #f6f8fa; --best: #dafbe1; --accent: #0969da; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); margin: 0 auto; padding: 24px 24px 64px; max-width: 1480px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 8px;
     border-bottom: 1px solid var(--line); padding-bottom: 4px; }
p.meta, p.caption, ul.notes { color: var(--muted); }
p.caption { font-size: 13px; margin-top: 4px; }
ul.notes { font-size: 13px; padding-left: 18px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 12.5px; }
th, td { border: 1px solid var(--line); padding: 3px 6px; white-space: nowrap; }
th { background: var(--head); text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #b0b8c1; }
table.sortable th[data-dir=asc]::after { content: " \\2191"; color: var(--accent); }
table.sortable th[data-dir=desc]::after { content: " \\2193"; color: var(--accent); }
td.num { text-align: right; }
td.best { background: var(--best); font-weight: 600; }
td.sig { font-weight: 600; }
tr.baseline td { border-top: 2px solid #8c959f; border-bottom: 2px solid #8c959f; }
figure { margin: 12px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
details { margin-top: 8px; } code, pre { font: 12.5px ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { background: var(--head); padding: 10px; border-radius: 4px; overflow-x: auto; }
p.warn { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 4px; padding: 6px 10px; }
"""

# Sort on click by each cell's data-v (numbers numerically, text alphabetically, blanks last).
_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.dataset.dir !== "asc";
      table.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = asc ? "asc" : "desc";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        if (x === "" || x === undefined) return 1;
        if (y === "" || y === undefined) return -1;
        var nx = Number(x), ny = Number(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def summary_lines(report: Report) -> list[str]:
    """The facts above the table: design, metric, trial counts, baseline."""
    counts = ", ".join(f"{v} {k}" for k, v in sorted(report.status_counts.items()))
    lines = [
        f"Design: {report.design}. Metric: {report.metric} ({report.direction}).",
        f"Trials: {counts}. Configurations: {len(report.table.rows)}.",
        constants_line(report.table),
    ]
    if report.description:
        lines.insert(0, report.description)
    return lines


def _anova_rows(anova: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["source", "df", "sum sq", "mean sq", "F", "p"]
    rows = []
    for _, r in anova.iterrows():
        rows.append(
            [
                str(r["source"]),
                f"{r['df']:.0f}",
                f"{r['sum_sq']:.4g}",
                f"{r['mean_sq']:.4g}",
                "" if math.isnan(r["F"]) else f"{r['F']:.2f}",
                "" if math.isnan(r["p"]) else format_p(r["p"]),
            ]
        )
    return header, rows


def _anova_caption(report: Report) -> str:
    block = report.anova is not None and (report.anova["source"] == "seed (block)").any()
    text = (f"Type-II ANOVA of {report.metric} (statsmodels OLS, factors categorical, with two-way interactions"
            + (", seed as a block: every configuration ran the same seeds" if block else "") + ").")
    if report.interacting:
        text += f" Significant interaction(s) at p < 0.05: {', '.join(report.interacting)}."
    return text


def _hours_lines(report: Report) -> list[str]:
    if report.hours is None or report.hours.empty:
        return []
    first = report.hours[report.hours["factor"] == report.hours["factor"].iloc[0]]
    total = first.groupby("device")["hours"].sum()
    return ["Compute spent: " + ", ".join(f"{v:.2f} {k} hours" for k, v in total.items()) + "."]


# ------------------------------------------------------------------------------------ HTML
def _html_table(cells: Cells, *, baseline: Sequence[bool]) -> str:
    header, rows = cells.header, cells.rows
    parts = ['<div class="scroll"><table class="sortable" id="ablation"><thead><tr>']
    parts += [f"<th>{_e(h)}</th>" for h in header]
    parts.append("</tr></thead><tbody>")
    # 30,000 cells for 2,000 configurations: plain string work per cell, nothing more.
    numeric = ["" if text else "num " for text in cells.text]
    escape = html.escape
    for row, is_base in zip(rows, baseline, strict=True):
        parts.append('<tr class="baseline">' if is_base else "<tr>")
        for num, c in zip(numeric, row, strict=True):
            classes = num + ("best " if c.best else "") + ("sig " if c.significant else "")
            value = c.value
            # NaN is the one value unequal to itself: it sorts as a blank.
            v = "" if value is None or value != value else escape(str(value))
            attr = f' class="{classes.rstrip()}"' if classes else ""
            parts.append(f'<td{attr} data-v="{v}">{escape(c.text)}</td>')
        parts.append("</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def _plain_html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{_e(c)}</td>' if i else f"<td>{_e(c)}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def write_html(report: Report, plots: Sequence[Plot], path: Path, cells: Cells | None = None) -> Path:
    """Write the self-contained page (no network: styles, script and images inline)."""
    out = path.parent
    table = report.table
    cells = cells or table_cells(table, report.columns)
    body = [f"<h1>Ablation report: {_e(report.study)}</h1>"]
    body += [f'<p class="meta">{_e(line)}</p>' for line in summary_lines(report)]
    body.append(f"<h2>Ablation table: {_e(metric_label(report.metric))}</h2>")
    body.append(_html_table(cells, baseline=list(table.rows["is_baseline"])))
    body.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in table_notes(table)) + "</ul>")
    body.append('<p class="caption">Click a column header to sort. The same table: table.md, table.csv, table.tex.</p>')
    body.append(f"<h2>Every replicate: {_e(metric_label(report.metric))} per seed</h2>")
    body.append(_plain_html_table(*per_seed_cells(table)))
    if report.provenance is not None:
        body.append("<h2>Provenance</h2>")
        body += [f'<p class="warn">Warning: {_e(w)}</p>' for w in report.provenance.warnings]
        body.append('<ul class="notes">' + "".join(f"<li>{_e(x)}</li>" for x in provenance_lines(report.provenance)) + "</ul>")
    for plot in plots:
        body.append(f"<h2>{_e(plot.title)}</h2>")
        body.append(f"<figure>{_img(out / f'{plot.name}.png', plot.title)}<p class=\"caption\">{_e(plot.caption)}</p></figure>")
        if plot.name == "main_effects" and report.anova is not None:
            body.append("<h2>Two-way ANOVA</h2>")
            body.append(_plain_html_table(*_anova_rows(report.anova)))
            body.append(f'<p class="caption">{_e(_anova_caption(report))}</p>')
        if plot.name == "compute_hours":
            body += [f'<p class="caption">{_e(line)}</p>' for line in _hours_lines(report)]
    if report.notes:
        body.append("<h2>Notes</h2>")
        body.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>")
    if report.base:
        body.append("<details><summary>Constant configuration of the study (base)</summary>")
        body.append(f"<pre>{_e(json.dumps(report.base, indent=2, sort_keys=True, default=str))}</pre></details>")
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # An empty data: icon stops the browser asking for /favicon.ico (a console error from disk).
        '<link rel="icon" href="data:,">'
        f"<title>{_e(report.study)}: ablation report</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{_JS}</script>\n</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path


# -------------------------------------------------------------------------------- Markdown
def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def write_markdown(
    report: Report, plots: Sequence[Plot], path: Path, cells: Cells | None = None, *, table_md: str | None = None
) -> Path:
    """Write report.md: the same content as the page, images linked relative to it (``table_md``:
    :func:`markdown_table`'s text when already made)."""
    lines = [f"# Ablation report: {report.study}", ""]
    lines += [*(line + "  " for line in summary_lines(report)), ""]
    lines += [f"## Ablation table: {metric_label(report.metric)}", ""]
    # markdown_table already states the constants; summary_lines gave them once above.
    lines += [*(table_md or markdown_table(report.table, cells)).splitlines()[2:], ""]
    header, rows = per_seed_cells(report.table)
    lines += [f"## Every replicate: {metric_label(report.metric)} per seed", "", _md_row(header),
              _md_row(["---"] + ["---:"] * (len(header) - 1)), *(_md_row(r) for r in rows), ""]
    if report.provenance is not None:
        lines += ["## Provenance", "", *(f"> **Warning:** {w}\n" for w in report.provenance.warnings)]
        lines += [*(f"- {x}" for x in provenance_lines(report.provenance)), ""]
    for plot in plots:
        lines += [f"## {plot.title}", "", f"![{plot.title}]({plot.name}.png)", "", f"_{plot.caption}_", ""]
        if plot.name == "main_effects" and report.anova is not None:
            header, rows = _anova_rows(report.anova)
            lines += ["## Two-way ANOVA", "", _md_row(header), _md_row(["---"] + ["---:"] * (len(header) - 1))]
            lines += [_md_row(r) for r in rows]
            lines += ["", f"_{_anova_caption(report)}_", ""]
        if plot.name == "compute_hours":
            lines += [*_hours_lines(report), ""]
    if report.notes:
        lines += ["## Notes", "", *(f"- {n}" for n in report.notes), ""]
    if report.base:
        lines += ["<details><summary>Constant configuration of the study (base)</summary>", "", "```json",
                  json.dumps(report.base, indent=2, sort_keys=True, default=str), "```", "", "</details>", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path

