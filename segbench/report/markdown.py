"""The summary as GitHub-flavoured Markdown, for CI job summaries and pull-request
comments: the findings, the compact table, then every column and how to read them. Text
from suites and datasets goes through :func:`segbench.text.escape_markdown` (the gate's
Markdown uses the same): HTML special characters become entities (GitHub renders inline
HTML), Markdown punctuation cannot make links or emphasis, ``|`` cannot end a table cell
early and a newline cannot end a row."""

from __future__ import annotations

from ..design import DEFAULT_MARGIN
from ..numbers import number
from ..text import escape_markdown
from .devices import TIMED_COSTS, cost_by_device
from .findings import findings
from .table import compact, legend, markdown_table, summary_columns

STRONG = ("better:", "worse:", "degenerate:", "unstable:")  # outcome cells shown in bold


def summary_markdown(rows: list, records: list, meta: dict, header: list) -> str:
    """``header``: the report's provenance lines (when the runs ran, with what)."""
    columns = summary_columns(meta)
    lines = [f"## segbench: {escape_markdown(meta['name'])}", "", *(f"{escape_markdown(line)}  " for line in header), ""]
    found = findings(rows, records, meta)
    if found:
        lines += [*(f"- {escape_markdown(item.text)}" for item in found), ""]
    lines += [markdown_table(compact(columns), rows, _cell), "", "### Every column", "",
              markdown_table(columns, rows, _cell), "", escape_markdown(explanation(meta)), ""]
    lines += [f"- **{escape_markdown(label)}**: {escape_markdown(doc)}" for label, doc in legend(columns)]
    lines += device_section(records, [row.get("variant_id") for row in rows])
    failures = [r for r in records if r["status"] != "ok"]
    if failures:
        lines += ["", f"**{len(failures)} failed run(s):**", ""]
        lines += [f"- {escape_markdown(r['label'])} seed {r['seed']}: {escape_markdown(r['error']['type'])}: "
                  f"{escape_markdown(r['error']['message'])}" for r in failures]
    return "\n".join(lines) + "\n"


def device_section(records: list, order: list) -> list:
    """The timed costs of each variant on each device, when the runs ran on several."""
    table = cost_by_device(records, order)
    if table.empty:
        return []
    head = ["variant", "device", "runs", *(name.replace("_", " ") for name in TIMED_COSTS)]
    lines = ["", "### Cost by device", "", "The runs ran on more than one kind of device; these costs are each device's own.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.to_dict("records"):
        cells = [row["variant"], row["device"], str(row["runs"]), *(number(row[f"cost.{name}"]) for name in TIMED_COSTS)]
        lines.append("| " + " | ".join(escape_markdown(str(cell)) for cell in cells) + " |")
    return lines


def _cell(text: str) -> str:
    """A cell escaped; the word of a decided or degenerate outcome in bold, so that it stands out."""
    if text.startswith(STRONG):
        word, _, rest = text.partition(":")
        return f"**{escape_markdown(word)}**:{escape_markdown(rest)}"
    return escape_markdown(text)


def explanation(meta: dict) -> str:
    """How the outcomes are decided (the HTML report says the same)."""
    stats = meta.get("stats") or {}
    primary = meta["primary"]
    margins = stats.get("margins") or {}
    margin = margins.get(primary, stats.get("margin", DEFAULT_MARGIN))
    correction = stats.get("correction", "holm")
    direction = "higher" if (meta.get("higher_is_better") or {}).get(primary, True) else "lower"
    return (f"± is the standard deviation over seeds. Δ is {primary} minus the baseline's ({direction} is better), paired by seed, "
            f"with its 95% interval. better / worse: the paired t-test over seeds is significant at alpha {stats.get('alpha', 0.05):g} "
            f"after {'Holm' if correction == 'holm' else 'no'} correction over the comparisons (p adj.); equivalent: the two one-sided "
            f"tests put Δ within ±{margin:g}, shown with the interval they check (its confidence is 1 - 2 x the level they faced); "
            f"inconclusive: neither, with the minimum detectable effect (MDE) of these seeds at {stats.get('power', 0.8):.0%} power; "
            "degenerate: a run collapsed (every foreground class scores 0) or every variant predicts the same, so no statistic "
            "can vouch for the comparison; unstable: a run of the variant failed (e.g. diverged), which counts against it: it is "
            "never better or equivalent on the seeds that finished, and P(better) counts the failed seed as a loss.")
