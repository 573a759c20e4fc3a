"""Two result sets of the same suite side by side (before/after a change).

Variants are matched by id. Per variant and metric or cost field: mean A, mean B, the
difference B - A with its 95% CI and p-value (paired by seed when both sides have the
same seeds, else Welch), and one of the four outcomes of segbench.verdicts in the field's
direction: better or worse (significant after Holm's correction over the variants, per
field), equivalent (the two one-sided tests put B - A within the suite's margin; metrics
only, cost fields have no margin), or inconclusive, with the minimum detectable effect
when the seeds pair up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..design import StatsSettings
from ..statistics import equivalence_test, holm, minimum_detectable_effect, paired_differences
from ..verdicts import BETTER, EQUIVALENT, INCONCLUSIVE, WORSE
from .numbers import mean_of
from .results import VariantRuns, load_results
from .rules import higher_is_better
from .seeds import seed_comparison

NOT_COMPARED = "n/a"
MARKS = (BETTER, WORSE, EQUIVALENT, INCONCLUSIVE, NOT_COMPARED)


@dataclass
class FieldComparison:
    name: str
    mean_a: float
    mean_b: float
    comparison: dict  # seed_comparison(): diff, ci_low, ci_high, p_value, test, n_before, n_after
    mark: str = INCONCLUSIVE  # better / worse / equivalent / inconclusive / n/a
    higher_is_better: bool = True
    margin: float = math.nan  # NaN: no equivalence test (cost fields)
    p_adjusted: float = math.nan
    p_equivalence: float = math.nan
    p_equivalence_adjusted: float = math.nan
    mde: float = math.nan
    sd: float = math.nan


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
    matched = [compare_variant(variant, b.get(variant.id), directions, settings) for variant in a.variants if b.get(variant.id)]
    decide_marks(matched, settings)
    only_a = [(v.id, v.label) for v in a.variants if b.get(v.id) is None]
    only_b = [(v.id, v.label) for v in b.variants if a.get(v.id) is None]
    return Comparison(a.suite_dir, b.suite_dir, a.suite, b.suite, matched, only_a, only_b, settings)


def compare_variant(a: VariantRuns, b: VariantRuns, directions=None, settings: StatsSettings | None = None) -> VariantComparison:
    settings = settings or StatsSettings()
    metrics = set(a.fields()["metrics"]) & set(b.fields()["metrics"])
    fields = [compare_field(name, a.values(name), b.values(name), higher_is_better(name, directions),
                            settings.margin_for(name) if name in metrics else math.nan)
              for name in shared_fields(a, b)]
    return VariantComparison(a.id, b.label, fields)


def compare_field(name: str, values_a: dict, values_b: dict, higher: bool = True, margin: float = math.nan) -> FieldComparison:
    """B - A for one field; the mark is set by :func:`decide_marks` over every variant."""
    comparison = seed_comparison(values_a, values_b)
    item = FieldComparison(name, mean_of(values_a), mean_of(values_b), comparison, higher_is_better=higher, margin=margin)
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


def decide_marks(variants: list, settings: StatsSettings) -> None:
    """Per field, Holm's correction over the variants (unless ``correction = "none"``),
    then each field's outcome in its direction."""
    by_field = {}
    for variant in variants:
        for item in variant.fields:
            by_field.setdefault(item.name, []).append(item)
    for items in by_field.values():
        adjust = holm if settings.correction == "holm" else (lambda p: p)
        for item, p, p_eq in zip(items, adjust([i.comparison["p_value"] for i in items]), adjust([i.p_equivalence for i in items])):
            item.p_adjusted, item.p_equivalence_adjusted = float(p), float(p_eq)
            item.mark = _mark(item, settings)
        undecided = [i for i in items if i.mark not in (BETTER, WORSE)]
        for item in undecided:
            level = settings.alpha / max(len(undecided), 1) if settings.correction == "holm" else settings.alpha
            item.mde = minimum_detectable_effect(item.sd, item.comparison["n_before"], level, settings.power)


def _mark(item: FieldComparison, settings: StatsSettings) -> str:
    if math.isnan(item.comparison["p_value"]):
        return NOT_COMPARED
    if item.p_adjusted <= settings.alpha and item.comparison["diff"] != 0:
        improved = item.comparison["diff"] > 0 if item.higher_is_better else item.comparison["diff"] < 0
        return BETTER if improved else WORSE
    if item.p_equivalence_adjusted <= settings.alpha:
        return EQUIVALENT
    return INCONCLUSIVE


def shared_fields(a: VariantRuns, b: VariantRuns) -> list:
    """Metrics first, then cost fields, each present on both sides."""
    fields_a, fields_b = a.fields(), b.fields()
    return [name for group in ("metrics", "cost") for name in fields_a[group] if name in fields_b[group]]
