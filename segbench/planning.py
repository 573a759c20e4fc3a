"""``segbench plan``: how many seeds each comparison of a suite needs.

From the paired spread that earlier results (or a pilot) show for each comparison with
the baseline, on the primary metric:

- the seeds with which the decision rule (the larger of the paired t-test's and the sign
  flips' p, :func:`segbench.statistics.difference_test`) detects a true difference of
  ``effect`` with the requested power;
- the seeds with which its two one-sided tests show equivalence within the suite's
  margin when the true difference is 0.

Both at the level the first Holm step uses, alpha / (number of comparisons), the level
every comparison must be ready to face; with ``correction = "none"``, at alpha. The power
is the rule's own (:mod:`segbench.power`), not the t-test's: the sign flips cannot decide
anything with 5 seeds below 2 / 2^5 = 0.0625, for one.

The pilot's spread is an estimate, and from 3 seeds a rough one (its 80% upper bound is
2.1 times it). Planning as if it were the true spread gave, over simulated 3-seed pilots,
a mean power of 0.55 to 0.68 where 0.8 was asked, and 26-41% of the plans below 0.5.
So the power a plan asks for is the *expected* power: the rule's power averaged over what
the true spread may be given the pilot (sigma^2 = df s^2 / X, X ~ chi2(df), df = pilot
seeds - 1: the posterior of a normal variance under the reference prior), the "assurance"
of O'Hagan, Stevens & Campbell (2005, Pharm. Stat. 4:187). It was chosen over an upper
confidence bound on the spread because it reaches the asked power on average with about
40% fewer seeds: over 3-seed pilots, a mean power of 0.83-0.84 (effect = 1 sd) and 0.94
(2 sd) at levels 0.05 and 0.025, where the 80% upper bound gave 0.88-0.96 with 1.3-1.7
times the seeds (tests/test_power.py measures it). Plans still fall below 0.5 power in
10-18% of 3-seed pilots at effect = 1 sd: a pilot that happens to look quiet says so.
More pilot seeds narrow it.

The plan ends with what it would take: the seeds every comparison needs for both, the runs
that adds, how long they would take at the mean duration of the earlier runs, and the
``segbench run`` command line that runs them (finished seeds are reused).
"""

from __future__ import annotations

import math

from .errors import SegbenchError
from .gate.results import load_results
from .format import one_line
from .numbers import duration
from .power import seeds_to_detect_from_pilot, seeds_to_show_equivalence_from_pilot
from .statistics import paired_differences
from .text import csv_cell

PLAN_SCHEMA = 1
ZERO_SPREAD = 1e-12  # a paired SD at most this share of the values' scale is rounding: taken as 0
MIN_PILOT_SEEDS = 3  # fewer paired seeds give too rough a spread to plan with
MAX_LISTED_SEEDS = 64  # the most an adaptive design may run; a longer seed list is not a command line anyone should paste


def plan_suite(suite, pilot: "Pilot", directions: dict, effect: float | None = None, power: float | None = None) -> dict:
    """The plan as data (``segbench plan --json`` prints it)."""
    primary = suite.primary
    stats = suite.stats
    margin = stats.margin_for(primary)
    effect = margin if effect is None else effect
    power = stats.power if power is None else power
    check_request(effect, power)
    candidates = [v for v in suite.variants if v.id != suite.baseline_id]
    level = stats.alpha / max(len(candidates), 1) if stats.correction == "holm" else stats.alpha
    baseline = pilot.values(suite.baseline, primary)
    rows, short = [], []
    for variant in candidates:
        values = pilot.values(variant, primary)
        diffs = paired_differences(baseline, values)
        if len(diffs) < MIN_PILOT_SEEDS:
            short.append(f"{one_line(variant.label)}: {len(diffs)}")
            continue
        scale = max(abs(value) for value in [*baseline.values(), *values.values()])
        rows.append(_row(variant, diffs, effect, margin, level, power, scale))
    if short:
        raise SegbenchError(
            f"{pilot.source}: too few paired seeds to estimate the spread of {', '.join(short)}; `segbench plan` needs at least "
            f"{MIN_PILOT_SEEDS} finished seeds of each variant and of the baseline. Run a pilot first, e.g. "
            f"segbench run {suite.path} --set 'seeds=[0, 1, 2]'")
    return {
        "schema": PLAN_SCHEMA, "suite": suite.name, "results": str(pilot.source), "metric": primary,
        "higher_is_better": directions.get(primary, True), "baseline": suite.baseline.label, "alpha": stats.alpha,
        "correction": stats.correction, "comparisons": len(candidates), "level": level, "power": power, "effect": effect,
        "margin": margin, "variants": rows, "next": next_step(suite, rows, pilot.seconds_per_run()),
    }


