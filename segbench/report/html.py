"""The self-contained HTML report: inline CSS and script, plots embedded as data URIs.

It leads with the answer: when and with what the runs ran, the findings in words (each
outcome with a symbol and a colour, never a colour alone), the compact table, then every
column, the plots and the detail. It reads on a 390 px phone as on a desktop (a viewport
tag; wide tables scroll in their own box). Every table sorts by any column, with the
mouse or the keyboard, numbers as numbers, ``-`` last, and shows which way it sorted.

Every string that comes from a suite, a record or a dataset goes through ``escape``.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

from ..numbers import missing, number
from .devices import TIMED_COSTS, cost_by_device
from .findings import findings
from .markdown import explanation
from .provenance import header_lines
from .table import compact, legend, summary_columns

# Each outcome's symbol: colour is never the only cue.
SYMBOLS = {"better": "▲", "worse": "▼", "equivalent": "=", "inconclusive": "?", "degenerate": "⚠", "unstable": "!",
           "baseline": "●"}

STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;color:#222;padding:1rem;
 line-height:1.4;font-size:16px}
h1{margin:.2rem 0;font-size:1.6rem;overflow-wrap:anywhere} h2{font-size:1.25rem;margin-top:2rem}
.provenance{color:#555;font-size:.9rem;margin:.2rem 0 1rem;padding:0;list-style:none}
.findings{padding-left:0;list-style:none} .findings li{margin:.4rem 0;padding:.4rem .6rem;border-left:4px solid #bbb;
 overflow-wrap:anywhere}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.35rem .6rem;text-align:right;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none}
th:focus{outline:2px solid #1f5fbf;outline-offset:-2px}
th[aria-sort=ascending]::after{content:" ▲"} th[aria-sort=descending]::after{content:" ▼"}
td:first-child,th:first-child{text-align:left}
td.outcome{text-align:left;font-weight:600;white-space:normal;min-width:14rem}
.better{background:#e5f5e0;border-left-color:#2f7d32!important} .worse{background:#fde0dd;border-left-color:#c62828!important}
.equivalent{background:#eceff4;border-left-color:#5c6b7a!important} .inconclusive{background:#fff4d6;border-left-color:#b26a00!important}
.degenerate{background:#f1e4f5;border-left-color:#6a1b9a!important} .unstable{background:#fbe9e0;border-left-color:#a33a00!important} .baseline{background:#eef3fb;border-left-color:#1f5fbf!important}
.warning{background:#f1e4f5;border-left-color:#6a1b9a!important;font-weight:600}
pre{background:#f7f7f7;padding:.8rem;overflow:auto;font-size:.85rem;white-space:pre-wrap}
img{max-width:100%;height:auto;border:1px solid #eee} .note{color:#555;font-size:.85rem}
.scroll{overflow-x:auto;max-width:100%}
@media (max-width:600px){body{padding:.6rem;line-height:1.35} th,td{padding:.3rem .4rem;font-size:.85rem} td.outcome{min-width:10rem}
 .provenance{font-size:.8rem;line-height:1.3;margin-bottom:.6rem} h2#findings{margin-top:1rem}
 .findings li{margin:.25rem 0;padding:.3rem .5rem}}
"""

SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(table => {
  const headers = Array.from(table.tHead.rows[0].cells);
  const value = (row, column) => {
    const cell = row.cells[column];
    if (cell.dataset.sort !== undefined) return parseFloat(cell.dataset.sort);
    const text = cell.textContent.trim();
    return text === '-' || text === '' ? null : text;
  };
  const order = (a, b) => {
    if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    return String(a).localeCompare(String(b), undefined, {numeric: true});
  };
  const sortBy = (th, column) => {
    const ascending = th.getAttribute('aria-sort') !== 'ascending';
    headers.forEach(other => other.setAttribute('aria-sort', 'none'));
    th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
    const body = table.tBodies[0];
    const rows = Array.from(body.rows).map(row => [row, value(row, column)]);
    rows.sort(([, x], [, y]) => (x === null || y === null) ? order(x, y) : order(x, y) * (ascending ? 1 : -1));
    rows.forEach(([row]) => body.appendChild(row));
  };
  headers.forEach((th, column) => {
    th.tabIndex = 0;
    th.setAttribute('aria-sort', 'none');
    th.title = 'sort by this column';
    th.addEventListener('click', () => sortBy(th, column));
    th.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); sortBy(th, column); }
    });
  });
});
"""


def render(rows, records, meta, report_sections=(), per_class=None, class_metric=None) -> str:
    """The page; ``report_sections`` (segbench.extensions.ReportSection: the plots, and what
    other reporters add) follow the tables, each under its escaped title."""
    columns = summary_columns(meta)
    sections = [
        f"<h1>{escape(meta['name'])}</h1>",
        "<ul class='provenance'>" + "".join(f"<li>{escape(line)}</li>" for line in header_lines(records, meta)) + "</ul>",
        "<h2 id='findings'>Findings</h2>",
        _findings(rows, records, meta),
        "<h2 id='summary'>Summary</h2>",
        _table(compact(columns), rows, "summary") if rows else "<p>No runs yet.</p>",
        "<h2 id='every-column'>Every column</h2>",
        _table(columns, rows, "every column") if rows else "",
        _legend(meta, columns),
        *[f"<h2>{escape(section.title)}</h2>{section.html}" for section in report_sections],
        _per_class_table(per_class, class_metric),
        _failures(records),
        "<h2>Timing</h2>",
        _timing(rows, records) + _devices(rows, records),  # the cost by device, only when there are several
        "<h2>Suite</h2>",
        _suite(meta),
        "<h2>Environment</h2>",
        _environment(records),
    ]
    body = "\n".join(sections)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>segbench: {escape(meta['name'])}</title><style>{STYLE}</style></head>"
        f"<body>{body}<script>{SORT_SCRIPT}</script></body></html>"
    )


def _findings(rows, records, meta) -> str:
    found = findings(rows, records, meta)
    if not found:
        return "<p class='note'>One variant: nothing to compare.</p>"
    items = "".join(f"<li class='{escape(item.kind)}'><span aria-hidden='true'>{SYMBOLS.get(item.kind, '⚠')}</span> "
                    f"{escape(item.text)}</li>" for item in found)
    return f"<ul class='findings'>{items}</ul>"


def _table(columns, rows, caption) -> str:
    head = "".join(f"<th scope='col'>{escape(column.label)}</th>" for column in columns)
    body = "".join(_row(columns, row) for row in rows)
    return (f"<div class='scroll'><table class='sortable'><caption class='note'>{escape(caption)}: click or press Enter on a "
            f"heading to sort</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _row(columns, row) -> str:
    verdict = str(row.get("verdict") or "")
    cells = []
    for column in columns:
        text = column.text(row)
        if column.key == "outcome":
            cells.append(f"<td class='outcome'><span aria-hidden='true'>{SYMBOLS.get(verdict, '')}</span> {escape(text)}</td>")
        else:
            sort = column.sort(row) if column.sort else None
            cells.append(_cell(text, sort))
    return f"<tr class='{escape(verdict)}'>{''.join(cells)}</tr>"


def _cell(text, sort_value=None) -> str:
    sort = "" if missing(sort_value) else f" data-sort='{escape(str(sort_value))}'"
    return f"<td{sort}>{escape(str(text))}</td>"


def _legend(meta, columns) -> str:
    items = "".join(f"<li><b>{escape(label)}</b>: {escape(doc)}</li>" for label, doc in legend(columns))
    return f"<p class='note'>{escape(explanation(meta))}</p><ul class='note'>{items}</ul>"


def figure(title, path: Path, caption: str | None = None) -> str:
    """A PNG file as an image embedded in the page, with what it leaves out (``caption``) under it."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    image = f"<img alt='{escape(title)}' src='data:image/png;base64,{data}'>"
    if not caption:
        return image
    return f"<figure>{image}<figcaption class='note'>{escape(caption)}</figcaption></figure>"


