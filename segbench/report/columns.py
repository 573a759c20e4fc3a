"""The comparison columns of a summary row as text, shared by the terminal, Markdown and
HTML tables so that the three always say the same thing."""

from __future__ import annotations

import math

DASH = "-"


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value, fmt="{:.4f}") -> str:
    return DASH if missing(value) else fmt.format(value)


def p_text(value) -> str:
    if missing(value):
        return DASH
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def is_baseline(row) -> bool:
    return row.get("verdict") == "baseline"


def delta_text(row, key="delta", low="delta_ci_low", high="delta_ci_high") -> str:
    """Δ [95% CI], or "(baseline)"."""
    if is_baseline(row):
        return "(baseline)"
    if missing(row.get(key)):
        return DASH
    interval = "" if missing(row.get(low)) else f" [{row[low]:+.4f}, {row[high]:+.4f}]"
    return f"{row[key]:+.4f}{interval}"


def images_text(row) -> str:
    """The image bootstrap's 95% CI of the same Δ, with its p."""
    if is_baseline(row) or missing(row.get("image_ci_low")):
        return DASH
    return f"[{row['image_ci_low']:+.4f}, {row['image_ci_high']:+.4f}] p {p_text(row.get('image_p_value'))}"


def improve_text(row) -> str:
    """P(candidate beats baseline) over paired seeds, with its bootstrap 95% CI."""
    if is_baseline(row) or missing(row.get("p_improve")):
        return DASH
    return f"{row['p_improve']:.2f} [{row['p_improve_ci_low']:.2f}, {row['p_improve_ci_high']:.2f}]"


def outcome_text(row) -> str:
    """The outcome and what backs it: "inconclusive (MDE 0.0312)", "equivalent (within ±0.01)"."""
    verdict = str(row.get("verdict") or DASH)
    detail = row.get("evidence")
    return verdict + (f" ({detail})" if isinstance(detail, str) and detail else "")


def equivalence_text(row) -> str:
    """The TOST interval checked against ±margin."""
    if is_baseline(row) or missing(row.get("equivalence_ci_low")):
        return DASH
    return f"[{row['equivalence_ci_low']:+.4f}, {row['equivalence_ci_high']:+.4f}] vs ±{row['margin']:g}"
