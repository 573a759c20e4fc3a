"""Two result sets of the same suite side by side (before/after a change).

Variants are matched by id, else by label when exactly one unmatched variant of the other
side carries it (as the gate matches; the output says which were). Per variant and metric or cost field: mean A, mean B, the
difference B - A with its 95% CI and p-value (paired by seed when both sides have the
same seeds, else Welch), and one of the outcomes of segbench.verdicts in the field's
direction, decided by segbench.verdicts as the report decides: better or worse
(significant after Holm's correction over the variants, per field), equivalent (the two
one-sided tests put B - A within the suite's margin; metrics only, cost fields have no
margin), or inconclusive, with the minimum detectable effect when the seeds pair up.
Each outcome is worded by :func:`segbench.verdicts.outcome_text`, an equivalence with the
interval that decided it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..design import StatsSettings
from ..errors import SegbenchError
from ..power import minimum_detectable_effect
from ..statistics import equivalence_test, paired_differences, t_interval
from ..verdicts import BETTER, EQUIVALENT, INCONCLUSIVE, UNSTABLE, WORSE, Judgement, decide_family, outcome_text
from .results import VariantRuns, load_results, match_variants
from .rules import higher_is_better
from .seeds import mean_of, seed_comparison

NOT_COMPARED = "n/a"
MARKS = (BETTER, WORSE, EQUIVALENT, INCONCLUSIVE, UNSTABLE, NOT_COMPARED)


@dataclass
class FieldComparison:
    name: str
    mean_a: float
    mean_b: float
    comparison: dict  # seed_comparison(): diff, ci_low, ci_high, p_value, test, n_before, n_after
    mark: str = INCONCLUSIVE  # better / worse / equivalent / inconclusive / unstable / n/a
    higher_is_better: bool = True
    margin: float = math.nan  # NaN: no equivalence test (cost fields)
    p_adjusted: float = math.nan
    p_equivalence: float = math.nan
    p_equivalence_adjusted: float = math.nan
    equivalence_level: float = math.nan  # the level TOST faced; its interval is the (1 - 2 level) one
    equivalence_low: float = math.nan
    equivalence_high: float = math.nan
    mde: float = math.nan
    sd: float = math.nan
    values: tuple = ((), ())  # the finite per-seed values of A and B, for the equivalence interval
    failed_seeds: tuple = ()  # seeds whose run failed in B (metrics only): B is unstable, never better or equivalent

    @property
    def mark_text(self) -> str:
        """The outcome as every output words it (segbench.verdicts.outcome_text)."""
        return outcome_text(self.mark, margin=self.margin, low=self.equivalence_low, high=self.equivalence_high,
                            level=self.equivalence_level, p_adjusted=self.p_adjusted, mde=self.mde, reason=self.failure)

    @property
    def failure(self) -> str:
        seeds = ", ".join(map(str, self.failed_seeds))
        return f"seed{'s' if len(self.failed_seeds) > 1 else ''} {seeds} failed in B" if self.failed_seeds else ""


@dataclass
class VariantComparison:
    id: str
    label: str
    fields: list


@dataclass
class Comparison:
    dir_a: Path
    dir_b: Path
    suite_a: str
    suite_b: str
    variants: list
    only_a: list = field(default_factory=list)  # (id, label)
    only_b: list = field(default_factory=list)
    settings: StatsSettings = field(default_factory=StatsSettings)
    relabelled: list = field(default_factory=list)  # (label, id in A, id in B) matched by label

    def marks(self) -> dict:
        """How many fields got each mark, over every variant."""
        counts = {}
        for variant in self.variants:
            for item in variant.fields:
                counts[item.mark] = counts.get(item.mark, 0) + 1
        return counts


def compare_results(dir_a, dir_b) -> Comparison:
    a, b = load_results(dir_a), load_results(dir_b)
    settings = StatsSettings.from_dict(b.meta.get("stats") or a.meta.get("stats"))
    directions = {**a.directions, **b.directions}
    matches = match_variants(a, b)
    if not any(matches.values()):
        raise SegbenchError(f"{dir_a} and {dir_b} share no variant, by id or by label: A has {_labels(a)}; B has {_labels(b)} "
                            "(compare two result sets of the same suite)")
    matched = [compare_variant(variant, matches[variant.id], directions, settings) for variant in a.variants if matches[variant.id]]
    decide_marks(matched, settings)
    in_b = {runs.id for runs in matches.values() if runs is not None}
    only_a = [(v.id, v.label) for v in a.variants if matches[v.id] is None]
    only_b = [(v.id, v.label) for v in b.variants if v.id not in in_b]
    relabelled = [(runs.label, id_a, runs.id) for id_a, runs in matches.items() if runs is not None and runs.id != id_a]
    return Comparison(a.suite_dir, b.suite_dir, a.suite, b.suite, matched, only_a, only_b, settings, relabelled)


def _labels(results) -> str:
    return ", ".join(repr(v.label) for v in results.variants)


def compare_variant(a: VariantRuns, b: VariantRuns, directions=None, settings: StatsSettings | None = None) -> VariantComparison:
    settings = settings or StatsSettings()
    metrics = set(a.fields()["metrics"]) & set(b.fields()["metrics"])
    fields = [compare_field(name, a.values(name), b.values(name), higher_is_better(name, directions),
                            settings.margin_for(name) if name in metrics else math.nan)
              for name in shared_fields(a, b)]
    for item in fields:
        if item.name in metrics:
            item.failed_seeds = tuple(sorted(b.failed))
    return VariantComparison(b.id, b.label, fields)


def compare_field(name: str, values_a: dict, values_b: dict, higher: bool = True, margin: float = math.nan) -> FieldComparison:
    """B - A for one field; the mark is set by :func:`decide_marks` over every variant."""
    comparison = seed_comparison(values_a, values_b)
    item = FieldComparison(name, mean_of(values_a), mean_of(values_b), comparison, higher_is_better=higher, margin=margin,
                           values=(_finite(values_a), _finite(values_b)))
    if comparison["test"] == "paired":
        diffs = paired_differences(values_a, values_b)
        item.sd = float(diffs.std(ddof=1)) if len(diffs) >= 2 else math.nan
        if margin == margin:
            item.p_equivalence = equivalence_test(diffs, margin)["p_value"]
    elif margin == margin and comparison["n_before"] >= 2 and comparison["n_after"] >= 2:
        item.p_equivalence = welch_equivalence(values_a, values_b, margin)
    return item


def welch_equivalence(values_a: dict, values_b: dict, margin: float) -> float:
    """TOST of B - A within ±margin for unpaired seeds (statsmodels ``ttost_ind``, Welch)."""
    from statsmodels.stats.weightstats import ttost_ind

    return float(ttost_ind(list(values_b.values()), list(values_a.values()), -margin, margin, usevar="unequal")[0])


def welch_interval(values_a: dict, values_b: dict, confidence: float) -> tuple[float, float]:
    """The Welch t interval of mean B - mean A (statsmodels), the one its TOST checks."""
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    means = CompareMeans(DescrStatsW(list(values_b.values())), DescrStatsW(list(values_a.values())))
    low, high = means.tconfint_diff(alpha=1 - confidence, usevar="unequal")
    return float(low), float(high)


def decide_marks(variants: list, settings: StatsSettings) -> None:
    """Per field, the variants' B - A decided as one family by segbench.verdicts (the
    report's rule: Holm over the variants unless ``correction = "none"``), each in its
    field's direction; a field without a test (too few seeds) is not compared."""
    by_field = {}
    for variant in variants:
        for item in variant.fields:
            by_field.setdefault(item.name, []).append(item)
    for items in by_field.values():
        judgements = {index: Judgement(diff=item.comparison["diff"], p_value=item.comparison["p_value"],
                                       p_equivalence=item.p_equivalence, margin=item.margin, failed_seeds=list(item.failed_seeds))
                      for index, item in enumerate(items)}
        decide_family(judgements, settings, items[0].higher_is_better)
        for index, item in enumerate(items):
            judgement = judgements[index]
            item.p_adjusted, item.p_equivalence_adjusted = judgement.p_adjusted, judgement.p_equivalence_adjusted
            item.equivalence_level = judgement.equivalence_level
            item.mark = NOT_COMPARED if math.isnan(item.comparison["p_value"]) and judgement.outcome != UNSTABLE else judgement.outcome
            if item.mark == EQUIVALENT:
                item.equivalence_low, item.equivalence_high = _equivalence_interval(item)
            elif item.mark not in (BETTER, WORSE, UNSTABLE):
                item.mde = minimum_detectable_effect(item.sd, item.comparison["n_before"], judgement.level, settings.power)


def _equivalence_interval(item: FieldComparison) -> tuple[float, float]:
    """The (1 - 2 level) interval of B - A that TOST put inside the margin."""
    confidence = 1 - 2 * item.equivalence_level
    values_a, values_b = item.values
    if item.comparison["test"] == "paired":
        return t_interval(paired_differences(values_a, values_b), confidence)
    if min(len(values_a), len(values_b)) >= 2:
        return welch_interval(values_a, values_b, confidence)
    return math.nan, math.nan


def _finite(values: dict) -> dict:
    return {seed: float(v) for seed, v in values.items() if v is not None and math.isfinite(v)}


def shared_fields(a: VariantRuns, b: VariantRuns) -> list:
    """Metrics first, then cost fields, each present on both sides."""
    fields_a, fields_b = a.fields(), b.fields()
    return [name for group in ("metrics", "cost") for name in fields_a[group] if name in fields_b[group]]
