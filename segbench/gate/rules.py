"""Gate rules: ``METRIC:max_drop=X`` and ``METRIC:max_increase=X``.

X is absolute (``0.01``) or a percentage of the baseline mean (``10%``). An optional
``,noise=ignore`` lets the threshold alone decide; by default a change beyond the
threshold fails only when it is also outside the seed noise (see :mod:`.checks`).

Rules come from ``--rule`` or from the ``[gate]`` table of a suite file::

    [gate]
    rules = ["miou:max_drop=0.01", "latency_ms:max_increase=10%"]

This module imports nothing heavy: :mod:`segbench.suite` uses it at every suite load.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..costs import COST_FIELDS, COST_HIGHER_IS_BETTER
from ..errors import SegbenchError
from ..params import describe_value
from ..schema import GATE_DIRECTIONS as DIRECTIONS, GATE_NOISE_MODES as NOISE_MODES, SUITE, resolve_value  # the suite schema's
# Rules may name any metric and any cost field of segbench.costs (re-exported for callers).
__all__ = ["COST_FIELDS", "Rule", "RuleError", "parse_rule", "parse_rules", "read_gate_table", "direction_problem"]

RULE_SYNTAX = (
    "METRIC:max_drop=X (higher is better) or METRIC:max_increase=X (lower is better), "
    "X absolute or a percentage of the baseline mean (10%), optionally followed by ,noise=ignore; "
    'e.g. "miou:max_drop=0.01", "latency_ms:max_increase=10%", "dice:max_drop=2%,noise=ignore"'
)


class RuleError(SegbenchError):
    """A rule that does not parse; the message names the rule and the valid forms."""


@dataclass(frozen=True)
class Rule:
    metric: str
    direction: str  # "max_drop" or "max_increase"
    threshold: float  # absolute, or a fraction of the baseline mean when ``relative``
    relative: bool = False
    ignore_noise: bool = False

    def allowed_change(self, baseline_mean: float) -> float:
        """How far the mean may move the wrong way before the rule is broken."""
        return self.threshold * abs(baseline_mean) if self.relative else self.threshold

    def worsening(self, baseline_mean: float, current_mean: float) -> float:
        """How far the mean moved the wrong way (negative when it improved)."""
        change = current_mean - baseline_mean
        return -change if self.direction == "max_drop" else change

    def __str__(self) -> str:
        value = f"{self.threshold * 100:g}%" if self.relative else f"{self.threshold:g}"
        return f"{self.metric}:{self.direction}={value}" + (",noise=ignore" if self.ignore_noise else "")


def parse_rule(text) -> Rule:
    """Parse one rule; raises :class:`RuleError` naming the rule and the valid forms."""
    if not isinstance(text, str):
        raise RuleError(f"rule {describe_value(text)}: expected a string. Valid forms: {RULE_SYNTAX}")
    metric, colon, spec = text.strip().partition(":")
    metric = metric.strip()
    if not colon or not metric or any(c.isspace() for c in metric):
        _reject(text, "expected METRIC:max_drop=X or METRIC:max_increase=X")
    condition, *options = [part.strip() for part in spec.split(",")]
    direction, threshold, relative = _parse_condition(text, condition)
    return Rule(metric, direction, threshold, relative, _parse_noise(text, options))


def parse_rules(texts) -> list[Rule]:
    """Parse several rules, dropping repeats (they would give duplicate checks)."""
    rules = []
    for text in texts:
        rule = parse_rule(text)
        if rule not in rules:
            rules.append(rule)
    return rules


def _parse_condition(text, condition):
    direction, equals, value = (part.strip() for part in condition.partition("="))
    if direction not in DIRECTIONS or not equals:
        close = difflib.get_close_matches(direction, DIRECTIONS, n=1)
        hint = f" (did you mean {close[0]}?)" if close and equals else ""
        _reject(text, f"{condition!r} is not max_drop=X or max_increase=X{hint}")
    relative = value.endswith("%")
    number = value[:-1].strip() if relative else value
    try:
        threshold = float(number)
    except ValueError:
        threshold = math.nan
    if not math.isfinite(threshold) or threshold < 0:
        _reject(text, f"threshold {value!r} is not a number >= 0 (or a percentage such as 10%)")
    return direction, threshold / 100 if relative else threshold, relative


def _parse_noise(text, options) -> bool:
    ignore = False
    for option in options:
        key, equals, value = (part.strip() for part in option.partition("="))
        if key != "noise" or not equals or value not in NOISE_MODES:
            _reject(text, f"unknown option {option!r}; the only option is noise=ignore (or noise=check, the default)")
        ignore = value == "ignore"
    return ignore


def _reject(text, problem):
    raise RuleError(f"rule {text!r}: {problem}. Valid forms: {RULE_SYNTAX}")


# ----------------------------------------------------------------------------- [gate] table


def read_gate_table(table) -> tuple[list[Rule], list[tuple[str, str]]]:
    """The rules of a suite's ``[gate]`` table and its problems as (where, message) pairs,
    so that the suite loader can report them with every other problem of the file. The
    table is checked against the suite schema first; each rule is then parsed."""
    resolved, problems = resolve_value(SUITE["gate"], table, "gate")
    rules, rule_problems = gate_rules(resolved)
    return rules, problems + rule_problems


def gate_rules(gate) -> tuple[list[Rule], list[tuple[str, str]]]:
    """The rules of a resolved ``[gate]`` table (segbench.schema.resolve), parsed, repeats
    dropped, and their problems as (where, message) pairs. What the schema refused (not a
    table, not a list, an item that is no string) it has named already: it is skipped."""
    texts = gate.get("rules") if isinstance(gate, dict) else None
    rules, problems = [], []
    for index, text in enumerate(texts if isinstance(texts, list) else []):
        if not isinstance(text, str):
            continue
        try:
            rule = parse_rule(text)
        except RuleError as exc:
            problems.append((f"gate.rules[{index}]", str(exc)))
            continue
        if rule not in rules:
            rules.append(rule)
    return rules, problems


def unknown_metric_problem(rule: Rule, valid) -> str | None:
    """None when the rule's metric is one of ``valid``, else a message listing them."""
    if rule.metric in valid:
        return None
    by_lower = {name.lower(): name for name in valid}
    close = difflib.get_close_matches(rule.metric.lower(), list(by_lower), n=1)
    hint = f"; did you mean {by_lower[close[0]]!r}?" if close else ""
    return f"rule {str(rule)!r}: unknown metric {rule.metric!r}{hint} Valid: {', '.join(valid)}"


