"""Numbers as every output writes them: the report's tables, the terminal, Markdown and
HTML, the gate, ``compare`` and the exports. One place, so that a value reads the same
wherever it appears.

- values below 10 (metrics, differences, their intervals, milliseconds) with 4 decimals;
- up to 10,000 with 1 decimal (images/s, MB);
- from 10,000 on as grouped integers (parameters, FLOPs);
- p-values with 3 decimals, "<0.001" below that;
- a missing value (None, NaN) as ``-`` in a table, ``n/a`` in a sentence;
- a duration in the unit that reads best (``40 s``, ``12 min``, ``3.5 h``).
"""

from __future__ import annotations

import math

DASH = "-"
NOT_AVAILABLE = "n/a"


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value, absent: str = DASH) -> str:
    if missing(value):
        return absent
    size = abs(value)
    if size >= 10_000:
        return f"{value:,.0f}"
    text = f"{value:.1f}" if size >= 10 else f"{value:.4f}"
    return text.removeprefix("-") if float(text) == 0 else text  # no "-0.0000"


def signed(value, absent: str = DASH) -> str:
    text = number(value, absent)
    return text if text == absent or text.startswith("-") else "+" + text


def interval(low, high, absent: str = DASH) -> str:
    """``[low, high]``, each with its sign."""
    if missing(low) or missing(high):
        return absent
    return f"[{signed(low)}, {signed(high)}]"


def p_text(value, absent: str = DASH) -> str:
    if missing(value):
        return absent
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def mean_sd(mean, sd, absent: str = DASH) -> str:
    """``mean ± sd``: ± is always the standard deviation over seeds, and every label says so."""
    if missing(mean):
        return absent
    return number(mean) + ("" if missing(sd) else f" ± {number(sd)}")


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
