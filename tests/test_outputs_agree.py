"""One result set, every output: the terminal table, ``--wide``, summary.md, the HTML page,
summary.csv, the gate (text, JUnit) and ``compare`` show the same numbers under the same
labels, and the report, ``compare`` and the gate decide with the same rule.

Each output is parsed back the way a reader would read it (the text tables by their
column rulers, the Markdown tables by their cells, the page with html.parser), not
compared with the table module's own rendering only."""

from __future__ import annotations

import csv
import html
import io
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from segbench.gate import compare_results, gate_junit, run_gate, save_baseline
from segbench.report import write_report
from segbench.report.table import compact, summary_columns
from segbench.store import ResultStore

PRIMARY = "miou"
META = {"name": "agree", "description": "", "path": "agree.toml", "text": "", "baseline_id": "a",
        "variant_order": ["a", "b", "c", "d"], "primary": PRIMARY, "metrics": [PRIMARY, "dice"],
        "stats": {"alpha": 0.05, "margin": 0.01, "correction": "holm", "power": 0.8}}
# Seed-level mIoU of each variant: b clearly better, c within the margin, d noisy (8 seeds: enough for
# the exact sign flips to decide under Holm over 3).
MIOU = {"a": [0.7, 0.712, 0.705, 0.708, 0.698, 0.715, 0.703, 0.71],
        "b": [0.76, 0.771, 0.768, 0.766, 0.76, 0.776, 0.763, 0.767],
        "c": [0.701, 0.711, 0.707, 0.708, 0.699, 0.713, 0.705, 0.711],
        "d": [0.7, 0.722, 0.699, 0.723, 0.686, 0.719, 0.723, 0.692]}
LABELS = {"a": "nearest", "b": "bilinear", "c": "bicubic", "d": "pixel shuffle"}


def record(variant_id, seed, miou):
    return {
        "variant_id": variant_id, "label": LABELS[variant_id], "seed": seed, "status": "ok", "suite": "agree",
        "factors": {"model.upsampler": LABELS[variant_id]}, "is_baseline": variant_id == "a",
        "wall_seconds": 30.0 + seed, "started_at": f"2026-12-01T10:0{seed}:00+00:00", "finished_at": f"2026-12-01T10:0{seed}:30+00:00",
        "curves": {"epoch": [1, 2], PRIMARY: [miou - 0.1, miou]},
        "metrics": {PRIMARY: miou, "dice": miou + 0.1},
        "per_class": {PRIMARY: {"background": 0.95, "circle": miou, "square": miou - 0.05}},
        "higher_is_better": {PRIMARY: True, "dice": True},
        "cost": {"params": 123_456 + 10 * seed, "latency_ms": 2.5 + seed / 10},
    }


RECORDS = [record(v, seed, miou) for v, values in MIOU.items() for seed, miou in enumerate(values)]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return write_report(RECORDS, META, tmp_path_factory.mktemp("agree") / "report")


# --- reading each output back ------------------------------------------------------------------


def text_tables(text: str) -> list:
    """Every table of a plain-text output as {label: [cell per row]}: columns are found from
    the ruler line (``---- ----``) under the header; a row's wrapped lines are joined (a
    new row starts where the first column has text)."""
    lines = text.splitlines()
    tables = []
    for index, line in enumerate(lines):
        if not re.fullmatch(r"-+( +-+)*", line):
            continue
        spans = [m.span() for m in re.finditer(r"-+", line)]
        spans[-1] = (spans[-1][0], 10_000)
        cut = lambda text_line: [text_line[start:end].strip() for start, end in spans]  # noqa: E731
        header = cut(lines[index - 1])
        rows = []
        for body in lines[index + 1:]:
            if not body.strip() or body.startswith("(--wide"):
                break
            parts = cut(body)
            if parts[0] or not rows:
                rows.append(parts)
            else:
                rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], parts)]
        tables.append({label: [row[i] for row in rows] for i, label in enumerate(header)})
    return tables


