"""Gate and compare results as terminal text, GitHub-flavoured Markdown (CI job
summaries) and JUnit XML (CI test reports).

Labels come from suite files. The terminal text has no escape sequences or control
characters (``segbench.text``); Markdown escapes HTML-special characters (GitHub renders
inline HTML), ``|`` (it would end a table cell) and newlines (they would end a row); JUnit
is built with ElementTree, and characters XML 1.0 cannot hold are replaced.
"""

from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import SegbenchError
from ..numbers import NOT_AVAILABLE, interval, number, p_text, signed
from ..store import write_text_atomic
from ..text import escape_markdown, one_line, terminal
from .checks import FAIL, PASS, SKIP, Check, GateResult
from .compare import MARKS, Comparison

XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
STATUS_MARK = {PASS: "✅ pass", FAIL: "❌ fail", SKIP: "⏭️ skipped"}
NOISE_NOTE = ("A change beyond a rule's threshold fails only when it is also outside the seed noise "
              "(paired t-test by seed when both sides have the same seeds, else Welch; p < 0.05), "
              "unless the rule says noise=ignore or a side has fewer than 2 seeds.")


def write_file(path, text: str) -> Path:
    path = Path(path)
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise SegbenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


# ----------------------------------------------------------------------------- gate


def gate_text(result: GateResult) -> str:
    lines = [_suite_mismatch(result)] if _suite_mismatch(result) else []
    lines += [f"FAIL {one_line(check.fails())}" for check in result.failures]
    lines += [f"new, not gated: {one_line(label)} ({variant_id})" for variant_id, label in result.new_variants]
    lines += [f"matched by label: {one_line(label)} (its configuration changed: id {old} -> {new}; "
              "save a new baseline to gate by id again)" for label, old, new in result.relabelled]
    return terminal("\n".join(lines + [gate_summary(result)]))


def gate_summary(result: GateResult) -> str:
    shape = f"{len(result.rules)} rule(s) x {result.variant_count} variant(s)"
    extras = []
    in_noise = sum(check.beyond_threshold_in_noise for check in result.checks)
    if in_noise:
        extras.append(f"{in_noise} beyond the threshold but within the seed noise")
    skipped = sum(check.status == SKIP for check in result.checks)
    if skipped:
        extras.append(f"{skipped} skipped")
    extra = f" ({'; '.join(extras)})" if extras else ""
    if result.passed:
        return f"gate passed: {len(result.checks)} check(s), {shape}, against baseline {result.baseline.path}{extra}"
    return f"gate FAILED: {len(result.failures)} of {len(result.checks)} check(s) failed, {shape}, against baseline {result.baseline.path}{extra}"


def gate_markdown(result: GateResult) -> str:
    verdict = "✅ passed" if result.passed else "❌ failed"
    lines = [f"## segbench gate {verdict}: {escape_markdown(result.suite)}", "", escape_markdown(gate_summary(result)), ""]
    headers = ["result", "variant", "metric", "rule", "baseline", "current", "change", "allowed", "note"]
    lines += [_markdown_row(headers), "|" + "---|" * len(headers)]
    lines += [_markdown_row(_check_cells(check)) for check in result.checks]
    if result.new_variants:
        lines += ["", "**New variants, not gated:**", ""]
        lines += [f"- {escape_markdown(label)} ({escape_markdown(variant_id)})" for variant_id, label in result.new_variants]
    lines += ["", f"Baseline: {escape_markdown(result.baseline.path)} (suite {escape_markdown(result.baseline.suite)}, "
              f"saved {escape_markdown(result.baseline.created)}); rules from {escape_markdown(result.rules_source)}. "
              + NOISE_NOTE]
    return "\n".join(lines) + "\n"


def _check_cells(check: Check) -> list:
    values = check.baseline and check.current and not check.problem
    numbers = [number(check.baseline_mean, NOT_AVAILABLE) if check.baseline else NOT_AVAILABLE,
               number(check.current_mean, NOT_AVAILABLE) if check.current else NOT_AVAILABLE,
               signed(check.current_mean - check.baseline_mean, NOT_AVAILABLE) if values else NOT_AVAILABLE,
               check.allowed_text if check.baseline else NOT_AVAILABLE]
    return [STATUS_MARK[check.status], escape_markdown(check.label), escape_markdown(check.rule.metric),
            escape_markdown(str(check.rule)), *map(escape_markdown, numbers), escape_markdown(check.reason)]


