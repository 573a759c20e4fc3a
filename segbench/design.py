"""How a suite decides: its statistical settings (``[stats]``) and its seed design
(``seeds``), with the group-sequential boundaries that adaptive seeds use.

- :class:`StatsSettings`: alpha, the equivalence margin (per suite, optionally per
  metric), the multiplicity correction and the power at which the minimum detectable
  effect is stated.
- :class:`SeedDesign`: a fixed list of seeds (one look at the data), or adaptive seeds
  ``{ min, max, step }``: the comparisons are looked at after ``min`` seeds, then after
  every ``step`` more, up to ``max``.
- :func:`nominal_levels`: the p-value threshold at each look that keeps the overall error
  rate at alpha despite the repeated looks (Lan & DeMets alpha spending, calibrated for
  paired t-tests).

This module imports no torch and no scipy at import time: the suite loader uses it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

# The defaults and allowed values of `seeds` and [stats] are declared with the suite schema.
from .schema import ALPHA, CORRECTIONS, DEFAULT_MARGIN, DEFAULT_SEEDS, POWER, SPENDINGS

BOUNDARY_PATHS = 200_000  # Monte Carlo paths behind each boundary
BOUNDARY_SEED = 20_131_105  # fixed: the boundaries, and so every decision, repeat exactly


@dataclass(frozen=True)
class StatsSettings:
    """``[stats]`` of a suite: ``alpha``, ``margin`` (a number, or a table per metric),
    ``correction`` ("holm" or "none") and ``power`` (for the minimum detectable effect)."""

    alpha: float = ALPHA
    margin: float = DEFAULT_MARGIN
    margins: tuple = ()  # ((metric, margin), ...) overriding ``margin``
    correction: str = CORRECTIONS[0]
    power: float = POWER

    def margin_for(self, metric: str) -> float:
        return dict(self.margins).get(metric, self.margin)

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "margin": self.margin, "margins": dict(self.margins), "correction": self.correction,
                "power": self.power}

    @classmethod
    def from_dict(cls, data: dict | None) -> StatsSettings:
        data = dict(data or {})
        margins = tuple(sorted((data.pop("margins", None) or {}).items()))
        known = {k: v for k, v in data.items() if k in ("alpha", "margin", "correction", "power")}
        return cls(margins=margins, **known)


@dataclass(frozen=True)
class SeedDesign:
    """The seeds a suite may run and the numbers of seeds at which its comparisons are
    judged (``looks``). A fixed list has one look, at all its seeds."""

    seeds: tuple
    looks: tuple
    adaptive: bool = False
    spending: str = SPENDINGS[0]
    step: int = 1

    @classmethod
    def fixed(cls, seeds) -> SeedDesign:
        seeds = tuple(seeds)
        return cls(seeds, (len(seeds),))

    @classmethod
    def sequential(cls, minimum: int, maximum: int, step: int = 1, spending: str = SPENDINGS[0]) -> SeedDesign:
        looks = list(range(minimum, maximum + 1, step))
        if looks[-1] != maximum:
            looks.append(maximum)
        return cls(tuple(range(maximum)), tuple(looks), True, spending, step)

    @property
    def max_seeds(self) -> int:
        return self.looks[-1]

    @property
    def min_seeds(self) -> int:
        return self.looks[0]

    def seeds_at(self, look: int) -> tuple:
        return self.seeds[: self.looks[look]]

    def threshold(self, level: float, look: int, sides: int = 2) -> float:
        """The nominal p-value threshold at ``look`` for a test of overall ``level``."""
        if not self.adaptive:
            return level
        return nominal_levels(round(level, 12), self.looks, self.spending, sides)[look]

    def describe(self) -> str:
        if not self.adaptive:
            return f"{len(self.seeds)} seed(s) {list(self.seeds)}"
        return (f"adaptive seeds: {self.min_seeds} to {self.max_seeds}, looks at {list(self.looks)}, "
                f"{self.spending.replace('_', '-')} alpha spending")

    def to_dict(self) -> dict:
        if not self.adaptive:
            return {"kind": "fixed", "seeds": list(self.seeds)}
        return {"kind": "adaptive", "min": self.min_seeds, "max": self.max_seeds, "step": self.step, "spending": self.spending}

    @classmethod
    def from_dict(cls, data: dict | None, fallback_seeds=()) -> SeedDesign:
        data = data or {}
        if data.get("kind") == "adaptive":
            return cls.sequential(int(data["min"]), int(data["max"]), int(data.get("step", 1)), data.get("spending", SPENDINGS[0]))
        return cls.fixed(data.get("seeds") or fallback_seeds)


def spent(alpha: float, fraction: float, spending: str) -> float:
    """Alpha spent by information fraction ``fraction`` (Lan & DeMets 1983, "Discrete
    sequential boundaries for clinical trials", Biometrika 70:659): the O'Brien-Fleming
    type 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), or the Pocock type alpha ln(1 + (e - 1) t)."""
    from scipy.stats import norm

    if fraction >= 1:
        return alpha
    if spending == "pocock":
        return alpha * math.log(1 + (math.e - 1) * fraction)
    return float(2 - 2 * norm.cdf(norm.ppf(1 - alpha / 2) / math.sqrt(fraction)))


@functools.lru_cache(maxsize=512)
def nominal_levels(alpha: float, looks: tuple, spending: str, sides: int = 2) -> tuple:
    """Per look, the p-value threshold of a group-sequential paired t-test of overall level
    ``alpha`` (two-sided, or one-sided with ``sides=1``), looking after ``looks[k]`` seeds,
    its alpha spent by ``spending`` (:func:`spent`).

    The textbook boundaries (Jennison & Turnbull 2000, "Group Sequential Methods with
    Applications to Clinical Trials", ch. 7 and 19) are for a z statistic. Applied as
    nominal levels to t-tests with 2 to 11 degrees of freedom they let too much through
    (measured: 5.75% instead of 5% with Pocock spending from 3 to 12 seeds), because the
    variance estimate changes from look to look. So the boundaries are calibrated on the
    t statistics themselves: on seeded Monte Carlo paths of normal paired differences, the
    threshold of look k is the one that the spent alpha of that look crosses among the
    paths that have not crossed before. The t statistic's null distribution does not depend
    on the spread, so this holds for any spread, up to the Monte Carlo error (about 3e-4 in
    alpha); the simulations in the tests measure it.
    """
    import numpy as np
    from scipy import special

    rng = np.random.default_rng(BOUNDARY_SEED)
    total, squares = np.zeros(BOUNDARY_PATHS), np.zeros(BOUNDARY_PATHS)
    alive, seen, spent_before, levels = np.ones(BOUNDARY_PATHS, bool), 0, 0.0, []
    for n in looks:
        draws = rng.standard_normal((n - seen, BOUNDARY_PATHS))
        total += draws.sum(0)
        squares += (draws**2).sum(0)
        seen = n
        mean = total / n
        t = mean / np.sqrt(np.maximum(squares - n * mean**2, 1e-300) / (n - 1) / n)
        statistic = np.abs(t) if sides == 2 else t
        increment = max(spent(alpha, n / looks[-1], spending) - spent_before, 0.0)
        spent_before += increment
        crossings = int(round(increment * BOUNDARY_PATHS))
        candidates = statistic[alive]
        if crossings < 1 or not len(candidates):
            boundary = math.inf
        else:
            boundary = float(np.partition(candidates, len(candidates) - min(crossings, len(candidates)))[-min(crossings, len(candidates))])
        alive &= statistic < boundary
        levels.append(float(sides * special.stdtr(n - 1, -boundary)) if math.isfinite(boundary) else 0.0)
    return tuple(levels)


# ----------------------------------------------------------------------------- suite keys
# `seeds` and [stats] are checked, and their defaults filled in, by the suite schema
# (segbench.schema.resolve); what is left here is what no single key can say.


def seed_design(seeds) -> tuple[SeedDesign, list]:
    """The design of a resolved ``seeds`` (a list of distinct seeds, or adaptive
    ``{ min, max, step, spending }``) and its problems as (where, message) pairs."""
    if not isinstance(seeds, dict):
        return SeedDesign.fixed(seeds), []
    if seeds["min"] > seeds["max"]:
        problem = f"min = {seeds['min']} is above max = {seeds['max']}: min is where the looks start, max where they end"
        return SeedDesign.fixed(DEFAULT_SEEDS), [("seeds", problem)]
    return SeedDesign.sequential(seeds["min"], seeds["max"], seeds["step"], seeds["spending"]), []


def stats_settings(stats: dict) -> StatsSettings:
    """The settings of a resolved ``[stats]``; a margin per metric overrides the default
    margin (whether its metric exists is checked once the suite's metrics are known)."""
    margin = stats["margin"]
    per_metric = isinstance(margin, dict)
    return StatsSettings(stats["alpha"], DEFAULT_MARGIN if per_metric else margin, tuple(sorted(margin.items())) if per_metric else (),
                         stats["correction"], stats["power"])


def margin_metric_problems(settings: StatsSettings, metrics) -> list:
    """A per-metric margin must name one of the suite's metrics."""
    import difflib

    problems = []
    for metric, _ in settings.margins:
        if metric not in metrics:
            by_lower = {name.lower(): name for name in metrics}
            close = difflib.get_close_matches(metric.lower(), list(by_lower), n=1)
            hint = f"; did you mean {by_lower[close[0]]!r}?" if close else ""
            problems.append((f"stats.margin.{metric}", f"no metric {metric!r} in eval.metrics{hint} Valid: {', '.join(metrics)}"))
    return problems
