"""What a suite found, in words: one line per comparison, preceded by what makes any of
them untrustworthy (degenerate runs, failed runs). Every output opens with these lines.

    bilinear vs nearest: equivalent (Δ -0.0016, 90% CI [-0.0111, +0.0078] within ±0.02, 3 seeds)
    pixel shuffle vs nearest: inconclusive (Δ +0.0031, 95% CI [-0.0120, +0.0182], 3 seeds): about 9 seeds
      (≈ 6 min more) would detect a difference of 0.01
"""

from __future__ import annotations

import functools

import math
from dataclasses import dataclass

from ..degenerate import collapsed_runs, suite_reason, variant_reason
from ..numbers import duration, interval, missing, p_text, signed
from ..power import seeds_to_detect_from_pilot
from ..verdicts import BASELINE, BETTER, DEGENERATE, EQUIVALENT, INCONCLUSIVE, UNSTABLE, WORSE, confidence
from .devices import device_note

MAX_SEEDS_NAMED = 100  # beyond this, "more than 100 seeds": a plan, not a rerun
# Winner's curse: a better/worse from few seeds overstates the difference. Measured with segbench.simulation
# (tests/test_findings_note.py re-measures it): over the "better" calls of the rule at 6 to 8 seeds, the mean
# estimated Δ over the true one is about 1.2 for a true difference the seeds detect half the time, and about 2
# for one they detect a tenth of the time.
FEW_SEEDS = 8
EXAGGERATION_AT_HALF_POWER = 1.2
EXAGGERATION_AT_TENTH_POWER = 2.0
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    kind: str  # an outcome (segbench.verdicts), or "warning"
    text: str


def findings(rows: list, records: list, meta: dict) -> list:
    """The findings: warnings first, then each comparison in the table's order."""
    found = [Finding(WARNING, line) for line in warnings(records, meta)]
    baseline = next((row["variant"] for row in rows if row.get("verdict") == BASELINE), "the baseline")
    run_seconds = seconds_per_run(records)
    for row in rows:
        if row.get("verdict") != BASELINE:
            found.append(Finding(str(row.get("verdict")), comparison_line(row, baseline, run_seconds, meta)))
    return found


def warnings(records: list, meta: dict) -> list:
    primary = meta["primary"]
    lines = []
    whole = suite_reason(records, primary)
    if whole:
        lines.append(f"DEGENERATE: {whole}; no comparison can be trusted.")
    labels = {r["variant_id"]: r["label"] for r in records}
    for variant_id, seeds in collapsed_runs(records, primary).items():
        lines.append(f"DEGENERATE: {variant_reason(labels.get(variant_id, variant_id), seeds)}: the model predicts no "
                     "foreground; its comparisons are marked degenerate.")
    failed = [r for r in records if r.get("status") != "ok"]
    if failed:
        lines.append(f"FAILED: {len(failed)} of {len(records)} runs ("
                     + ", ".join(f"{r['label']} seed {r['seed']}" for r in failed[:5]) + (", ..." if len(failed) > 5 else "") + ")")
    devices = device_note(records)
    if devices:
        lines.append(devices)
    return lines


def comparison_line(row, baseline: str, run_seconds: float, meta: dict) -> str:
    outcome, seeds = row.get("verdict"), _seeds(row.get("paired_seeds"))
    if (meta.get("design") or {}).get("kind") == "adaptive" and row.get("seeds_state"):
        seeds += f"; {row['seeds_state']}"
    head = f"{row['variant']} vs {baseline}: {outcome}"
    if outcome == DEGENERATE:
        return f"{head}: {row.get('reason')}"
    delta = f"Δ {signed(row.get('delta'))}"
    if outcome == UNSTABLE:
        return f"{head}: {row.get('reason')}; never better or equivalent on the seeds that finished ({delta}, {seeds})"
    if outcome == EQUIVALENT:
        return (f"{head} ({delta}, {confidence(row.get('equivalence_level'))} CI "
                f"{interval(row.get('equivalence_ci_low'), row.get('equivalence_ci_high'))} within ±{row['margin']:g}, {seeds})"
                + _real_but_small(row))
    ci = f"95% CI {interval(row.get('delta_ci_low'), row.get('delta_ci_high'))}"
    if outcome in (BETTER, WORSE):
        return f"{head} ({delta}, {ci}, p adj. {p_text(row.get('p_adjusted'))}, {seeds}){_winners_curse(row)}"
    if outcome == INCONCLUSIVE:
        return f"{head} ({delta}, {ci}, {seeds}){_what_it_would_take(row, run_seconds, meta)}"
    return f"{head} ({delta}, {seeds})"


def _real_but_small(row) -> str:
    """An equivalence whose Δ is also clearly not 0: a wide margin must not hide a real gain."""
    low, high = row.get("delta_ci_low"), row.get("delta_ci_high")
    if missing(low) or missing(high) or low <= 0 <= high:
        return ""
    return "; but Δ's 95% CI excludes 0: a real difference, smaller than the margin"


def _winners_curse(row) -> str:
    """The note a better or worse from few seeds carries: its Δ is likely an overestimate."""
    n = row.get("paired_seeds")
    if missing(n) or int(n) > FEW_SEEDS:
        return ""
    return (f"; few seeds: Δ is likely an overestimate (a difference {int(n)} seeds detect half the time is "
            f"overstated about {EXAGGERATION_AT_HALF_POWER:g}x on average, a smaller one about "
            f"{EXAGGERATION_AT_TENTH_POWER:g}x)")


def _what_it_would_take(row, run_seconds, meta) -> str:
    """How many seeds would detect a difference of the margin, and how long they would take."""
    effect, sd, level, n = row.get("margin"), row.get("sd"), row.get("level"), row.get("paired_seeds")
    if any(missing(value) for value in (effect, sd, level, n)) or not 0 < level < 1 or int(n) < 2:
        return ""
    # as segbench plan counts them: the rule's power averaged over the SD these seeds allow
    needed = _seeds_needed(float(effect), float(sd), int(n) - 1, float(level), float((meta.get("stats") or {}).get("power", 0.8)))
    if needed is None:
        return f": more than {MAX_SEEDS_NAMED} seeds would be needed to detect a difference of {effect:g}"
    if needed <= n:
        return ""
    more = 2 * (needed - int(n)) * run_seconds  # the candidate's runs and the baseline's
    cost = f" (≈ {duration(more)} more)" if run_seconds == run_seconds else ""
    return f": about {needed} seeds{cost} would detect a difference of {effect:g}"


@functools.lru_cache(maxsize=8192)
def _seeds_needed(effect, sd, df, level, power):
    """seeds_to_detect_from_pilot, once per comparison: the terminal, Markdown and HTML
    findings each ask (tens of ms a comparison, which counts in a suite of hundreds)."""
    return seeds_to_detect_from_pilot(effect, sd, df, level, power, ceiling=MAX_SEEDS_NAMED)


def seconds_per_run(records: list) -> float:
    walls = [r["wall_seconds"] for r in records if r.get("status") == "ok" and isinstance(r.get("wall_seconds"), (int, float))]
    return sum(walls) / len(walls) if walls else math.nan


def _seeds(count) -> str:
    if missing(count):
        return "no paired seeds"
    return f"{int(count)} seed{'s' if int(count) != 1 else ''}"