def suite_file_rules(suite_file: Path) -> list[Rule]:
    """The ``[gate]`` rules of a suite file stored with the results (none when the file or
    the table is absent)."""
    suite_file = Path(suite_file)
    if not suite_file.is_file():
        return []
    try:
        raw = tomllib.loads(suite_file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SegbenchError(f"{suite_file}: cannot read its [gate] rules: {exc}") from None
    rules, problems = read_gate_table(raw.get("gate"))
    if problems:
        raise SegbenchError(f"{suite_file}: " + "; ".join(f"{where}: {message}" for where, message in problems))
    return rules


def higher_is_better(field: str, directions: dict | None = None) -> bool:
    """A field's direction: as ``directions`` (from records or the metric itself) say,
    else the cost field's, else higher is better (the metric contract's default)."""
    directions = {**COST_HIGHER_IS_BETTER, **(directions or {})}
    return directions.get(field, True)


def direction_problem(rule: Rule, higher: bool) -> str | None:
    """A rule that guards the wrong way: ``max_drop`` on a lower-is-better field lets it
    worsen without limit and fails its improvements (and ``max_increase`` likewise)."""
    right = "max_drop" if higher else "max_increase"
    if rule.direction == right:
        return None
    fixed = Rule(rule.metric, right, rule.threshold, rule.relative, rule.ignore_noise)
    word = "higher" if higher else "lower"
    moves = "an increase" if higher else "a drop"
    return (f"rule {str(rule)!r}: {rule.metric} is {word}-is-better, so {moves} is an improvement and "
            f"{rule.direction} would gate it the wrong way; use {str(fixed)!r}")