def next_step(suite, rows: list, seconds_per_run: float | None) -> dict:
    """The seeds every comparison needs to detect the effect and to show equivalence, the
    runs and time that adds, and the command line that runs them."""
    counts = [count for row in rows for count in (row["seeds_to_detect"], row["seeds_to_show_equivalence"])]
    seeds = list(suite.seeds)
    if not counts or None in counts:
        return {"seeds": None, "more_runs": None, "seconds": None, "command": None}
    needed = max(max(counts), len(seeds))
    added = [seed for seed in range(needed + len(seeds)) if seed not in seeds][: needed - len(seeds)]
    more_runs = len(added) * len(suite.variants)
    listed = ", ".join(map(str, seeds + added))
    command = f"segbench run {suite.path} --set 'seeds=[{listed}]'" if needed <= MAX_LISTED_SEEDS else None
    return {"seeds": needed, "more_runs": more_runs, "seconds_per_run": seconds_per_run,
            "seconds": more_runs * seconds_per_run if seconds_per_run is not None else None, "command": command}


def check_request(effect, power) -> None:
    if not (isinstance(effect, (int, float)) and math.isfinite(effect) and effect > 0):
        raise SegbenchError(f"--effect {effect!r}: expected a difference > 0 in the metric's units, e.g. --effect 0.01")
    if not (isinstance(power, (int, float)) and 0 < power < 1):
        raise SegbenchError(f"--power {power!r}: expected a probability between 0 and 1, e.g. --power 0.8")


def _row(variant, diffs, effect, margin, level, power, scale) -> dict:
    observed = float(diffs.std(ddof=1))
    sd = spread(observed, scale)
    return {
        "variant": variant.label, "variant_id": variant.id, "pilot_seeds": len(diffs),
        "observed_diff": float(diffs.mean()), "paired_sd": sd, "observed_paired_sd": observed, "no_spread": sd == 0,
        "seeds_to_detect": seeds_to_detect_from_pilot(effect, sd, len(diffs) - 1, level, power),
        "seeds_to_show_equivalence": seeds_to_show_equivalence_from_pilot(sd, len(diffs) - 1, margin, level, power),
    }


def spread(sd: float, scale: float) -> float:
    """The paired SD, 0 when it is within float rounding of the values' ``scale`` (at most
    ``ZERO_SPREAD`` x max(scale, 1)): differences that agree but for rounding are no spread
    at all, so that 1e-18 plans as 0 does. With no spread the t-test is certain, and the
    sign flips decide the count: the fewest seeds with which they can reach the level."""
    return 0.0 if sd <= ZERO_SPREAD * max(scale, 1.0) else sd


class Pilot:
    """Per-seed values of earlier runs, from a results folder or from a report's
    ``runs.csv`` (a row per run), matched to a suite's variants by id, else by label."""

    def __init__(self, source, rows: list):
        self.source = source
        self.rows = rows  # dicts with variant_id, label, seed, status, wall_seconds and the metrics

    @classmethod
    def load(cls, source) -> Pilot:
        from pathlib import Path

        source = Path(source)
        if source.is_file():
            return cls(source, _csv_rows(source))
        if source.exists() and not source.is_dir():  # a named pipe would block the reader
            raise SegbenchError(f"{source}: not a regular file; give a results folder or the runs.csv of a report")
        results = load_results(source)
        rows = [{"variant_id": v.id, "label": v.label, "seed": seed, "status": "ok", "wall_seconds": record.get("wall_seconds"),
                 **(record.get("metrics") or {})} for v in results.variants for seed, record in v.ok.items()]
        return cls(results.suite_dir, rows)

    def values(self, variant, metric: str) -> dict:
        mine = [r for r in self.rows if r["variant_id"] == variant.id]
        if not mine:
            names = (variant.label, csv_cell(variant.label))  # as a results folder or as runs.csv writes it
            labelled = {r["variant_id"] for r in self.rows if r["label"] in names}
            mine = [r for r in self.rows if r["variant_id"] in labelled] if len(labelled) == 1 else []
        return {int(r["seed"]): float(r[metric]) for r in mine
                if r.get("status") == "ok" and isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])}


    def seconds_per_run(self) -> float | None:
        """The mean wall time of the finished runs (None when none says)."""
        walls = [float(r["wall_seconds"]) for r in self.rows if r.get("status") == "ok"
                 and isinstance(r.get("wall_seconds"), (int, float)) and math.isfinite(r["wall_seconds"])]
        return sum(walls) / len(walls) if walls else None


