"""The self-contained HTML report: inline CSS and script, plots embedded as data URIs.

Every string that comes from a suite, a record or a dataset goes through ``escape``.
"""

from __future__ import annotations

import base64
import json
import math
from html import escape
from pathlib import Path

from .columns import equivalence_text, images_text, improve_text, outcome_text, p_text
from .markdown import explanation

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .description{color:#555;margin-top:0}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.35rem .6rem;text-align:right;white-space:nowrap} th{background:#f3f3f3;cursor:pointer;user-select:none}
td:first-child,th:first-child{text-align:left}
.better{background:#e5f5e0} .worse{background:#fde0dd} .equivalent{background:#f2f2f2} .baseline{background:#eef3fb}
.mark{font-weight:600} pre{background:#f7f7f7;padding:.8rem;overflow:auto;font-size:.85rem}
img{max-width:100%;border:1px solid #eee} .note{color:#555;font-size:.85rem}
.scroll{overflow-x:auto;max-width:100%}
"""

SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach((th, column) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const rows = Array.from(body.rows);
  const ascending = th.dataset.order !== 'asc'; th.dataset.order = ascending ? 'asc' : 'desc';
  const key = r => { const t = r.cells[column].dataset.sort ?? r.cells[column].textContent; const n = parseFloat(t); return isNaN(n) ? t : n; };
  rows.sort((a, b) => { const x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * (ascending ? 1 : -1); });
  rows.forEach(r => body.appendChild(r));
}));
"""


def render(summary, records, meta, report_sections=(), per_class=None, class_metric=None) -> str:
    """The page; ``report_sections`` (segbench.extensions.ReportSection: the plots, and what
    other reporters add) follow the summary table, each under its escaped title."""
    sections = [
        f"<h1>{escape(meta['name'])}</h1>",
        f"<p class='description'>{escape(meta.get('description') or '')}</p>",
        "<h2>Summary</h2>",
        _explanation(meta),
        _summary_table(summary, meta) if len(summary) else "<p>No runs yet.</p>",
        *[f"<h2>{escape(section.title)}</h2>{section.html}" for section in report_sections],
        _per_class_table(per_class, class_metric),
        _failures(records),
        "<h2>Timing</h2>",
        _timing(summary, records),
        "<h2>Suite file</h2>",
        f"<p class='note'>{escape(meta.get('path', ''))}</p><pre>{escape(meta.get('text', ''))}</pre>",
        "<h2>Environment</h2>",
        _environment(records),
    ]
    body = "\n".join(sections)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>segbench: {escape(meta['name'])}</title><style>{STYLE}</style></head>"
        f"<body>{body}<script>{SORT_SCRIPT}</script></body></html>"
    )


def _explanation(meta):
    return f"<p class='note'>{escape(explanation(meta))} Click a column to sort.</p>"


def _summary_table(summary, meta):
    adaptive = (meta.get("design") or {}).get("kind") == "adaptive"
    headers = ["variant", "runs"] + list(meta["metrics"]) + ["params", "latency ms", f"Δ {meta['primary']}", "95% CI", "p", "p adj.",
                                                           "P(better) [95% CI]", "equivalence: CI vs margin", "images: Δ 95% CI, p",
                                                           "outcome"] + (["seeds"] if adaptive else [])
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    rows = "".join(_summary_row(row, meta, adaptive) for _, row in summary.iterrows())
    return f"<div class='scroll'><table class='sortable'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"


def _summary_row(row, meta, adaptive):
    cells = [_cell(row["variant"]), _cell(f"{row['runs']}" + (f" ({row['failed']} failed)" if row["failed"] else ""), row["runs"])]
    for metric in meta["metrics"]:
        mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
        cells.append(_cell(_fmt(mean) + ("" if _missing(std) else f" ± {_fmt(std)}"), mean))
    cells.append(_cell(_fmt(row.get("cost.params_mean"), "{:,.0f}"), row.get("cost.params_mean")))
    cells.append(_cell(_fmt(row.get("cost.latency_ms_mean"), "{:.2f}"), row.get("cost.latency_ms_mean")))
    cells.append(_cell(_fmt(row.get("delta"), "{:+.4f}"), row.get("delta")))
    low, high = row.get("delta_ci_low"), row.get("delta_ci_high")
    cells.append(_cell("" if _missing(low) else f"[{low:+.4f}, {high:+.4f}]", low))
    cells.append(_cell(p_text(row.get("p_value")), row.get("p_value")))
    cells.append(_cell(p_text(row.get("p_adjusted")), row.get("p_adjusted")))
    cells.append(_cell(improve_text(row), row.get("p_improve")))
    cells.append(_cell(equivalence_text(row), row.get("equivalence_ci_low")))
    cells.append(_cell(images_text(row), row.get("image_p_value")))
    cells.append(f"<td class='mark'>{escape(outcome_text(row))}</td>")
    if adaptive:
        cells.append(_cell(row.get("seeds_state") or ""))
    return f"<tr class='{escape(str(row['verdict']))}'>{''.join(cells)}</tr>"


def _cell(text, sort_value=None):
    sort = "" if _missing(sort_value) else f" data-sort='{escape(str(sort_value))}'"
    return f"<td{sort}>{escape(str(text))}</td>"


def figure(title, path: Path) -> str:
    """A PNG file as an image embedded in the page."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"<img alt='{escape(title)}' src='data:image/png;base64,{data}'>"


def _per_class_table(per_class, metric):
    if per_class is None or not len(per_class):
        return ""
    head = "<th>variant</th>" + "".join(f"<th>{escape(str(c))}</th>" for c in per_class.columns)
    rows = "".join(
        "<tr>" + _cell(label) + "".join(_cell(_fmt(v, "{:.3f}"), v) for v in values) + "</tr>"
        for label, values in zip(per_class.index, per_class.to_numpy(dtype=float))
    )
    return (f"<h2>{escape(metric)} per class (mean over seeds)</h2>"
            f"<div class='scroll'><table class='sortable'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")


def _timing(summary, records):
    total = sum(r.get("wall_seconds") or 0 for r in records)
    rows = "".join(
        "<tr>" + _cell(row["variant"])
        + _cell(_fmt(row.get("cost.train_images_per_s_mean"), "{:.1f}"), row.get("cost.train_images_per_s_mean"))
        + _cell(_fmt(_mean_wall(records, row["variant_id"]), "{:.1f}"), _mean_wall(records, row["variant_id"])) + "</tr>"
        for _, row in summary.iterrows()
    )
    head = "<th>variant</th><th>train images/s</th><th>wall s per run</th>"
    return (f"<p class='note'>{len(records)} run(s), {total:.1f} s of run time in all.</p>"
            f"<table class='sortable'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _mean_wall(records, variant_id):
    walls = [r["wall_seconds"] for r in records if r["variant_id"] == variant_id and r.get("wall_seconds") is not None]
    return sum(walls) / len(walls) if walls else None


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


def _environment(records):
    environment = next((r.get("environment") for r in records if r.get("environment")), {})
    devices = sorted({r.get("device", "?") for r in records if r["status"] == "ok"})
    wall = sum(r.get("wall_seconds") or 0 for r in records)
    text = json.dumps({"devices": devices, "total_run_seconds": round(wall, 1), **environment}, indent=1)
    return f"<pre>{escape(text)}</pre>"


def _fmt(value, fmt="{:.4f}"):
    return "-" if _missing(value) else fmt.format(value)


def _missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))
