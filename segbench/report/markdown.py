"""The summary as GitHub-flavoured Markdown, for CI job summaries and pull-request
comments. Text from suites and datasets is escaped: HTML special characters become
entities (GitHub renders inline HTML), ``|`` cannot end a table cell early and a newline
cannot end a row."""

from __future__ import annotations

import html
import math

import pandas as pd


def escape_markdown(text) -> str:
    text = html.escape(str(text), quote=False)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.splitlines())


def summary_markdown(summary: pd.DataFrame, meta: dict, failures: list) -> str:
    primary = meta["primary"]
    lines = [f"## segbench: {escape_markdown(meta['name'])}", ""]
    if meta.get("description"):
        lines += [escape_markdown(meta["description"]), ""]
    headers = ["variant", "runs", *meta["metrics"], f"Δ {primary} (seeds) [95% CI]", "p", f"Δ {primary} (images) [95% CI]", "p", "verdict"]
    lines += ["| " + " | ".join(escape_markdown(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    for _, row in summary.iterrows():
        cells = [escape_markdown(row["variant"]), str(row["runs"]) + (f" ({row['failed']} failed)" if row["failed"] else "")]
        cells += [_mean_ci(row, metric) for metric in meta["metrics"]]
        cells += [_delta(row, "delta", "delta_ci_low", "delta_ci_high"), _number(row.get("p_value"), "{:.3f}")]
        cells += [_delta(row, "image_delta", "image_ci_low", "image_ci_high"), _number(row.get("image_p_value"), "{:.3f}")]
        cells.append(_mark(row))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Means ± 95% CI over seeds. Δ is the difference from the baseline in {escape_markdown(primary)}: "
              "paired by seed (t-test), and paired over validation images (bootstrap). The mark follows the seed test "
              "when there are two or more seeds."]
    if failures:
        lines += ["", f"**{len(failures)} failed run(s):**", ""]
        lines += [f"- {escape_markdown(r['label'])} seed {r['seed']}: {escape_markdown(r['error']['type'])}: "
                  f"{escape_markdown(r['error']['message'])}" for r in failures]
    return "\n".join(lines) + "\n"


def _mark(row):
    mark = {"better": "**better**", "worse": "**worse**"}.get(row["verdict"], str(row["verdict"]))
    return mark + (f" ({escape_markdown(row['evidence'])})" if row.get("evidence") else "")


def _mean_ci(row, metric):
    mean, half = row.get(f"{metric}_mean"), row.get(f"{metric}_ci95")
    if _missing(mean):
        return "-"
    return f"{mean:.4f}" + ("" if _missing(half) else f" ± {half:.4f}")


def _delta(row, key, low_key, high_key):
    if row["verdict"] == "baseline":
        return "(baseline)"
    delta, low, high = row.get(key), row.get(low_key), row.get(high_key)
    if _missing(delta):
        return "-"
    return f"{delta:+.4f}" + ("" if _missing(low) else f" [{low:+.4f}, {high:+.4f}]")


def _number(value, fmt):
    return "-" if _missing(value) else fmt.format(value)


def _missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))
