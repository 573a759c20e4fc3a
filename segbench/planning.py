"""``segbench plan``: how many seeds each comparison of a suite needs.

From the paired spread that earlier results (or a pilot) show for each comparison with
the baseline, on the primary metric:

- the seeds with which the paired t-test detects a true difference of ``effect`` with
  the requested power (statsmodels ``TTestPower``);
- the seeds with which the two one-sided tests show equivalence within the suite's
  margin when the true difference is 0 (segbench.statistics.equivalence_power).

Both at the level the first Holm step uses, alpha / (number of comparisons), the level
every comparison must be ready to face; with ``correction = "none"``, at alpha.
"""

from __future__ import annotations

import math

from .errors import SegbenchError
from .format import one_line
from .statistics import paired_differences, seeds_to_detect, seeds_to_show_equivalence

PLAN_SCHEMA = 1
MIN_PILOT_SEEDS = 3  # fewer paired seeds give too rough a spread to plan with


def plan_suite(suite, results_dir, directions: dict, effect: float | None = None, power: float | None = None) -> dict:
    """The plan as data (``segbench plan --json`` prints it)."""
    from .gate.results import load_results

    results = load_results(results_dir)
    primary = suite.primary
    stats = suite.stats
    margin = stats.margin_for(primary)
    effect = margin if effect is None else effect
    power = stats.power if power is None else power
    check_request(effect, power)
    candidates = [v for v in suite.variants if v.id != suite.baseline_id]
    level = stats.alpha / max(len(candidates), 1) if stats.correction == "holm" else stats.alpha
    baseline = _runs_of(results, suite.baseline)
    rows, short = [], []
    for variant in candidates:
        runs = _runs_of(results, variant)
        diffs = paired_differences(baseline.values(primary) if baseline else {}, runs.values(primary) if runs else {})
        if len(diffs) < MIN_PILOT_SEEDS:
            short.append(f"{one_line(variant.label)}: {len(diffs)}")
            continue
        rows.append(_row(variant, diffs, effect, margin, level, power))
    if short:
        raise SegbenchError(
            f"{results.suite_dir}: too few paired seeds to estimate the spread of {', '.join(short)}; `segbench plan` needs at least "
            f"{MIN_PILOT_SEEDS} finished seeds of each variant and of the baseline. Run a pilot first, e.g. "
            f"segbench run {suite.path} --set 'seeds=[0, 1, 2]'")
    return {
        "schema": PLAN_SCHEMA, "suite": suite.name, "results": str(results.suite_dir), "metric": primary,
        "higher_is_better": directions.get(primary, True), "baseline": suite.baseline.label, "alpha": stats.alpha,
        "correction": stats.correction, "comparisons": len(candidates), "level": level, "power": power, "effect": effect,
        "margin": margin, "variants": rows,
    }


def check_request(effect, power) -> None:
    if not (isinstance(effect, (int, float)) and math.isfinite(effect) and effect > 0):
        raise SegbenchError(f"--effect {effect!r}: expected a difference > 0 in the metric's units, e.g. --effect 0.01")
    if not (isinstance(power, (int, float)) and 0 < power < 1):
        raise SegbenchError(f"--power {power!r}: expected a probability between 0 and 1, e.g. --power 0.8")


def _row(variant, diffs, effect, margin, level, power) -> dict:
    sd = float(diffs.std(ddof=1))
    return {
        "variant": variant.label, "variant_id": variant.id, "pilot_seeds": len(diffs),
        "observed_diff": float(diffs.mean()), "paired_sd": sd,
        "seeds_to_detect": seeds_to_detect(effect, sd, level, power),
        "seeds_to_show_equivalence": seeds_to_show_equivalence(sd, margin, level, power),
    }


def _runs_of(results, variant):
    """A variant's runs in the results: by id, else by its label when exactly one has it."""
    runs = results.get(variant.id)
    if runs is None:
        labelled = [v for v in results.variants if v.label == variant.label]
        runs = labelled[0] if len(labelled) == 1 else None
    return runs


def format_plan_table(plan: dict) -> str:
    direction = "higher" if plan["higher_is_better"] else "lower"
    correction = (f"Holm over {plan['comparisons']} comparisons: each must be ready to face p <= {plan['level']:.4g}"
                  if plan["correction"] == "holm" else f"no correction: each at p <= {plan['level']:.4g}")
    header = ["variant", "pilot seeds", "observed Δ", "paired SD", f"seeds to detect ±{plan['effect']:g}",
              f"seeds to show equivalence ±{plan['margin']:g}"]
    rows = [[one_line(r["variant"]), str(r["pilot_seeds"]), f"{r['observed_diff']:+.4f}", f"{r['paired_sd']:.4f}",
             _count(r["seeds_to_detect"]), _count(r["seeds_to_show_equivalence"])] for r in plan["variants"]]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"plan for suite {one_line(plan['suite'])}: {plan['metric']} ({direction} is better) against "
             f"{one_line(plan['baseline'])!r}, spread from {plan['results']}",
             f"alpha {plan['alpha']:g}, {correction}; power {plan['power']:.0%}", ""]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines += ["", "Seeds are paired: each count is for the variant and the baseline alike. Equivalence assumes a true "
              "difference of 0; adaptive seeds { min, max } stop early where a comparison is decided."]
    return "\n".join(lines)


def _count(value) -> str:
    return "> 10000" if value is None else str(value)
