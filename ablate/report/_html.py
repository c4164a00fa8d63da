"""Writing index.html (self-contained: CSS, a few lines of JS and the PNGs inline) and report.md.

Both pages hold the same content in the same order; the Markdown one links the PNGs next to
it, so it renders on GitHub when the report folder is committed.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.report._model import Plot, Report
from ablate.report._provenance import provenance_lines
from ablate.report._seeds import ConfigTrials, interval_text
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
tr.pending td { background: #fff8c5; }
details.trials { border: 1px solid var(--line); border-radius: 4px; padding: 4px 8px; margin: 6px 0; }
details.trials[open] { background: #fcfcfd; } details.trials summary { cursor: pointer; }
details.trials:target { outline: 2px solid var(--accent); }
td.error pre { margin: 0; white-space: pre-wrap; color: #82071e; background: #ffebe9; max-width: 1100px; }
svg.curve { display: block; }
p.warn { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 4px; padding: 6px 10px; }
"""

# A link to a row's trials opens its section (a closed <details> hides what the link points at).
_OPEN_JS = """
function openTarget() {
  var id = decodeURIComponent(location.hash.slice(1));
  var target = id && document.getElementById(id);
  if (target && target.tagName === "DETAILS") { target.open = true; target.scrollIntoView(); }
}
window.addEventListener("hashchange", openTarget);
openTarget();
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


def seed_rows(report: Report) -> tuple[list[str], list[list[str]], list[bool]]:
    """The seed view as text: per configuration its seeds done of planned, mean [95 % t
    interval], each seed's value (or, for a seed that does not count, its trial's status) and
    what it still waits for; and per row whether seeds are still running or queued."""
    view = report.seeds
    if view is None:
        return [], [], []
    # Each seed's value as the table's per-seed cells write it; a seed that does not count shows
    # its trial's status instead of "–".
    seed_header, seed_cells = per_seed_cells(report.table)
    seed_columns = seed_header[1:]
    values_of = dict(zip(report.table.per_seed["config_hash"], (row[1:] for row in seed_cells), strict=True))
    status_of = {(t.config_hash, int(r["seed"])): str(r["status"]) for t in report.trial_sections for r in t.trials}
    header = ["configuration", "seeds done / planned", f"mean [95 % CI] of {report.metric}", *seed_columns, "state"]
    rows, pending = [], []
    for r in view.itertuples(index=False):
        cells = [
            text if text != "–" else status_of.get((r.config_hash, int(column.removeprefix("seed "))), "–")
            for column, text in zip(seed_columns, values_of[r.config_hash], strict=True)
        ]
        rows.append([str(r.label), f"{r.done}/{r.planned}", interval_text(r.mean, r.ci_low, r.ci_high, r.done),
                     *cells, str(r.state)])
        pending.append(bool(r.running or r.queued))
    return header, rows, pending


def seed_notes(report: Report) -> list[str]:
    """What the seed view's numbers are, under its table."""
    view = report.seeds
    notes = [f"Seeds done: completed trials with a value of {report.metric}, the ones every statistic counts; planned: "
             "every trial of the configuration, one per seed. Mean over the done seeds; 95 % CI: Student-t interval "
             "over them (mean ± t(0.975, n - 1) · s / √n), clipped to the metric's range, for each configuration alone (the ablation table's "
             "intervals are of differences, adjusted for its family of tests). One done seed: no interval."]
    if view is not None and ((view["running"] > 0) | (view["queued"] > 0)).any():
        waiting = int(view["running"].sum()), int(view["queued"].sum())
        notes.append(f"The study was still running when this report was written: {waiting[0]} trial(s) running, "
                     f"{waiting[1]} queued (highlighted rows); their seeds join the numbers when the report is "
                     "written again (ablate report).")
    return notes


# ------------------------------------------------------------------------------------ HTML
def section_id(config_hash: str) -> str:
    """The anchor of a configuration's section of trials."""
    text = str(config_hash)  # hex digits already; anything else made safe for an id
    return "trials-" + (text if text.isalnum() else re.sub(r"[^0-9A-Za-z]", "-", text))


def _trials_link(config_hash: str, n: int) -> str:
    return f'<a href="#{section_id(config_hash)}">{n} trial{"" if n == 1 else "s"}</a>'


def _html_table(cells: Cells, *, baseline: Sequence[bool], links: Sequence[tuple[str, int]] | None = None) -> str:
    """The sortable ablation table; ``links`` (config hash and trial count per row) adds a first
    column linking each row to its section of trials."""
    header, rows = cells.header, cells.rows
    parts = ['<div class="scroll"><table class="sortable" id="ablation"><thead><tr>']
    # The link first: the table is often wider than the page, and its last column off screen.
    parts += ["<th>trials</th>"] if links is not None else []
    parts += [f"<th>{_e(h)}</th>" for h in header]
    parts.append("</tr></thead><tbody>")
    # 30,000 cells for 2,000 configurations: plain string work per cell, nothing more.
    numeric = ["" if text else "num " for text in cells.text]
    escape = html.escape
    for i, (row, is_base) in enumerate(zip(rows, baseline, strict=True)):
        parts.append('<tr class="baseline">' if is_base else "<tr>")
        if links is not None:
            h, n = links[i]
            parts.append(f'<td class="num" data-v="{n}">{_trials_link(h, n)}</td>')
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