def markdown_tables(text: str) -> list:
    tables, current = [], None
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [unescape_markdown(c.strip()) for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if current is None:
                current = [cells]
            elif not set(line) <= set("|-"):
                current.append(cells)
        elif current is not None:
            tables.append({label: [row[i] for row in current[1:]] for i, label in enumerate(current[0])})
            current = None
    return tables


def unescape_markdown(text: str) -> str:
    return html.unescape(re.sub(r"\\(.)", r"\1", text.replace("**", "")))


class Tables(HTMLParser):
    """Each ``<table>``'s header and cells as text; what is aria-hidden (the outcome's
    symbol, a cue beside the word) is left out, as a screen reader leaves it."""

    def __init__(self):
        super().__init__()
        self.tables, self.cell, self.hidden = [], None, 0

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""
        elif tag == "span" and ("aria-hidden", "true") in attrs:
            self.hidden += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None
        elif tag == "span" and self.hidden:
            self.hidden -= 1

    def handle_data(self, data):
        if self.cell is not None and not self.hidden:
            self.cell += data


def html_tables(page: str) -> list:
    parser = Tables()
    parser.feed(page)
    return [{label: [row[i] for row in rows[1:]] for i, label in enumerate(rows[0])} for rows in parser.tables]


def squashed(table: dict) -> dict:
    """Cells without whitespace: a wrapped cell breaks at spaces."""
    return {label: [re.sub(r"\s+", "", cell) for cell in cells] for label, cells in table.items()}


# --- the tests ---------------------------------------------------------------------------------


def test_every_output_shows_the_same_cells_under_the_same_labels(report):
    columns = summary_columns(META)
    compact_labels = [column.label for column in compact(columns)]
    every_label = [column.label for column in columns]
    terminal = text_tables(report["text"])[0]
    wide = text_tables(report["wide_text"])[0]
    markdown_compact, markdown_every = markdown_tables((report["dir"] / "summary.md").read_text())
    page = html_tables(report["html"].read_text())
    html_compact, html_every = page[0], page[1]
    assert list(terminal) == list(markdown_compact) == list(html_compact) == compact_labels
    assert list(wide) == list(markdown_every) == list(html_every) == every_label
    assert squashed(terminal) == squashed(markdown_compact) == squashed(html_compact)
    assert wide == markdown_every == html_every
    assert {label: wide[label] for label in compact_labels} == html_compact
    assert wide["variant"] == ["nearest", "bilinear", "bicubic", "pixel shuffle"]
    outcomes = [cell.split(":")[0] for cell in wide["outcome"]]
    assert outcomes == ["baseline", "better", "equivalent", "inconclusive"]
    assert "± is the standard deviation" in (report["dir"] / "summary.md").read_text()
    assert all(label.endswith("(mean ± SD)") for label in every_label if "±" in label and "margin" not in label)


def test_the_cells_are_the_csv_numbers_rounded(report):
    """The formatted cells carry summary.csv's numbers (4 decimals), and the CSV's own are
    the statistics computed independently here (numpy/scipy)."""
    from scipy import stats

    rows = list(csv.DictReader(io.StringIO((report["dir"] / "summary.csv").read_text())))
    wide = text_tables(report["wide_text"])[0]
    label = f"Δ {PRIMARY} [95% CI]"
    for index, row in enumerate(rows[1:], start=1):
        variant_id = "abcd"[index]
        diffs = np.subtract(MIOU[variant_id], MIOU["a"])
        mean, low, high = map(float, re.findall(r"[-+]\d\.\d{4}", wide[label][index]))
        assert (mean, low, high) == pytest.approx((float(row["delta"]), float(row["delta_ci_low"]), float(row["delta_ci_high"])), abs=5e-5)
        assert float(row["delta"]) == pytest.approx(diffs.mean())
        interval = stats.ttest_1samp(diffs, 0).confidence_interval(0.95)
        assert (float(row["delta_ci_low"]), float(row["delta_ci_high"])) == pytest.approx((interval.low, interval.high))
        assert wide["p"][index] == _p(float(row["p_value"])) and wide["p adj."][index] == _p(float(row["p_adjusted"]))
    for index, variant_id in enumerate("abcd"):
        mean, sd = map(float, wide[f"{PRIMARY} (mean ± SD)"][index].split(" ± "))
        assert (mean, sd) == pytest.approx((np.mean(MIOU[variant_id]), np.std(MIOU[variant_id], ddof=1)), abs=5e-5)
    equivalent = wide["outcome"][2]
    low, high = (float(row) for row in (rows[2]["equivalence_ci_low"], rows[2]["equivalence_ci_high"]))
    level = float(rows[2]["equivalence_level"])
    assert equivalent == f"equivalent: {(1 - 2 * level) * 100:.3g}% CI [{low:+.4f}, {high:+.4f}] within ±0.01"
    assert wide["equivalence CI vs ±margin"][2].endswith(f"[{low:+.4f}, {high:+.4f}] vs ±0.01")


def _p(value):
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def test_the_findings_open_every_output_and_say_the_same(report):
    terminal = report["text"].splitlines()
    assert terminal[0] == "Findings:"
    found = " ".join(terminal[1:terminal.index("")]).replace("   ", " ").split(" - ")  # wrapped lines continue indented
    found = [line.removeprefix("- ") for line in found]
    assert max(len(line) for line in terminal) <= 100
    assert [line.split(":")[0] for line in found] == ["bilinear vs nearest", "bicubic vs nearest", "pixel shuffle vs nearest"]
    assert "equivalent (Δ +0.0005, 96.7% CI [-0.0008, +0.0018] within ±0.01, 8 seeds)" in found[1]
    assert found[2].endswith("would detect a difference of 0.01")
    markdown = (report["dir"] / "summary.md").read_text()
    markdown_found = [html.unescape(unescape_markdown(line[2:])) for line in markdown.splitlines() if " vs nearest" in line]
    page = report["html"].read_text()
    page_found = [html.unescape(text) for text in re.findall(r"<li class='\w+'><span aria-hidden='true'>.</span> (.*?)</li>", page)]
    assert markdown_found == page_found == found
    assert markdown.index("bilinear vs nearest") < markdown.index("| variant |")
    assert page.index("bilinear vs nearest") < page.index("<table")


def test_gate_junit_and_compare_show_the_reports_numbers(report, tmp_path):
    store = ResultStore(tmp_path / "results", "agree")
    for item in RECORDS:
        store.write(item)
    before = ResultStore(tmp_path / "before", "agree")
    for item in RECORDS:
        before.write({**item, "metrics": {**item["metrics"], PRIMARY: item["metrics"][PRIMARY] + 0.05}})
    baseline = save_baseline(tmp_path / "before", tmp_path / "baseline.json").path
    result = run_gate(tmp_path / "results", baseline, [f"{PRIMARY}:max_drop=0.01"])
    wide = text_tables(report["wide_text"])[0]
    means = [cell.split(" ± ")[0] for cell in wide[f"{PRIMARY} (mean ± SD)"]]
    shown = dict(zip(wide["variant"], means))
    junit = ET.fromstring(gate_junit(result))
    failures = {case.get("name").split(" :: ")[0]: case.find("failure").get("message") for case in junit.iter("testcase")}
    assert {label: re.search(r"-> (\S+)", message).group(1) for label, message in failures.items()} == shown
    comparison = compare_results(tmp_path / "results", tmp_path / "results")
    assert [v.fields[0].name for v in comparison.variants] == [PRIMARY] * 4
    assert {v.label: f"{v.fields[0].mean_b:.4f}" for v in comparison.variants} == shown


def test_compare_decides_a_pair_exactly_as_the_report_does(report, tmp_path):
    """The baseline's runs as result set A, one candidate's (under the same label) as B:
    compare's Δ, interval, p and outcome are the report's for that comparison when the
    report has that one comparison (one family, so the same correction)."""
    for variant_id in "bcd":
        pair = [r for r in RECORDS if r["variant_id"] in ("a", variant_id)]
        meta = {**META, "variant_order": ["a", variant_id]}
        row = write_report(pair, meta, tmp_path / variant_id / "report")["summary"].iloc[1]
        a, b = ResultStore(tmp_path / variant_id / "A", "s"), ResultStore(tmp_path / variant_id / "B", "s")
        for item in pair:
            side = a if item["variant_id"] == "a" else b
            side.write({**item, "label": "same"})
        field = compare_results(tmp_path / variant_id / "A", tmp_path / variant_id / "B").variants[0].fields[0]
        assert field.mark == row["verdict"]
        assert field.comparison["diff"] == pytest.approx(row["delta"])
        assert (field.comparison["ci_low"], field.comparison["ci_high"]) == pytest.approx((row["delta_ci_low"], row["delta_ci_high"]))
        assert field.comparison["p_value"] == pytest.approx(row["p_value"])
        assert field.p_adjusted == pytest.approx(row["p_adjusted"])
        if field.mark == "equivalent":
            assert (field.equivalence_low, field.equivalence_high) == pytest.approx((row["equivalence_ci_low"], row["equivalence_ci_high"]))
            assert field.mark_text == row["outcome"]
        assert not math.isnan(field.comparison["p_value"])
