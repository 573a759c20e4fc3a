"""The summary table, declared once: every column's one label and one formatter.

The terminal, ``summary.txt``, ``summary.md``, the HTML page and the exports render these
columns and nothing else, so a number reads the same, under the same label, wherever it
appears (a test renders one result set through each and compares them). ``±`` is always
the standard deviation over seeds, and each such label says so; intervals say their
confidence. The *compact* columns (variant, outcome, the difference with its interval,
the primary metric) lead every output; the full table follows.

A row is one variant of the summary frame (:func:`segbench.report.frames.summary_frame`),
as a dict; summary.csv holds the same rows' raw fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..numbers import interval, mean_sd, missing, number, p_text, signed
from ..verdicts import BASELINE, confidence, outcome_text

TERMINAL_WIDTH = 100
MIN_WRAPPED = 12  # a wrapped column keeps at least this many characters a line


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    text: Callable[[Mapping], str]
    sort: Callable[[Mapping], float | None] | None = None  # numeric order where the text does not sort
    compact: bool = False
    doc: str = ""  # what it means, for the legend


def summary_columns(meta: dict) -> list:
    """Every column of the summary table, in order (compact ones first)."""
    primary = meta["primary"]
    others = [m for m in meta["metrics"] if m != primary]
    columns = [
        Column("variant", "variant", lambda r: str(r["variant"]), compact=True),
        Column("outcome", "outcome", row_outcome, compact=True,
               doc="against the baseline, on the primary metric, with what decided it"),
        Column("delta", f"Δ {primary} [95% CI]", delta_text, lambda r: _value(r, "delta"), compact=True,
               doc=f"mean over paired seeds of the variant's {primary} minus the baseline's, with its 95% t interval"),
        _metric_column(primary, compact=True),
        Column("runs", "runs", lambda r: f"{r['runs']}" + (f" ({r['failed']} failed)" if r.get("failed") else ""),
               lambda r: _value(r, "runs")),
        *[_metric_column(metric) for metric in others],
        Column("p", "p", lambda r: p_text(r.get("p_value")), lambda r: _value(r, "p_value"),
               doc="two-sided paired t-test over seeds"),
        Column("p_adjusted", "p adj.", lambda r: p_text(r.get("p_adjusted")), lambda r: _value(r, "p_adjusted"),
               doc="after the multiplicity correction; better/worse when at most alpha"),
        Column("equivalence", "equivalence CI vs ±margin", equivalence_text, lambda r: _value(r, "equivalence_ci_low"),
               doc="the TOST interval: equivalent when it lies within ±margin"),
        Column("p_improve", "P(better) [95% CI]", improve_text, lambda r: _value(r, "p_improve"),
               doc="the share of paired seeds on which the variant beats the baseline, with its exact (Clopper-Pearson) 95% interval; a failed run is a loss"),
        Column("images", "images: Δ 95% CI, p", images_text, lambda r: _value(r, "image_p_value"),
               doc="a bootstrap over validation images of the same Δ: test-set noise only, the seeds decide"),
        Column("params", "params", lambda r: number(r.get("cost.params_mean")), lambda r: _value(r, "cost.params_mean")),
        Column("latency", "latency ms", lambda r: number(r.get("cost.latency_ms_mean")), lambda r: _value(r, "cost.latency_ms_mean")),
    ]
    if (meta.get("design") or {}).get("kind") == "adaptive":
        columns.append(Column("seeds", "seeds", lambda r: str(r.get("seeds_state") or "")))
    return columns


def summary_rows(summary) -> list:
    """The summary frame's rows as dicts, in order (NaN stays NaN)."""
    return summary.to_dict("records") if len(summary) else []


def compact(columns: list) -> list:
    return [column for column in columns if column.compact]


def _metric_column(metric: str, compact: bool = False) -> Column:
    return Column(f"metric:{metric}", f"{metric} (mean ± SD)", lambda r: mean_sd(r.get(f"{metric}_mean"), r.get(f"{metric}_std")),
                  lambda r: _value(r, f"{metric}_mean"), compact=compact, doc="over seeds; ± is the standard deviation")


def _value(row, key):
    value = row.get(key)
    return None if missing(value) else float(value)


# --- the formatters -----------------------------------------------------------------------------


