"""The decision rules measured by simulation at a larger scale than the tests, for every
seed design and noise family: false better/worse rates, false equivalence, power, the
other outcomes and the runs adaptive seeds save.

No training: synthetic suites go through the real decision code (segbench.simulation),
with a baseline shared by the suite's 5 comparisons, as in a real suite. Effects are in
units of the paired standard deviation (sd = 1), with an equivalence margin of 0.5 sd. The
rule's promise (at most alpha of suites with a false better/worse, and with a false
equivalent, within 3 Monte Carlo standard errors) is asserted for every family. A full session
writes docs/guide/decision-table.md; the ``quick`` test runs the same code on a few
hundred suites of one design, for CI.
"""

from __future__ import annotations

import datetime
import math
import time
from pathlib import Path

import pytest

from segbench.design import SeedDesign, StatsSettings
from segbench.simulation import NOISE, Quantised, simulate

COMPARISONS, MARGIN, ALPHA = 5, 0.5, 0.05
SETTINGS = StatsSettings(alpha=ALPHA, margin=MARGIN, correction="holm")
DESIGNS = {
    "fixed 3 seeds": SeedDesign.fixed(range(3)),
    "fixed 12 seeds": SeedDesign.fixed(range(12)),
    "adaptive 3-12 (O'Brien-Fleming)": SeedDesign.sequential(3, 12),
    "adaptive 3-12 (Pocock)": SeedDesign.sequential(3, 12, 1, "pocock"),
}
# A step of 1 sd: a metric that is a share of 32 validation images (step 1/32) whose paired
# seed sd is also about 1/32. With sd = 1 the family's default step would never round anything.
QUANTISED_STEP = 1.0
FAMILIES = {"normal": "normal", "heavy": "heavy", "skewed": "skewed", "diverging": "diverging",
            "quantised": Quantised(step=QUANTISED_STEP)}
ASSERTED = set(FAMILIES)  # the rule (t-test and exact sign flips) promises alpha for every family
SUITES = {"normal": (10_000, 2_000)}  # (null suites, suites per effect): 50,000 null comparisons per design
OTHER_SUITES = (4_000, 1_000)  # the other families, to keep the session within minutes on 2 cores
QUICK_DESIGN, QUICK_SUITES = "adaptive 3-12 (O'Brien-Fleming)", (200, 50)
TABLE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "decision-table.md"
DECIDED = ("better", "worse", "equivalent", "inconclusive")
_rows: list = []


def suite_counts(family: str) -> tuple[int, int]:
    return SUITES.get(family, OTHER_SUITES)


def monte_carlo_allowance(suites: int) -> float:
    """3 standard errors of a rate of alpha over ``suites`` suites."""
    return 3 * math.sqrt(ALPHA * (1 - ALPHA) / suites)


def measure(design, noise, null_suites: int, effect_suites: int, timed=lambda run, *args: run(*args)) -> dict:
    """The suites behind one row: no effect, true difference at the margin, 1 sd, 2 sd, and
    a negligible difference (no effect, sd = margin / 5: where adaptive seeds stop early).
    ``timed`` runs the null simulation (the benchmark times it)."""
    def run(effect, suites, seed, sd=1.0):
        return simulate([effect] * COMPARISONS, design, SETTINGS, sd=sd, suites=suites, seed=seed, noise=noise)

    null = timed(run, 0.0, null_suites, 1)
    return {"null": null, "margin": run(MARGIN, effect_suites, 2), "1 sd": run(1.0, effect_suites, 3),
            "2 sd": run(2.0, effect_suites, 4), "negligible": run(0.0, effect_suites, 5, sd=MARGIN / 5)}


def row(design: str, family: str, results: dict) -> dict:
    null, margin = results["null"], results["margin"]
    others = {name: rate for name, rate in null.rates().items() if name not in DECIDED}
    return {
        "design": design, "family": family,
        "familywise": null.familywise_rate("better", "worse"),
        "familywise allowance": monte_carlo_allowance(null.suites),
        "false better": null.rate("better"), "false worse": null.rate("worse"),
        "false equivalent": margin.familywise_rate("equivalent"),
        "equivalent allowance": monte_carlo_allowance(margin.suites),
        "power 1 sd": results["1 sd"].rate("better"), "power 2 sd": results["2 sd"].rate("better"),
        "other outcomes": others,
        "runs": [results[key].mean_runs for key in ("null", "1 sd", "2 sd", "negligible")],
    }


def check(row_: dict) -> None:
    """The rule's promise: at most alpha of suites with a false better/worse, and of
    suites with a false equivalent at the margin, up to the Monte Carlo error."""
    assert row_["familywise"] <= ALPHA + row_["familywise allowance"], row_
    assert row_["false equivalent"] <= ALPHA + row_["equivalent allowance"], row_


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("design", list(DESIGNS))
def test_error_rates_power_and_runs(benchmark, design, family):
    benchmark.group = "decision rules by simulation"
    timed = lambda run, *args: benchmark.pedantic(run, args=args, rounds=1, iterations=1)
    measured = row(design, family, measure(DESIGNS[design], FAMILIES[family], *suite_counts(family), timed))
    _rows.append(measured)
    if family in ASSERTED:
        check(measured)


