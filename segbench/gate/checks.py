"""The regression gate: one check per rule x baseline variant.

Each :class:`Check` answers ``fails()`` with the failure message or None (the style of
pytest-benchmark's regression checks). A change beyond the rule's threshold fails only
when it is also outside the seed noise: decided by segbench.verdicts as the report
decides, the change is *worse* (the per-seed values of the two sides, paired by seed when
both have the same seeds, else Welch, differ significantly at the suite's alpha after
Holm's correction over the rule's variants). With ``noise=ignore``, fewer than 2 seeds on
a side, or too few paired seeds for the exact sign flips to reach the level (3 seeds
never can: their smallest p is 0.25), the threshold alone decides. A variant whose current runs collapsed (every
foreground class scores 0: segbench.degenerate) fails whatever its numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..degenerate import collapsed_reason, variant_reason
from ..design import StatsSettings
from ..errors import SegbenchError
from ..text import clipped, one_line
from ..numbers import NOT_AVAILABLE, number, p_text, signed
from ..power import fewest_seeds_to_decide
from ..verdicts import WORSE, Judgement, decide_family
from .baseline import Baseline, load_baseline
from .results import ResultSet, VariantRuns, load_results, match_variants
from .rules import RULE_SYNTAX, Rule, direction_problem, higher_is_better, parse_rules, suite_file_rules, unknown_metric_problem
from .seeds import judged, mean_of, seed_comparison

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
    problem: str | None = None  # the variant is missing, some of its runs failed, or collapsed
    outcome: str | None = None  # the change as segbench.verdicts decides it among the rule's checks
    level: float = math.nan  # the p threshold that decision faced

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
        return (f"{self.label}: {self.rule.metric} {number(self.baseline_mean, NOT_AVAILABLE)} -> {number(self.current_mean, NOT_AVAILABLE)} "
                f"({signed(self.current_mean - self.baseline_mean, NOT_AVAILABLE)}) breaks {self.rule} "
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
        return f"{word} {number(allowed, NOT_AVAILABLE)}" + (f" = {self.rule.threshold * 100:g}% of the baseline" if self.rule.relative else "")

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
        if comparison["p_floor"] > self.level:
            return FAIL, (f"the seed noise cannot be judged with {comparison['n_before']} paired seeds: the exact test's "
                          f"smallest p, {comparison['p_floor']:.3g}, is above the {self.level:.3g} it must reach "
                          f"({fewest_seeds_to_decide(self.level)} seeds would do); the threshold alone decides")
        p_value = p_text(comparison["p_value"], NOT_AVAILABLE)
        test = f"{comparison['test']} test p{p_value if p_value.startswith('<') else '=' + p_value}"
        if self.outcome == WORSE:
            return FAIL, f"outside the seed noise ({test}: {self.outcome})"
        return PASS, f"beyond the threshold but within the seed noise ({test}: {self.outcome})"


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
    results = load_results(results_dir, quiet=True)
    refuse_damage(results)
    baseline = load_baseline(baseline_path)
    rules, source = resolve_rules(rules, results)
    check_metrics(rules, baseline)
    check_directions(rules, {**baseline.directions, **results.directions})
    matches = match_variants(baseline, results)
    checks = build_checks(rules, baseline, matches, results.meta.get("primary"))
    decide_noise(checks, StatsSettings.from_dict(results.meta.get("stats")), {**baseline.directions, **results.directions})
    matched = {runs.id for runs in matches.values() if runs is not None}
    new = [(v.id, v.label) for v in results.variants if v.id not in matched]
    relabelled = [(runs.label, saved_id, runs.id) for saved_id, runs in matches.items() if runs is not None and runs.id != saved_id]
    return GateResult(results.suite, results.suite_dir, baseline, rules, source, checks, new, relabelled)



def refuse_damage(results: ResultSet) -> None:
    """A damaged record or ``suite.json`` is bad input (exit 2), not a regression nor a
    pass: gating around a left-out run would judge other seeds than the baseline's."""
    if results.damaged:
        listed = "\n".join(f"  {one_line(damage)}" for damage in results.damaged)
        raise SegbenchError(f"{results.suite_dir}: {len(results.damaged)} damaged file(s), so the results cannot be gated:\n{listed}\n"
                            f"`segbench doctor {results.suite_dir}` lists them; `segbench run` the suite with the same -o redoes "
                            "damaged runs and writes suite.json again")


def resolve_rules(texts, results: ResultSet) -> tuple[list, str]:
    if texts:
        return parse_rules(texts), "--rule"
    if results.meta.get("gate_rules"):  # the rules the suite ran with, `--set gate.rules=...` included
        try:
            return parse_rules(results.meta["gate_rules"]), str(results.summary_file)
        except SegbenchError as exc:
            raise SegbenchError(f"{results.summary_file}: field 'gate_rules': {exc}") from None
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


def build_checks(rules, baseline: Baseline, matches: dict, primary: str | None = None) -> list:
    checks = []
    for saved in baseline.variants:
        runs = matches[saved.id]
        problem = variant_problem(runs, primary)
        label = runs.label if runs else saved.label
        for rule in rules:
            current = runs.values(rule.metric) if runs else {}
            checks.append(Check(rule, saved.id, label, saved.values(rule.metric), current, problem))
    return checks


def decide_noise(checks: list, settings: StatsSettings, directions: dict) -> None:
    """Each check's change (current - baseline), decided per rule over its variants as one
    family (segbench.verdicts.decide_family)."""
    by_rule = {}
    for check in checks:
        if check.baseline and check.current and judged(check.comparison):
            by_rule.setdefault(str(check.rule), []).append(check)
    for mine in by_rule.values():
        judgements = {index: Judgement(diff=check.comparison["diff"], p_value=check.comparison["p_value"])
                      for index, check in enumerate(mine)}
        decide_family(judgements, settings, higher_is_better(mine[0].rule.metric, directions), adjust=False)
        for index, check in enumerate(mine):
            check.outcome, check.level = judgements[index].outcome, judgements[index].level


def variant_problem(runs: VariantRuns | None, primary: str | None = None) -> str | None:
    """Why a baseline variant cannot pass whatever its numbers: it is missing, runs failed
    (a failure is a regression, not noise to gate around) or collapsed."""
    if runs is None:
        return "variant missing from the results"
    collapsed = {seed: reason for seed, record in runs.ok.items() if (reason := collapsed_reason(record, primary or ""))}
    if collapsed:
        return f"degenerate: {variant_reason(runs.label, collapsed)}"
    if not runs.failed:
        return None
    total = len(runs.failed) + len(runs.ok)
    details = "; ".join(f"seed {seed}: {_error_text(record)}" for seed, record in sorted(runs.failed.items()))
    return f"{len(runs.failed)} of {total} run(s) failed ({details})"


def _error_text(record) -> str:
    error = record.get("error") or {}
    text = f"{error.get('type', 'error')}: {error.get('message', '')}".strip().rstrip(":")
    return clipped(text, ERROR_TEXT)
