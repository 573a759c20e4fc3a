"""The summary as plain text for the terminal; labels lose escape sequences and control
characters (``segbench.text.one_line``)."""

from __future__ import annotations

import pandas as pd

from ..text import one_line
from .columns import delta_text, improve_text, number, outcome_text, p_text


def summary_text(summary: pd.DataFrame, meta: dict) -> str:
    primary = meta["primary"]
    adaptive = (meta.get("design") or {}).get("kind") == "adaptive"
    rows = []
    for _, row in summary.iterrows():
        line = {"variant": one_line(row["variant"]), "runs": f"{row['runs']}" + (f" ({row['failed']} failed)" if row["failed"] else "")}
        for metric in meta["metrics"]:
            line[metric] = _mean_std(row, metric)
        line[f"Δ{primary} vs baseline [95% CI]"] = delta_text(row)
        line["p"] = p_text(row.get("p_value"))
        line["p adj."] = p_text(row.get("p_adjusted"))
        line["P(better) [95% CI]"] = improve_text(row)
        line["p (images)"] = p_text(row.get("image_p_value"))
        line["outcome"] = outcome_text(row)
        if adaptive:
            line["seeds"] = row.get("seeds_state") or ""
        rows.append(line)
    return pd.DataFrame(rows).to_string(index=False)


def _mean_std(row, metric):
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    return number(mean) + ("" if number(std) == "-" else f" ± {std:.4f}")