def gate_junit(result: GateResult) -> str:
    """One ``<testcase>`` per rule x baseline variant; ``<failure>`` for a regression,
    ``<skipped>`` for a check the baseline has no values for."""
    counts = {"tests": str(len(result.checks)), "failures": str(len(result.failures)), "errors": "0",
              "skipped": str(sum(check.status == SKIP for check in result.checks))}
    root = ET.Element("testsuites", {"name": "segbench gate", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": _xml(result.suite), **counts,
                                              "timestamp": datetime.datetime.now().isoformat(timespec="seconds")})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("baseline", result.baseline.path), ("rules", result.rules_source)):
        ET.SubElement(properties, "property", name=name, value=_xml(value))
    for check in result.checks:
        _junit_case(suite, result.suite, check)
    if result.new_variants:
        new = "\n".join(f"new, not gated: {label} ({variant_id})" for variant_id, label in result.new_variants)
        ET.SubElement(suite, "system-out").text = _xml(new)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _junit_case(parent, suite_name: str, check: Check):
    case = ET.SubElement(parent, "testcase", classname=_xml(suite_name), name=_xml(f"{check.label} :: {check.rule}"))
    if check.status == FAIL:
        ET.SubElement(case, "failure", message=_xml(check.message), type="regression").text = _xml(check.message)
    elif check.status == SKIP:
        ET.SubElement(case, "skipped", message=_xml(check.reason))
    elif check.reason:
        ET.SubElement(case, "system-out").text = _xml(check.reason)


# ----------------------------------------------------------------------------- compare


def compare_text(comparison: Comparison) -> str:
    lines = [f"compare: A = {one_line(comparison.dir_a)} (suite {one_line(comparison.suite_a)}), "
             f"B = {one_line(comparison.dir_b)} (suite {one_line(comparison.suite_b)}); differences are B - A"]
    headers = COMPARE_HEADERS
    for variant in comparison.variants:
        lines += ["", f"{one_line(variant.label)} ({variant.id})", *_aligned([headers, *(_field_cells(item) for item in variant.fields)], indent="  ")]
    lines += _one_sided_lines(comparison, one_line)
    lines += ["", compare_summary(comparison), compare_note(comparison)]
    return terminal("\n".join(lines))


def compare_summary(comparison: Comparison) -> str:
    marks = comparison.marks()
    counted = ", ".join(f"{marks[mark]} {mark}" for mark in MARKS if marks.get(mark))
    by_label = f" ({len(comparison.relabelled)} matched by label)" if comparison.relabelled else ""
    return f"{len(comparison.variants)} variant(s) in both{by_label}: {counted or 'nothing to compare'}"


def compare_markdown(comparison: Comparison) -> str:
    lines = [f"## segbench compare: {escape_markdown(comparison.suite_a)} (A) vs {escape_markdown(comparison.suite_b)} (B)", "",
             escape_markdown(compare_summary(comparison)), ""]
    headers = ["variant", *COMPARE_HEADERS]
    lines += [_markdown_row(headers), "|" + "---|" * len(headers)]
    for variant in comparison.variants:
        lines += [_markdown_row([escape_markdown(variant.label), *map(escape_markdown, _field_cells(item))]) for item in variant.fields]
    lines += _one_sided_lines(comparison, escape_markdown, bullet="- ")
    lines += ["", f"A: {escape_markdown(comparison.dir_a)}; B: {escape_markdown(comparison.dir_b)}. "
              + escape_markdown(compare_note(comparison))]
    return "\n".join(lines) + "\n"


COMPARE_HEADERS = ["metric", "mean A", "mean B", "B - A [95% CI]", "p", "p adj.", "test", "mark"]


def compare_note(comparison: Comparison) -> str:
    settings = comparison.settings
    correction = "Holm's correction over the variants, per field" if settings.correction == "holm" else "no correction"
    return (f"Seeds paired (t-test) when both sides have the same seeds, else Welch. better / worse: p adj. <= {settings.alpha:g} "
            f"({correction}), in the field's direction; equivalent: the two one-sided tests put B - A within the suite's margin "
            f"(metrics only); inconclusive: neither, with the minimum detectable effect (MDE) at {settings.power:.0%} power.")


def _field_cells(item) -> list:
    c = item.comparison
    shown = f"{signed(c['diff'], NOT_AVAILABLE)} {interval(c['ci_low'], c['ci_high'], '')}".rstrip()
    return [item.name + ("" if item.higher_is_better else " (lower is better)"), number(item.mean_a, NOT_AVAILABLE),
            number(item.mean_b, NOT_AVAILABLE), shown, p_text(c["p_value"], NOT_AVAILABLE), p_text(item.p_adjusted, NOT_AVAILABLE),
            f"{c['test']} ({c['n_before']} vs {c['n_after']} seeds)", item.mark_text]


def _one_sided_lines(comparison, escape, bullet="  ") -> list:
    lines = []
    if comparison.relabelled:
        lines += ["", "matched by label (their ids differ: a configuration or plugin version changed):"]
        lines += [f"{bullet}{escape(label)} (A {escape(id_a)}, B {escape(id_b)})" for label, id_a, id_b in comparison.relabelled]
    for side, variants in (("A", comparison.only_a), ("B", comparison.only_b)):
        if variants:
            lines += ["", f"only in {side}:"] + [f"{bullet}{escape(label)} ({escape(variant_id)})" for variant_id, label in variants]
    return lines


# ----------------------------------------------------------------------------- helpers


def _markdown_row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _aligned(rows, indent="") -> list:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def _xml(text) -> str:
    return XML_INVALID.sub("\ufffd", str(text))


def _suite_mismatch(result: GateResult) -> str:
    if result.baseline.suite and result.baseline.suite != result.suite:
        return f"note: the baseline was saved from suite {result.baseline.suite!r}, the results are of suite {result.suite!r}"
    return ""