#: Stroke of a trial's curve by its status.
_CURVE_COLORS = {"completed": "#0969da", "running": "#bf8700", "queued": "#8c959f", "failed": "#cf222e",
                 "pruned": "#8c959f"}
_CURVE_W, _CURVE_H = 180, 36


def curve_svg(epochs: Any, values: Any, low: float, high: float, *, last_epoch: float, status: str) -> str:
    """A trial's curve as a small inline SVG polyline, on its configuration's common scale
    (``low``..``high``, epochs 1..``last_epoch``). Written by hand: a matplotlib SVG per trial
    cost 4.7 ms against 0.02 ms, 9 s for the 2,000 trials of a study (see BENCHMARKS.md)."""
    import numpy as np

    e, v = np.asarray(epochs, dtype=float), np.asarray(values, dtype=float)
    span = high - low if high > low else 1.0
    # Whole numbers in a viewBox ten times the pixel size: tenth-of-a-pixel precision, and
    # str() of an int is the cheapest text for the 100,000 points of a 2,000-trial study.
    w, h = 10 * _CURVE_W, 10 * _CURVE_H
    x = np.rint(20 + (e - 1) / max(last_epoch - 1, 1) * (w - 40)).astype(int)
    y = np.rint(h - 30 - (v - low) / span * (h - 60)).astype(int)
    color = _CURVE_COLORS.get(status, "#59636e")
    if len(e) > 1:
        points = np.empty(2 * len(e), dtype=int)
        points[0::2], points[1::2] = x, y
        shape = (f'<polyline fill="none" stroke="{color}" stroke-width="15" '
                 f'points="{" ".join(map(str, points.tolist()))}"/>')
    else:
        shape = f'<circle cx="{x[0]}" cy="{y[0]}" r="20" fill="{color}"/>'
    title = f"epoch {int(e[0])}: {v[0]:.4g} … epoch {int(e[-1])}: {v[-1]:.4g}"
    return (f'<svg class="curve" width="{_CURVE_W}" height="{_CURVE_H}" viewBox="0 0 {w} {h}" role="img">'
            f'<title>{_e(title)}</title><rect width="{w}" height="{h}" fill="#f6f8fa"/>{shape}</svg>')


