"""A better or worse from few seeds carries a note that its Δ is likely an overestimate
(the winner's curse), with factors re-measured here by simulating the real rule."""

from __future__ import annotations

import numpy as np
import pytest

from segbench.report import findings
from segbench.statistics import difference_test


def exaggeration(n: int, effect: float, draws: int = 4000, seed: int = 0) -> tuple[float, float]:
    """(power, mean estimated Δ / true Δ over the "better" calls) of the rule at level 0.05."""
    rng = np.random.default_rng(seed)
    called = [result["diff"] for result in (difference_test(d) for d in rng.normal(effect, 1.0, (draws, n)))
              if result["p_value"] <= 0.05 and result["diff"] > 0]
    return len(called) / draws, float(np.mean(called)) / effect


@pytest.mark.parametrize("n, half_power_effect", [(6, 1.15), (8, 0.85)])
def test_the_stated_factor_is_what_the_rule_does_at_half_power(n, half_power_effect):
    power, factor = exaggeration(n, half_power_effect)
    assert power == pytest.approx(0.5, abs=0.1)
    assert factor == pytest.approx(findings.EXAGGERATION_AT_HALF_POWER, abs=0.1)


def test_the_stated_factor_for_a_tenth_of_the_power():
    power, factor = exaggeration(8, 0.4)
    assert power == pytest.approx(0.1, abs=0.06)
    assert factor == pytest.approx(findings.EXAGGERATION_AT_TENTH_POWER, abs=0.3)


def row(n):
    return {"variant": "b", "verdict": "better", "delta": 0.03, "delta_ci_low": 0.01, "delta_ci_high": 0.05,
            "p_adjusted": 0.01, "paired_seeds": n}


def test_only_few_seed_decisions_carry_the_note():
    few = findings.comparison_line(row(6), "a", float("nan"), {})
    assert few.startswith("b vs a: better (Δ +0.0300, 95% CI [+0.0100, +0.0500], p adj. 0.010, 6 seeds); few seeds: Δ is likely")
    assert "overstated about 1.2x" in few
    assert "few seeds" not in findings.comparison_line(row(12), "a", float("nan"), {})


def test_an_equivalence_with_a_clear_nonzero_difference_says_so():
    row_ = {"variant": "b", "verdict": "equivalent", "delta": 0.004, "delta_ci_low": 0.002, "delta_ci_high": 0.006,
            "equivalence_ci_low": 0.0025, "equivalence_ci_high": 0.0055, "equivalence_level": 0.05, "margin": 0.01,
            "paired_seeds": 8}
    line = findings.comparison_line(row_, "a", float("nan"), {})
    assert line.endswith("within ±0.01, 8 seeds); but Δ's 95% CI excludes 0: a real difference, smaller than the margin")
    row_.update(delta_ci_low=-0.001)
    assert "excludes 0" not in findings.comparison_line(row_, "a", float("nan"), {})