def is_baseline(row) -> bool:
    return row.get("verdict") == BASELINE


def row_outcome(row) -> str:
    """The row's outcome as every output words it (segbench.verdicts.outcome_text)."""
    verdict = str(row.get("verdict") or "-")
    return outcome_text(verdict, margin=_float(row.get("margin")), low=_float(row.get("equivalence_ci_low")),
                        high=_float(row.get("equivalence_ci_high")), level=_float(row.get("equivalence_level")),
                        p_adjusted=_float(row.get("p_adjusted")), mde=_float(row.get("mde")), reason=str(row.get("reason") or ""))


def delta_text(row) -> str:
    """Δ [95% CI], or "(baseline)"."""
    if is_baseline(row):
        return "(baseline)"
    if missing(row.get("delta")):
        return "-"
    shown = interval(row.get("delta_ci_low"), row.get("delta_ci_high"), "")
    return signed(row["delta"]) + (f" {shown}" if shown else "")


def equivalence_text(row) -> str:
    if is_baseline(row) or missing(row.get("equivalence_ci_low")):
        return "-"
    return f"{confidence(_float(row.get('equivalence_level')))} {interval(row['equivalence_ci_low'], row['equivalence_ci_high'])} vs ±{row['margin']:g}"


def improve_text(row) -> str:
    if is_baseline(row) or missing(row.get("p_improve")):
        return "-"
    return f"{row['p_improve']:.2f} [{row['p_improve_ci_low']:.2f}, {row['p_improve_ci_high']:.2f}]"


def images_text(row) -> str:
    if is_baseline(row) or missing(row.get("image_ci_low")):
        return "-"
    return f"{interval(row['image_ci_low'], row['image_ci_high'])} p {p_text(row.get('image_p_value'))}"


def _float(value) -> float:
    return math.nan if missing(value) else float(value)


# --- rendering ----------------------------------------------------------------------------------


def cells(columns: list, rows: list) -> list:
    """Every row's text in every column: what each output shows."""
    return [[column.text(row) for column in columns] for row in rows]


def text_table(columns: list, rows: list, width: int | None = TERMINAL_WIDTH, clean=str) -> str:
    """A plain-text table; with ``width``, the widest columns wrap so that every line fits
    in it. ``clean`` makes a cell safe for the medium."""
    table = [[clean(column.label) for column in columns]] + [[clean(text) for text in line] for line in cells(columns, rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    if width is not None:
        widths = _fit(widths, table, width)
    lines = []
    for number_, line in enumerate(table):
        wrapped = [wrap(text, widths[i]) for i, text in enumerate(line)]
        for depth in range(max(len(parts) for parts in wrapped)):
            lines.append("  ".join((parts[depth] if depth < len(parts) else "").ljust(widths[i])
                                   for i, parts in enumerate(wrapped)).rstrip())
        if number_ == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def wrap(text: str, width: int) -> list:
    """``text`` in lines of at most ``width``: broken at spaces, or after ``(``, ``,`` and
    ``=`` (a variant label has few spaces), a word longer than a line cut."""
    lines, line = [], ""
    for token in re.findall(r"[^\s(,=]*[(,=]\s*|\S+\s*|\s+", text):
        if line and len(line + token.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        while len(token.rstrip()) > width:
            lines.append(token[:width])
            token = token[width:]
        line += token
    return lines + [line.rstrip()] if line.strip() or not lines else lines


def _fit(widths: list, table: list, width: int) -> list:
    """Narrow the widest column, one character at a time, until the table fits (or every
    column is down to MIN_WRAPPED)."""
    widths = list(widths)
    while sum(widths) + 2 * (len(widths) - 1) > width:
        widest = max(range(len(widths)), key=lambda i: widths[i])
        if widths[widest] <= MIN_WRAPPED:
            break
        widths[widest] -= 1
    return widths


def markdown_table(columns: list, rows: list, escape) -> str:
    lines = ["| " + " | ".join(escape(column.label) for column in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(escape(text) for text in line) + " |" for line in cells(columns, rows)]
    return "\n".join(lines)


def legend(columns: list) -> list:
    """``(label, what it means)`` of each documented column."""
    return [(column.label, column.doc) for column in columns if column.doc]
