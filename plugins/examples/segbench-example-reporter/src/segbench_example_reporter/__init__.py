"""An example segbench reporter, ``leaderboard``: the variants ranked by the suite's primary
metric (mean over seeds, in the metric's own direction), written to
``report/leaderboard.json`` and shown as a section of ``report/index.html``.

Labels come from suite files: the section escapes them (``html.escape``), as every reporter
must escape text it puts into the page."""

import json
import math
from html import escape

from segbench import ReportSection, hookimpl

FILE_NAME = "leaderboard.json"


def leaderboard(context):
    """The variants ranked by the primary metric: report/leaderboard.json and a report section."""
    primary = context.meta["primary"]
    higher = (context.meta.get("higher_is_better") or {}).get(primary, True)
    ranking = ranked(context.summary, primary, higher)
    board = {"suite": context.meta["name"], "metric": primary, "higher_is_better": higher, "ranking": ranking}
    context.report_dir.mkdir(parents=True, exist_ok=True)
    (context.report_dir / FILE_NAME).write_text(json.dumps(board, indent=1) + "\n")
    rows = "".join(f"<tr><td>{entry['rank']}</td><td>{escape(entry['variant'])}</td><td>{entry['mean']:.4f}</td></tr>"
                   for entry in ranking)
    table = f"<table><thead><tr><th>rank</th><th>variant</th><th>{escape(primary)}</th></tr></thead><tbody>{rows}</tbody></table>"
    return [ReportSection("Leaderboard", table)]


def ranked(summary, primary, higher_is_better):
    """The variants with a mean of ``primary``, best first (ties keep the suite's order)."""
    column = f"{primary}_mean"
    entries = [{"variant": str(row["variant"]), "variant_id": str(row["variant_id"]), "mean": float(row[column])}
               for _, row in summary.iterrows() if column in summary and not math.isnan(row[column])]
    entries.sort(key=lambda entry: -entry["mean"] if higher_is_better else entry["mean"])
    return [{"rank": rank, **entry} for rank, entry in enumerate(entries, start=1)]


@hookimpl
def segbench_reporters(register):
    register.add_reporter("leaderboard", leaderboard)
