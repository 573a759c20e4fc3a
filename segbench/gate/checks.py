"""The regression gate: one check per rule x baseline variant.

Each :class:`Check` answers ``fails()`` with the failure message or None (the style of
pytest-benchmark's regression checks). A change beyond the rule's threshold fails only
when it is also outside the seed noise: the per-seed values of the two sides differ
significantly at the 95% level (paired by seed when both have the same seeds, else
Welch). With ``noise=ignore``, or fewer than 2 seeds on a side, the threshold alone decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..errors import SegbenchError
from .baseline import Baseline, load_baseline
from .numbers import format_change, format_number, format_p, mean_of
from .results import ResultSet, VariantRuns, load_results
from .rules import RULE_SYNTAX, Rule, direction_problem, higher_is_better, parse_rules, suite_file_rules, unknown_metric_problem
from .seeds import judged, seed_comparison, significant

PASS, FAIL, SKIP = "pass", "fail", "skip"
ERROR_TEXT = 120  # characters of a failed run's error kept in a message
# Float sums make a change equal to the threshold come out a hair above it.
TOLERANCE = 1e-9


@dataclass
class Check:
    rule: Rule
    variant_id: str
    label: str
    baseline: dict  # seed -> value
    current: dict  # seed -> value
    problem: str | None = None  # the variant is missing or some of its runs failed

    def fails(self) -> str | None:
        """The failure message, or None when the check passes (or is skipped)."""
        return self.message if self.status == FAIL else None

    @property
    def status(self) -> str:
        return self._verdict[0]

    @property
    def reason(self) -> str:
        """Why the check ended as it did: '' for a plain pass."""
        return self._verdict[1]

    @property
    def message(self) -> str:
        if self.problem or self.status == SKIP:
            return f"{self.label}: {self.rule.metric}: {self.reason} [rule {self.rule}]"
        return (f"{self.label}: {self.rule.metric} {format_number(self.baseline_mean)} -> {format_number(self.current_mean)} "
                f"({format_change(self.current_mean - self.baseline_mean)}) breaks {self.rule} "
                f"(allowed {self.allowed_text}); {self.reason}")

    @property
    def baseline_mean(self) -> float:
        return mean_of(self.baseline)

    @property
    def current_mean(self) -> float:
        return mean_of(self.current)

    @property
    def allowed_text(self) -> str:
        word = "drop" if self.rule.direction == "max_drop" else "increase"
        allowed = self.rule.allowed_change(self.baseline_mean) if self.baseline else math.nan
        return f"{word} {format_number(allowed)}" + (f" = {self.rule.threshold * 100:g}% of the baseline" if self.rule.relative else "")

    @property
    def beyond_threshold_in_noise(self) -> bool:
        return self.status == PASS and bool(self.reason)

    @cached_property
    def comparison(self) -> dict:
        return seed_comparison(self.baseline, self.current)

    @cached_property
    def _verdict(self) -> tuple[str, str]:
        if self.problem:
            return FAIL, self.problem
        if not self.baseline:
            return SKIP, "not gated: the baseline has no values for this variant"
        if not self.current:
            return FAIL, "no values in the current results"
        if not self._beyond_threshold():
            return PASS, ""
        return self._noise_verdict()

    def _beyond_threshold(self) -> bool:
        allowed = self.rule.allowed_change(self.baseline_mean)
        worsening = self.rule.worsening(self.baseline_mean, self.current_mean)
        return worsening > allowed + TOLERANCE * max(1.0, abs(self.baseline_mean))

    def _noise_verdict(self) -> tuple[str, str]:
        if self.rule.ignore_noise:
            return FAIL, "noise=ignore: the threshold alone decides"
        comparison = self.comparison
        if not judged(comparison):
            return FAIL, (f"the seed noise cannot be judged with fewer than 2 seeds on a side "
                          f"({comparison['n_before']} baseline, {comparison['n_after']} current): the threshold alone decides")
        p_value = format_p(comparison["p_value"])
        test = f"{comparison['test']} t-test p{p_value if p_value.startswith('<') else '=' + p_value}"
        if significant(comparison):
            return FAIL, f"outside the seed noise ({test})"
        return PASS, f"beyond the threshold but within the seed noise ({test})"


@dataclass
class GateResult:
    suite: str
    results_dir: Path
    baseline: Baseline
    rules: list
    rules_source: str  # "--rule" or the suite file the rules came from
    checks: list
    new_variants: list = field(default_factory=list)  # (id, label) of variants not in the baseline
    relabelled: list = field(default_factory=list)  # (label, baseline id, current id) matched by label

    @property
    def failures(self) -> list:
        return [check for check in self.checks if check.fails()]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    @property
    def variant_count(self) -> int:
        return len(self.baseline.variants)


def run_gate(results_dir, baseline_path, rules=None) -> GateResult:
    """Gate the result set in ``results_dir`` against a saved baseline. ``rules`` are rule
    strings (``--rule``); when empty, the ``[gate]`` table of the suite stored with the
    results gives them. Raises :class:`SegbenchError` (exit 2) on bad input."""
    results = load_results(results_dir)
    baseline = load_baseline(baseline_path)
    rules, source = resolve_rules(rules, results)
    check_metrics(rules, baseline)
    check_directions(rules, {**baseline.directions, **results.directions})
    matches = match_variants(baseline, results)
    checks = build_checks(rules, baseline, matches)
    matched = {runs.id for runs in matches.values() if runs is not None}
    new = [(v.id, v.label) for v in results.variants if v.id not in matched]
    relabelled = [(runs.label, saved_id, runs.id) for saved_id, runs in matches.items() if runs is not None and runs.id != saved_id]
    return GateResult(results.suite, results.suite_dir, baseline, rules, source, checks, new, relabelled)


def match_variants(baseline: Baseline, results: ResultSet) -> dict:
    """Baseline variant id -> its runs in the results: by id, else by label when exactly
    one unclaimed variant carries it. A variant keeps its label when a default of some
    component changes (which changes every id), and the gate should still compare it."""
    matches = {saved.id: results.get(saved.id) for saved in baseline.variants}
    claimed = {runs.id for runs in matches.values() if runs is not None}
    for saved in baseline.variants:
        if matches[saved.id] is None:
            same_label = [v for v in results.variants if v.label == saved.label and v.id not in claimed and baseline.get(v.id) is None]
            if len(same_label) == 1:
                matches[saved.id] = same_label[0]
                claimed.add(same_label[0].id)
    return matches


def resolve_rules(texts, results: ResultSet) -> tuple[list, str]:
    if texts:
        return parse_rules(texts), "--rule"
    if results.meta.get("gate_rules"):  # the rules the suite ran with, `--set gate.rules=...` included
        return parse_rules(results.meta["gate_rules"]), str(results.summary_file)
    rules = suite_file_rules(results.suite_file)
    if not rules:
        raise SegbenchError(f"no gate rules: give --rule, or a [gate] table in the suite file "
                            f'(rules = ["miou:max_drop=0.01"]); none in {results.suite_file}. A rule is {RULE_SYNTAX}')
    return rules, str(results.suite_file)


def check_metrics(rules, baseline: Baseline) -> None:
    """Every rule must name a field the baseline has values for."""
    valid = baseline.field_names()
    problems = [p for p in (unknown_metric_problem(rule, valid) for rule in rules) if p]
    if problems:
        raise SegbenchError("\n".join(problems) + f"\n(the valid names are the fields baseline {baseline.path} has values for)")


def check_directions(rules, directions: dict) -> None:
    """Every rule must guard its field against getting worse (bad input, exit 2)."""
    problems = [p for p in (direction_problem(rule, higher_is_better(rule.metric, directions)) for rule in rules) if p]
    if problems:
        raise SegbenchError("\n".join(problems))


def build_checks(rules, baseline: Baseline, matches: dict) -> list:
    checks = []
    for saved in baseline.variants:
        runs = matches[saved.id]
        problem = variant_problem(runs)
        label = runs.label if runs else saved.label
        for rule in rules:
            current = runs.values(rule.metric) if runs else {}
            checks.append(Check(rule, saved.id, label, saved.values(rule.metric), current, problem))
    return checks


def variant_problem(runs: VariantRuns | None) -> str | None:
    """Why a baseline variant cannot pass whatever its numbers: it is missing, or runs
    failed (a failure is a regression, not noise to gate around)."""
    if runs is None:
        return "variant missing from the results"
    if not runs.failed:
        return None
    total = len(runs.failed) + len(runs.ok)
    details = "; ".join(f"seed {seed}: {_error_text(record)}" for seed, record in sorted(runs.failed.items()))
    return f"{len(runs.failed)} of {total} run(s) failed ({details})"


def _error_text(record) -> str:
    error = record.get("error") or {}
    text = f"{error.get('type', 'error')}: {error.get('message', '')}".strip().rstrip(":")
    return text if len(text) <= ERROR_TEXT else text[: ERROR_TEXT - 1] + "…"