def _value(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _settings(settings: dict[str, Any]) -> str:
    from ablate.report._trials import format_level

    return ", ".join(f"{k}={format_level(v)}" for k, v in settings.items()) or "the only configuration"


def trial_section(section: ConfigTrials, metric: str, summary: str) -> str:
    """One configuration's trials as a closed <details>: settings, then per trial its seed,
    status, metric, epochs, worker and curve, and the error text of a failed trial."""
    last = max((float(c[0].max()) for c in section.curves.values()), default=1.0)
    scale = (f"{section.series} per epoch, one scale for the configuration: {section.low:.4g} – {section.high:.4g}"
             if section.series and section.curves else "no epochs recorded")
    parts = [f'<details class="trials" id="{section_id(section.config_hash)}"><summary><b>{_e(section.label)}</b>: '
             f"{_e(summary)}</summary>",
             f'<p class="caption">Config: <code>{_e(_settings(section.settings))}</code>; every other setting as in '
             f"all configurations (the constants above). Curves: {_e(scale)}.</p>",
             '<div class="scroll"><table><thead><tr><th>trial</th><th>seed</th><th>status</th>'
             f"<th>{_e(metric)}</th><th>epochs</th><th>worker</th><th>curve</th></tr></thead><tbody>"]
    for r in section.trials:
        tid = int(r["trial_id"])
        status = str(r["status"])
        curve = section.curves.get(tid)
        svg = (curve_svg(curve[0], curve[1], section.low, section.high, last_epoch=last, status=status)
               if curve is not None else "")
        # epochs_run is written when a trial finishes; a running one has its recorded epochs.
        ran = _value(r.get("epochs_run"), 3) if _value(r.get("epochs_run")) != "–" else (
            str(len(curve[0])) if curve is not None else "–")
        parts.append(f'<tr><td class="num">{_e(r["number"])}</td><td class="num">{_e(r["seed"])}</td>'
                     f"<td>{_e(status)}</td><td class=\"num\">{_e(_value(r.get(metric)))}</td>"
                     f'<td class="num">{_e(ran)}</td><td>{_e(_value(r.get("worker")))}</td>'
                     f"<td>{svg}</td></tr>")
        error = r.get("error")
        if error is not None and error == error and str(error):
            parts.append(f'<tr><td class="error" colspan="7"><pre>{_e(error)}</pre></td></tr>')
    parts.append("</tbody></table></div></details>")
    return "".join(parts)


def trial_sections_html(report: Report) -> list[str]:
    """Every configuration's section, in the table's order."""
    view = {r["config_hash"]: r for r in report.seeds.to_dict("records")} if report.seeds is not None else {}
    out = []
    for section in report.trial_sections:
        r = view.get(section.config_hash)
        if r is not None:
            summary = (f"{r['done']}/{r['planned']} seeds done, {report.metric} "
                       f"{interval_text(r['mean'], r['ci_low'], r['ci_high'], int(r['done']))}; {r['state']}")
        else:
            summary = f"{len(section.trials)} trial(s)"
        out.append(trial_section(section, report.metric, summary))
    return out


def _plain_html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{_e(c)}</td>' if i else f"<td>{_e(c)}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _seed_table(report: Report) -> str:
    """The seed view: highlighted rows still wait for seeds; the last column links each row to
    its section of trials."""
    header, rows, pending = seed_rows(report)
    hashes = [] if report.seeds is None else list(report.seeds["config_hash"])
    planned = [] if report.seeds is None else list(report.seeds["planned"])
    head = "".join(f"<th>{_e(h)}</th>" for h in [*header, "trials"])
    body = []
    for r, wait, h, n in zip(rows, pending, hashes, planned, strict=True):
        cells = "".join(f"<td>{_e(c)}</td>" if i in (0, len(r) - 1) else f'<td class="num">{_e(c)}</td>'
                        for i, c in enumerate(r))
        row_start = '<tr class="pending">' if wait else "<tr>"
        body.append(f'{row_start}{cells}<td class="num">{_trials_link(h, int(n))}</td></tr>')
    return f'<div class="scroll"><table id="seeds"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _figure_html(out: Path, plot: Plot) -> str:
    return f"<figure>{_img(out / f'{plot.name}.png', plot.title)}<p class=\"caption\">{_e(plot.caption)}</p></figure>"


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
    counts = {r.config_hash: len(r.trials) for r in report.trial_sections}
    links = [(h, counts.get(h, 0)) for h in table.rows["config_hash"]] if counts else None
    body.append(_html_table(cells, baseline=list(table.rows["is_baseline"]), links=links))
    body.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in table_notes(table)) + "</ul>")
    body.append('<p class="caption">Click a column header to sort. The same table: table.md, table.csv, table.tex.</p>')
    body.append(f'<h2 id="seed-view">Every replicate: {_e(metric_label(report.metric))} per seed, and per configuration over its seeds</h2>')
    body.append(_seed_table(report))
    body.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in seed_notes(report)) + "</ul>")
    body += [_figure_html(out, plot) for plot in plots if plot.name == "seeds"]
    if report.provenance is not None:
        body.append("<h2>Provenance</h2>")
        body += [f'<p class="warn">Warning: {_e(w)}</p>' for w in report.provenance.warnings]
        body.append('<ul class="notes">' + "".join(f"<li>{_e(x)}</li>" for x in provenance_lines(report.provenance)) + "</ul>")
    for plot in plots:
        if plot.name == "seeds":
            continue  # under the seed table
        body.append(f"<h2>{_e(plot.title)}</h2>")
        body.append(_figure_html(out, plot))
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
    if report.trial_sections:
        body.append('<h2 id="trials">Trials per configuration</h2>')
        body.append('<p class="caption">Each row of the tables above links here. Per trial: seed, status, the metric, '
                    "epochs run, worker and its curve (blue completed, amber running, red failed, grey pruned or "
                    "queued); a failed trial's error under it.</p>")
        body += trial_sections_html(report)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # An empty data: icon stops the browser asking for /favicon.ico (a console error from disk).
        '<link rel="icon" href="data:,">'
        f"<title>{_e(report.study)}: ablation report</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{_JS}{_OPEN_JS}</script>\n</body></html>\n"
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
    header, rows, _ = seed_rows(report)
    if header:
        lines += [f"## Every replicate: {metric_label(report.metric)} per seed, and per configuration over its seeds", "", _md_row(header),
                  _md_row(["---"] + ["---:"] * (len(header) - 2) + ["---"]), *(_md_row(r) for r in rows), ""]
        lines += [*(f"- {n}" for n in seed_notes(report)), ""]
    for plot in plots:
        if plot.name == "seeds":
            lines += [f"![{plot.title}]({plot.name}.png)", "", f"_{plot.caption}_", ""]
    if report.provenance is not None:
        lines += ["## Provenance", "", *(f"> **Warning:** {w}\n" for w in report.provenance.warnings)]
        lines += [*(f"- {x}" for x in provenance_lines(report.provenance)), ""]
    for plot in plots:
        if plot.name == "seeds":
            continue  # under the seed table
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