def _csv_rows(path) -> list:
    """The rows of a report's runs.csv, each seed an integer and each (variant, seed) once;
    anything else is bad input naming the rows (row 1 is the line after the header)."""
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype={"seed": str, "variant_id": str}, keep_default_na=False, na_values={"seed": []})
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise SegbenchError(f"{path}: cannot read it as a report's runs.csv: {exc}") from None
    missing = {"variant_id", "label", "seed", "status"} - set(table.columns)
    if missing:
        raise SegbenchError(f"{path}: not a segbench runs.csv (no column {', '.join(sorted(missing))}); give a results folder "
                            "or the runs.csv of a report")
    rows = [{**row, **{name: _number_or_none(value) for name, value in row.items() if name not in TEXT_COLUMNS}}
            for row in table.to_dict("records")]
    _check_seeds(path, rows)
    return rows


TEXT_COLUMNS = ("variant_id", "label", "seed", "status")
SHOWN_ROWS = 5


def _number_or_none(value):
    """A number column's cell as pandas reads it, an empty cell as None (read without
    pandas' NaN guessing so that the seed column stays text)."""
    if isinstance(value, str):
        try:
            return float(value) if value.strip() else None
        except ValueError:
            return value
    return value


def _check_seeds(path, rows: list) -> None:
    """Each seed an integer, each (variant, seed) in one row: a fractional seed cut to an
    integer, or a run counted twice, would give a wrong spread without a word."""
    bad = [f"row {index} holds {row['seed']!r}" for index, row in enumerate(rows, 1) if _seed(row["seed"]) is None]
    if bad:
        raise SegbenchError(f"{path}: column 'seed' must hold an integer seed in every row: {_listed(bad)}")
    seen, repeated = {}, []
    for index, row in enumerate(rows, 1):
        row["seed"] = _seed(row["seed"])
        key = (row["variant_id"], row["seed"])
        if key in seen:
            repeated.append(f"rows {seen[key]} and {index} (variant {one_line(row['label'])!r} seed {row['seed']})")
        seen.setdefault(key, index)
    if repeated:
        raise SegbenchError(f"{path}: each run must be one row, but the same variant and seed appear in {_listed(repeated)}; "
                            "remove the repeated rows, or plan from the results folder")


def _seed(text) -> int | None:
    """The integer a seed cell holds ("3", or "3.0" as a spreadsheet may write it), else None."""
    try:
        value = float(str(text).strip())
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None


def _listed(items: list) -> str:
    return ", ".join(items[:SHOWN_ROWS]) + (f" and {len(items) - SHOWN_ROWS} more" if len(items) > SHOWN_ROWS else "")


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
    flat = [one_line(r["variant"]) for r in plan["variants"] if r.get("no_spread")]
    if flat:
        lines += ["", f"{', '.join(flat)}: the pilot's paired differences do not vary (SD 0, or within {ZERO_SPREAD:g} of the values' "
                  "scale: taken as 0), so the counts are the fewest seeds with which the sign flips can reach the level. A pilot "
                  "with no spread says little about the spread to come: check that its runs really differ by seed."]
    lines += ["", "Seeds are paired: each count is for the variant and the baseline alike. The power is the decision rule's "
              "(t-test and sign flips), averaged over what the true SD may be given the pilot's seeds. Equivalence "
              "assumes a true difference of 0; adaptive seeds { min, max } stop early where a comparison is decided.", ""]
    return "\n".join(lines + [wrapped for line in _next_lines(plan["next"], plan) for wrapped in _wrap(line)])


def _wrap(line: str) -> list:
    """A sentence wrapped at 100 columns; a command line (indented) never."""
    import textwrap

    return [line] if line.startswith("  ") else textwrap.wrap(line, 100)


def _next_lines(step: dict, plan: dict) -> list:
    if step["seeds"] is None:
        return ["Some comparison needs more than 10000 seeds: no realistic number decides it. A larger --effect, or a "
                "less noisy training setup, would."]
    cost = f" (≈ {duration(step['seconds'])} at {duration(step['seconds_per_run'])} a run, the earlier runs' mean)" if step["seconds"] else ""
    lines = [f"To detect ±{plan['effect']:g} and show equivalence within ±{plan['margin']:g} in every comparison: "
             f"{step['seeds']} seeds per variant, {step['more_runs']} more run(s){cost}."]
    if step["command"] and step["more_runs"]:
        lines += ["Run them (finished seeds are reused):", f"  {one_line(step['command'])}"]
    elif not step["more_runs"]:
        lines += ["The suite already runs that many seeds."]
    else:
        lines += [f"That is more than {MAX_LISTED_SEEDS} seeds: a larger --effect, or a less noisy training setup, is the "
                  "realistic way on."]
    return lines


def _count(value) -> str:
    return "> 10000" if value is None else str(value)