def _per_class_table(per_class, metric):
    if per_class is None or not len(per_class):
        return ""
    head = "<th scope='col'>variant</th>" + "".join(f"<th scope='col'>{escape(str(c))}</th>" for c in per_class.columns)
    rows = "".join(
        "<tr>" + _cell(label) + "".join(_cell(number(v), v) for v in values) + "</tr>"
        for label, values in zip(per_class.index, per_class.to_numpy(dtype=float))
    )
    return (f"<h2>{escape(metric)} per class (mean over seeds)</h2>"
            f"<div class='scroll'><table class='sortable'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")


def _timing(rows, records):
    total = sum(r.get("wall_seconds") or 0 for r in records)
    walls = _mean_walls(records)
    body = "".join(
        "<tr>" + _cell(row["variant"])
        + _cell(number(row.get("cost.train_images_per_s_mean")), row.get("cost.train_images_per_s_mean"))
        + _cell(number(walls.get(row["variant_id"])), walls.get(row["variant_id"])) + "</tr>"
        for row in rows
    )
    head = "<th scope='col'>variant</th><th scope='col'>train images/s</th><th scope='col'>wall s per run</th>"
    return (f"<p class='note'>{len(records)} run(s), {total:.1f} s of run time in all.</p>"
            f"<div class='scroll'><table class='sortable'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _mean_walls(records) -> dict:
    """variant id -> its runs' mean wall time (one pass over the records)."""
    walls = {}
    for record in records:
        if record.get("wall_seconds") is not None:
            walls.setdefault(record["variant_id"], []).append(record["wall_seconds"])
    return {variant_id: sum(values) / len(values) for variant_id, values in walls.items()}


def _devices(rows, records) -> str:
    """The timed costs of each variant on each device, only when the runs ran on several
    (summary.md and cost_by_device.csv hold the same table)."""
    table = cost_by_device(records, [row.get("variant_id") for row in rows])
    if table.empty:
        return ""
    columns = [f"cost.{name}" for name in TIMED_COSTS]
    head = "".join(f"<th scope='col'>{escape(name)}</th>" for name in ("variant", "device", "runs", *(n.replace("_", " ") for n in TIMED_COSTS)))
    body = "".join(
        "<tr>" + _cell(row["variant"]) + _cell(row["device"]) + _cell(row["runs"], row["runs"])
        + "".join(_cell(number(row[column]), row[column]) for column in columns) + "</tr>"
        for row in table.to_dict("records")
    )
    return ("<h2 id='cost-by-device'>Cost by device</h2><p class='note'>The runs ran on more than one kind of device; these costs "
            "are each device's own (latency, throughput and memory compare only within one device).</p>"
            f"<div class='scroll'><table class='sortable'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _failures(records):
    failed = [r for r in records if r["status"] != "ok"]
    if not failed:
        return ""
    items = "".join(
        f"<li><b>{escape(r['label'])}</b> seed {escape(str(r['seed']))}: {escape(r['error']['type'])}: "
        f"{escape(r['error']['message'])}<pre>{escape(r['error'].get('traceback', ''))}</pre></li>"
        for r in failed
    )
    return f"<h2>Failed runs</h2><ul>{items}</ul>"


def _suite(meta) -> str:
    description = meta.get("description") or ""
    said = (f"<p class='note'>The suite's own description (the author's words, not measured here):</p>"
            f"<blockquote>{escape(description)}</blockquote>") if description else ""
    return f"{said}<p class='note'>{escape(meta.get('path', ''))}</p><pre>{escape(meta.get('text', ''))}</pre>"


def _environment(records):
    environment = next((r.get("environment") for r in records if r.get("environment")), {})
    devices = sorted({r.get("device", "?") for r in records if r["status"] == "ok"})
    wall = sum(r.get("wall_seconds") or 0 for r in records)
    text = json.dumps({"devices": devices, "total_run_seconds": round(wall, 1), **environment}, indent=1)
    return f"<pre>{escape(text)}</pre>"
