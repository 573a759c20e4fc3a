"""Two result sets of the same suite side by side (before/after a change).

Variants are matched by id. Per variant and metric or cost field: mean A, mean B, the
difference B - A with its 95% CI and p-value (paired by seed when both sides have the
same seeds, else Welch) and a mark: better, worse or indistinguishable (p >= 0.05).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..report.stats import verdict
from .numbers import mean_of
from .results import VariantRuns, load_results
from .rules import higher_is_better
from .seeds import seed_comparison


@dataclass
class FieldComparison:
    name: str
    mean_a: float
    mean_b: float
    comparison: dict  # seed_comparison(): diff, ci_low, ci_high, p_value, test, n_before, n_after
    mark: str  # better / worse / indistinguishable / n/a


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

    def marks(self) -> dict:
        """How many fields got each mark, over every variant."""
        counts = {}
        for variant in self.variants:
            for item in variant.fields:
                counts[item.mark] = counts.get(item.mark, 0) + 1
        return counts


def compare_results(dir_a, dir_b) -> Comparison:
    a, b = load_results(dir_a), load_results(dir_b)
    matched = [compare_variant(variant, b.get(variant.id)) for variant in a.variants if b.get(variant.id)]
    only_a = [(v.id, v.label) for v in a.variants if b.get(v.id) is None]
    only_b = [(v.id, v.label) for v in b.variants if a.get(v.id) is None]
    return Comparison(a.suite_dir, b.suite_dir, a.suite, b.suite, matched, only_a, only_b)


def compare_variant(a: VariantRuns, b: VariantRuns) -> VariantComparison:
    return VariantComparison(a.id, b.label, [compare_field(name, a.values(name), b.values(name)) for name in shared_fields(a, b)])


def compare_field(name: str, values_a: dict, values_b: dict) -> FieldComparison:
    comparison = seed_comparison(values_a, values_b)
    return FieldComparison(name, mean_of(values_a), mean_of(values_b), comparison, verdict(comparison, higher_is_better(name)))


def shared_fields(a: VariantRuns, b: VariantRuns) -> list:
    """Metrics first, then cost fields, each present on both sides."""
    fields_a, fields_b = a.fields(), b.fields()
    return [name for group in ("metrics", "cost") for name in fields_a[group] if name in fields_b[group]]
