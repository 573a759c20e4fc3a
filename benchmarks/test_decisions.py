"""The decision rules measured by simulation at a larger scale than the tests: false
better/worse rates, power, false equivalence, and the runs adaptive seeds save.

No training: synthetic suites of paired seed results go through the real decision code
(segbench.simulation). Effects are in units of the paired standard deviation (sd = 1),
with an equivalence margin of 0.5 sd. Each suite compares 5 candidates with a baseline.
The session ends with the table docs/guide/benchmarks.md quotes; the time of one simulation is the
benchmark itself.
"""

from __future__ import annotations

import math

import pytest

from segbench.design import SeedDesign, StatsSettings
from segbench.simulation import simulate

COMPARISONS = 5
SETTINGS = StatsSettings(margin=0.5)
DESIGNS = {
    "fixed 3 seeds": SeedDesign.fixed(range(3)),
    "fixed 12 seeds": SeedDesign.fixed(range(12)),
    "adaptive 3-12 (O'Brien-Fleming)": SeedDesign.sequential(3, 12),
    "adaptive 3-12 (Pocock)": SeedDesign.sequential(3, 12, 1, "pocock"),
}
NULL_SUITES = 10_000  # 50,000 null comparisons per design
POWER_SUITES = 2_000
_rows: list = []


@pytest.mark.parametrize("name", list(DESIGNS))
def test_error_rates_power_and_runs(benchmark, name):
    design = DESIGNS[name]
    benchmark.group = "decision rules by simulation"
    null = benchmark.pedantic(simulate, args=([0.0] * COMPARISONS, design, SETTINGS),
                              kwargs={"suites": NULL_SUITES, "seed": 1}, rounds=1, iterations=1)
    one = simulate([1.0] * COMPARISONS, design, SETTINGS, suites=POWER_SUITES, seed=2)
    two = simulate([2.0] * COMPARISONS, design, SETTINGS, suites=POWER_SUITES, seed=3)
    edge = simulate([0.5] * COMPARISONS, design, SETTINGS, suites=POWER_SUITES, seed=4)
    negligible = simulate([0.0] * COMPARISONS, design, SETTINGS, sd=0.1, suites=POWER_SUITES, seed=5)
    mixed = simulate([0.0, 0.0, 1.0, 2.0, 0.0], design, SETTINGS, suites=POWER_SUITES, seed=6)
    single = simulate([0.0], design, SETTINGS, suites=NULL_SUITES * 2, seed=7)
    error = 3 * math.sqrt(0.05 * 0.95 / NULL_SUITES)
    assert null.familywise_rate("better", "worse") <= 0.05 + error
    assert edge.familywise_rate("equivalent") <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / POWER_SUITES)
    _rows.append({
        "design": name,
        "familywise false better/worse": null.familywise_rate("better", "worse"),
        "per-comparison false better/worse": null.rate("better", "worse"),
        "false better/worse, one comparison": single.rate("better", "worse"),
        "false equivalent at the margin": edge.familywise_rate("equivalent"),
        "power at 1 sd": one.rate("better"), "power at 2 sd": two.rate("better"),
        "equivalent when sd = margin / 5": negligible.rate("equivalent"),
        "runs (null)": null.mean_runs, "runs (1 sd)": one.mean_runs, "runs (2 sd)": two.mean_runs,
        "runs (negligible)": negligible.mean_runs, "runs (mixed)": mixed.mean_runs,
    })


@pytest.fixture(scope="module", autouse=True)
def report_rows(request):
    yield
    if not _rows:
        return
    writer = request.config.get_terminal_writer()
    writer.line("")
    writer.line(f"decision rules: {NULL_SUITES} null suites ({NULL_SUITES * COMPARISONS} comparisons), {POWER_SUITES} suites per effect, "
                f"{COMPARISONS} comparisons a suite, alpha 0.05, Holm, margin 0.5 sd")
    for row in _rows:
        writer.line(" | ".join(f"{k}: {v:.4f}" if isinstance(v, float) and v < 1.5 else f"{k}: {v}" if isinstance(v, str)
                               else f"{k}: {v:.1f}" for k, v in row.items()))