@pytest.mark.quick
def test_quick_decision_table_on_a_few_hundred_suites():
    """The same code path on one design, every family, a few hundred suites: CI catches a
    broken benchmark without its minutes (the rates are too rough to assert alpha)."""
    rows = [row(QUICK_DESIGN, family, measure(DESIGNS[QUICK_DESIGN], noise, *QUICK_SUITES)) for family, noise in FAMILIES.items()]
    table = markdown_table(rows)
    assert table.count("\n") == len(rows) + 1 and all(family in table for family in FAMILIES)
    for measured in rows:
        assert 0 <= measured["familywise"] <= 1 and measured["power 2 sd"] > measured["power 1 sd"] > 0
        assert 3 * (COMPARISONS + 1) <= min(measured["runs"]) <= max(measured["runs"]) <= 12 * (COMPARISONS + 1)


# ----------------------------------------------------------------------------- the table


def markdown_table(rows) -> str:
    header = ["noise", "design", "false better/worse, per suite", "false better / false worse, per comparison",
              "false equivalent, per suite (true Δ = margin)", "power at 1 sd", "power at 2 sd",
              "other outcomes, no effect (share of comparisons)", "runs per suite: no effect / 1 sd / 2 sd / negligible Δ"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(rows, key=lambda r: (list(FAMILIES).index(r["family"]), list(DESIGNS).index(r["design"]))):
        cells = [r["family"], r["design"], _flagged(r["familywise"], r["familywise allowance"]),
                 f"{r['false better']:.4f} / {r['false worse']:.4f}", _flagged(r["false equivalent"], r["equivalent allowance"]),
                 f"{r['power 1 sd']:.3f}", f"{r['power 2 sd']:.3f}",
                 ", ".join(f"{name} {rate:.3f}" for name, rate in sorted(r["other outcomes"].items())) or "none",
                 " / ".join(f"{runs:.1f}" for runs in r["runs"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _flagged(rate: float, allowance: float) -> str:
    """Bold where the rate exceeds alpha by more than the Monte Carlo error."""
    text = f"{rate:.3f}"
    return f"**{text}**" if rate > ALPHA + allowance else text


def caption(wall_seconds: float) -> str:
    normal, other, skewed = SUITES["normal"], OTHER_SUITES, NOISE["skewed"]
    return (f"{COMPARISONS} candidates against one shared baseline per suite (the comparisons share its seed noise); "
            f"paired sd 1, margin {MARGIN} sd, alpha {ALPHA}, Holm. Suites per row: normal noise {normal[0]:,} with no effect "
            f"({normal[0] * COMPARISONS:,} null comparisons) and {normal[1]:,} per effect; the other families {other[0]:,} "
            f"and {other[1]:,}. Heavy: Student t with 3 df; skewed: 1 candidate run in {1 / skewed.bad_share:.0f} lands in a "
            f"bad minimum {skewed.gap:g} noise sd below its other runs, its mean unchanged; diverging: 1 candidate run in "
            f"{1 / NOISE['diverging'].probability:.0f} fails; quantised: every value rounded to "
            f"{QUANTISED_STEP:g} sd. Negligible Δ: no effect and a paired sd of margin / 5 (quantised: the level 0.5 lies "
            f"midway between two steps, so such runs flip between them and often stay "
            f"inconclusive). **Bold**: above alpha by more than 3 Monte Carlo standard errors. "
            f"Asserted for: {', '.join(sorted(ASSERTED))}. Wall time of the session: {wall_seconds / 60:.1f} min.")


def write_table(path: Path, rows, wall_seconds: float) -> None:
    comment = (f"<!-- Generated by `python -m pytest benchmarks/test_decisions.py` on {datetime.date.today().isoformat()}; "
               f"do not edit by hand. -->")
    text = [comment, "", "# Decision rules by simulation", "", caption(wall_seconds), "", markdown_table(rows), ""]
    path.write_text("\n".join(text), encoding="utf-8")


@pytest.fixture(scope="module", autouse=True)
def report_rows(request):
    started = time.perf_counter()
    yield
    if not _rows:
        return
    wall = time.perf_counter() - started
    writer = request.config.get_terminal_writer()
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():  # shown even when captured
        writer.line("")
        writer.line(caption(wall))
        writer.line(markdown_table(_rows))
        if len(_rows) == len(DESIGNS) * len(FAMILIES):  # a partial session (-k) leaves the page alone
            write_table(TABLE, _rows, wall)
            writer.line(f"wrote {TABLE}")
