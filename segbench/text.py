"""Text from suites, datasets and plugins, made safe for where it lands.

Labels, descriptions, class names and plugin metadata are written by people we do not
control. Each destination has its own hazard:

- a terminal runs escape sequences (colours, cursor moves, window titles, hyperlinks):
  :func:`terminal` and :func:`one_line` drop them and every other control character;
- a spreadsheet runs a CSV cell that starts with ``= + - @``, a tab or a CR as a formula
  (OWASP, "CSV Injection"): :func:`csv_cell` and :func:`csv_text` prefix such a text cell
  with a single quote, so it opens as text; numbers are left alone;
- a plot parses ``$...$`` as mathtext (a bad formula fails the whole report) and hands
  text to LaTeX when ``text.usetex`` is on: every drawing runs under :func:`literal_text`,
  which turns both off, and its labels go through :func:`plot_label` (no control characters).

- Markdown (a job summary, a pull-request comment) renders inline HTML, links, emphasis and
  code spans, and a ``|`` or a newline ends a table cell or row: :func:`escape_markdown`,
  the one escaper of the report's and the gate's Markdown.

HTML and JUnit have their own escaping where they are written (``segbench.report.html``,
``segbench.gate.render``).
"""

from __future__ import annotations

import functools
import html
import re

# ECMA-48 escape sequences, 7-bit (ESC ...) and 8-bit (C1) forms:
ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"  # CSI: colours, cursor moves, erasing
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, SOS, PM, APC strings: titles, links
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]"  # other ESC sequences (ESC c resets the terminal)
)
# What is left of a sequence, and every other C0/C1 control but the newline; a tab and a CR
# would break the alignment of a table (a CR can overwrite what came before on its line).
# Also the Unicode bidirectional overrides and isolates, which reorder what a line shows.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# Markdown punctuation that could make a link, emphasis, a code span or strike-through, or end
# a table cell; the backslash too, so that no escape can be undone.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")

# Cells a spreadsheet would read as a formula (OWASP); prefixing "'" makes them text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A text cell that is only a number cannot be a formula: "-0.5" stays "-0.5".
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def terminal(text) -> str:
    """``text`` for the terminal: escape sequences and control characters removed,
    newlines kept."""
    return CONTROL.sub("", ESCAPE_SEQUENCE.sub("", str(text)))


def one_line(text) -> str:
    """``text`` for one line of the terminal (a table cell, a list entry)."""
    return " ".join(terminal(text).splitlines())


def clipped(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plot_label(text) -> str:
    """``text`` for a plot label, title, legend or tick: one line, no control characters
    (matplotlib would draw them as missing glyphs)."""
    return one_line(text)


# matplotlib >= 3.5 reads these when it makes each Text: no mathtext, no LaTeX.
LITERAL_TEXT = {"text.parse_math": False, "text.usetex": False}


def literal_text(draw):
    """Decorate a function that draws a figure so that all its text is drawn as written.
    The whole function runs under ``LITERAL_TEXT``: tick labels are made as late as saving."""
    @functools.wraps(draw)
    def drawn(*args, **kwargs):
        import matplotlib  # only when drawing

        with matplotlib.rc_context(LITERAL_TEXT):
            return draw(*args, **kwargs)
    return drawn


def escape_markdown(text) -> str:
    """``text`` safe inside a Markdown table cell or line: HTML special characters as
    entities, Markdown punctuation backslash-escaped, lines joined. Rendered, it reads as
    written (``a\\_b`` shows ``a_b``)."""
    text = html.escape(str(text), quote=False)
    text = MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return " ".join(text.splitlines())


def csv_cell(value):
    """A CSV cell (or header) that a spreadsheet opens as text, never as a formula. Only
    strings change; numbers, and strings that are only a number, stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_text(frame, **to_csv) -> str:
    """``frame.to_csv(**to_csv)`` with every text cell, header and index label passed
    through :func:`csv_cell`."""
    from pandas.api.types import is_numeric_dtype

    safe = frame.copy()
    for column in safe.columns:
        if not is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(csv_cell)
    safe.columns = safe.columns.map(csv_cell)
    safe.index = safe.index.map(csv_cell)
    if isinstance(to_csv.get("index_label"), str):
        to_csv["index_label"] = csv_cell(to_csv["index_label"])
    return safe.to_csv(**to_csv)
