"""The summary as plain text for the terminal."""

from __future__ import annotations

import math

import pandas as pd


def summary_text(summary: pd.DataFrame, meta: dict) -> str:
    primary = meta["primary"]
    rows = []
    for _, row in summary.iterrows():
        line = {"variant": row["variant"], "runs": f"{row['runs']}" + (f" ({row['failed']} failed)" if row["failed"] else "")}
        for metric in meta["metrics"]:
            line[metric] = _mean_std(row, metric)
        line[f"Δ{primary} vs baseline [95% CI]"] = _delta(row)
        line["p (seeds)"] = _number(row.get("p_value"), "{:.3f}")
        line["p (images)"] = _number(row.get("image_p_value"), "{:.3f}")
        line["verdict"] = row["verdict"] + (f" ({row['evidence']})" if row.get("evidence") else "")
        rows.append(line)
    return pd.DataFrame(rows).to_string(index=False)


def _mean_std(row, metric):
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.4f} ± {std:.4f}" if not math.isnan(std) else f"{mean:.4f}"


def _delta(row):
    if row["verdict"] == "baseline":
        return "(baseline)"
    delta, low, high = row.get("delta"), row.get("delta_ci_low"), row.get("delta_ci_high")
    if delta is None or math.isnan(delta):
        return "-"
    interval = f" [{low:+.4f}, {high:+.4f}]" if low is not None and not math.isnan(low) else ""
    return f"{delta:+.4f}{interval}"


def _number(value, fmt):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)
