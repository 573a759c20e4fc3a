"""The summary as plain text for the terminal and ``summary.txt``: the findings (wrapped at
100 columns, each continued with an indent), then the compact table, which fits 100
columns (long cells wrap); ``--wide`` shows every column instead. Labels lose escape sequences and control characters (``segbench.text.one_line``)."""

from __future__ import annotations

import textwrap

from ..text import one_line
from .findings import findings
from .table import TERMINAL_WIDTH, compact, summary_columns, text_table


def summary_text(rows: list, records: list, meta: dict, wide: bool = False) -> str:
    """The findings in words, then the compact table (or, ``wide``, every column)."""
    columns = summary_columns(meta)
    found = findings(rows, records, meta)
    lines = [line for item in found for line in textwrap.wrap(f"- {one_line(item.text)}", TERMINAL_WIDTH, subsequent_indent="  ",
                                                               break_on_hyphens=False)]
    parts = ["\n".join(["Findings:", *lines])] if found else []
    if wide:
        parts.append(text_table(columns, rows, None, one_line))
    else:
        parts.append(text_table(compact(columns), rows, TERMINAL_WIDTH, one_line) + "\n(--wide for every column)")
    return "\n\n".join(parts)
