"""The summary as GitHub-flavoured Markdown, for CI job summaries and pull-request
comments. Text from suites and datasets goes through :func:`segbench.text.escape_markdown`
(the gate's Markdown uses the same): HTML special characters become entities (GitHub
renders inline HTML), Markdown punctuation cannot make links or emphasis, ``|`` cannot end a
table cell early and a newline cannot end a row."""

from __future__ import annotations

import pandas as pd

from ..design import DEFAULT_MARGIN
from ..text import escape_markdown
from .columns import delta_text, images_text, improve_text, missing, outcome_text, p_text


def summary_markdown(summary: pd.DataFrame, meta: dict, failures: list) -> str:
    primary = meta["primary"]
    adaptive = (meta.get("design") or {}).get("kind") == "adaptive"
    lines = [f"## segbench: {escape_markdown(meta['name'])}", ""]
    if meta.get("description"):
        lines += [escape_markdown(meta["description"]), ""]
    headers = ["variant", "runs", *meta["metrics"], f"Δ {primary} [95% CI]", "p", "p adj.", "P(better) [95% CI]",
               "images: Δ 95% CI, p", "outcome"] + (["seeds"] if adaptive else [])
    lines += ["| " + " | ".join(escape_markdown(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    for _, row in summary.iterrows():
        cells = [escape_markdown(row["variant"]), str(row["runs"]) + (f" ({row['failed']} failed)" if row["failed"] else "")]
        cells += [_mean_ci(row, metric) for metric in meta["metrics"]]
        cells += [delta_text(row), p_text(row.get("p_value")), p_text(row.get("p_adjusted")), improve_text(row), images_text(row)]
        cells.append(_mark(row))
        if adaptive:
            cells.append(escape_markdown(row.get("seeds_state") or ""))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", escape_markdown(explanation(meta))]
    if failures:
        lines += ["", f"**{len(failures)} failed run(s):**", ""]
        lines += [f"- {escape_markdown(r['label'])} seed {r['seed']}: {escape_markdown(r['error']['type'])}: "
                  f"{escape_markdown(r['error']['message'])}" for r in failures]
    return "\n".join(lines) + "\n"


def explanation(meta: dict) -> str:
    """How to read the comparison columns (the HTML report says the same)."""
    stats = meta.get("stats") or {}
    primary = meta["primary"]
    margins = stats.get("margins") or {}
    margin = margins.get(primary, stats.get("margin", DEFAULT_MARGIN))
    correction = stats.get("correction", "holm")
    direction = "higher" if (meta.get("higher_is_better") or {}).get(primary, True) else "lower"
    return (f"Means ± 95% CI over seeds. Δ is {primary} minus the baseline's ({direction} is better), paired by seed. "
            f"better / worse: the paired t-test over seeds is significant at alpha {stats.get('alpha', 0.05):g} after "
            f"{'Holm' if correction == 'holm' else 'no'} correction over the comparisons (p adj.); equivalent: the two one-sided "
            f"tests put Δ within ±{margin:g}; inconclusive: neither, with the minimum detectable effect (MDE) of these seeds "
            f"at {stats.get('power', 0.8):.0%} power. P(better): the share of paired seeds on which the variant beats the baseline. images: a bootstrap "
            "over validation images of the same Δ (test-set noise only; seeds decide).")


def _mark(row):
    text = outcome_text(row)
    return f"**{escape_markdown(text)}**" if row["verdict"] in ("better", "worse") else escape_markdown(text)


def _mean_ci(row, metric):
    mean, half = row.get(f"{metric}_mean"), row.get(f"{metric}_ci95")
    if missing(mean):
        return "-"
    return f"{mean:.4f}" + ("" if missing(half) else f" ± {half:.4f}")
