"""Numbers as the gate prints them: 4 significant digits, thousands grouped when large."""

from __future__ import annotations

import math

import numpy as np


def mean_of(values: dict) -> float:
    """Mean of ``{seed: value}``; NaN when empty."""
    return float(np.mean(list(values.values()))) if values else math.nan


def format_number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 10_000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def format_change(value) -> str:
    text = format_number(value)
    return text if text.startswith("-") or text == "n/a" else "+" + text


def format_p(value) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"
