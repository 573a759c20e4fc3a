"""Validation of the decision rules by simulation, with no training.

Synthetic suites (one baseline, several candidates, a value per seed) are fed to the real
decision code, in the same loop the runner uses: judge the comparisons
(:func:`segbench.verdicts.judge_family`), ask which seeds each variant needs next
(:func:`segbench.verdicts.seeds_wanted`), "run" them, and repeat until nothing more is
wanted. The tests and ``benchmarks/`` use this to measure the false better/worse rate,
power, the false-equivalence rate and the runs that adaptive seeds save;
docs/guide/decision-table.md holds the numbers.

**A shared baseline.** Per seed s, the baseline is ``common_s + e_b,s`` and candidate i is
``common_s + effect_i + e_i,s``: every comparison of a suite shares the baseline's seed
noise ``e_b``, as in a real suite, so its comparisons are correlated (about 0.5). ``e_b``
and ``e_i`` are independent with spread ``sd / sqrt(2)`` each, so a paired difference
candidate - baseline has mean ``effect_i`` and standard deviation ``sd``.

**Noise families** (``simulate(noise=...)``, :data:`NOISE`): how seed results scatter.
``normal`` is what the paired t-test assumes; ``heavy``, ``skewed``, ``diverging`` and
``quantised`` are the ways real seed results depart from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .design import SeedDesign, StatsSettings
from .verdicts import judge_family, seeds_wanted

BASE, COMMON_SD = 0.5, 0.05  # absolute units: a metric around 0.5 whose seeds move all variants alike by 0.05


# ----------------------------------------------------------------------------- noise families


class Normal:
    """Normal seed noise for baseline and candidates: the case the paired t-test assumes."""

    name = "normal"

    def baseline_noise(self, rng, scale: float, size) -> np.ndarray:
        """The baseline's own seed noise, standard deviation ``scale``."""
        return rng.normal(0.0, scale, size)

    def candidate_noise(self, rng, scale: float, size) -> np.ndarray:
        """A candidate's own seed noise: mean 0, standard deviation ``scale``."""
        return self.baseline_noise(rng, scale, size)

    def observe(self, rng, values: np.ndarray, *, candidate: bool) -> list:
        """What a run reports for each true value: a number, or None for a failed run."""
        return values.tolist()


@dataclass(frozen=True)
class Heavy(Normal):
    """Heavy tails: Student t with ``degrees`` (3) degrees of freedom, scaled to the same
    standard deviation (infinite kurtosis at 3): now and then a run lands far off, on
    either side, for baseline and candidates alike."""

    degrees: float = 3.0

    name = "heavy"

    def baseline_noise(self, rng, scale, size):
        return rng.standard_t(self.degrees, size) * scale / math.sqrt(self.degrees / (self.degrees - 2))


@dataclass(frozen=True)
class Skewed(Normal):
    """A candidate that is usually a little better than its mean but now and then much worse:
    a share ``bad_share`` of its runs (1 in 10) fall into a bad local minimum ``gap`` (its
    noise's sd times 3) below the others; finite, so nothing flags them as failures. The
    mixture of two normals is centred, so the candidate's mean is exactly its stated effect,
    and has the same sd as the other families (skewness about -1.9). The baseline stays
    normal. "Below" is the worse side when higher is better (``draw_suite`` flips it)."""

    bad_share: float = 0.1
    gap: float = 3.0  # in units of the noise's sd; below 1 / sqrt(share (1 - share)) = 3.33

    name = "skewed"

    def candidate_noise(self, rng, scale, size):
        share, gap = self.bad_share, self.gap * scale
        within = scale * math.sqrt(1 - share * (1 - share) * self.gap**2)  # the rest of the variance
        bad = rng.random(size) < share
        centre = np.where(bad, -(1 - share) * gap, share * gap)  # the two centres average to 0
        return centre + rng.normal(0.0, within, size)


@dataclass(frozen=True)
class Diverging(Normal):
    """Each run of a candidate diverges with probability ``probability``: a failed run,
    None in its {seed: value} (as :func:`segbench.verdicts.metric_values` reports one); the
    runs that train are normal around the mean. The baseline never diverges."""

    probability: float = 0.1

    name = "diverging"

    def observe(self, rng, values, *, candidate):
        if not candidate:
            return values.tolist()
        diverged = rng.random(values.shape) < self.probability
        return np.where(diverged, None, values.astype(object)).tolist()


@dataclass(frozen=True)
class Quantised(Normal):
    """Normal noise, then every value (baseline and candidates) rounded to ``step``, as a
    metric that is a share of a few validation images is (1/32: 32 images). Seeds can tie,
    and a comparison's paired differences can all be equal (zero spread)."""

    step: float = 1 / 32

    name = "quantised"

    def observe(self, rng, values, *, candidate):
        return (np.round(values / self.step) * self.step).tolist()


NOISE = {family.name: family for family in (Normal(), Heavy(), Skewed(), Diverging(), Quantised())}  # add a family here


def noise_family(noise) -> Normal:
    """A family from its name in :data:`NOISE`, or the family object itself."""
    if isinstance(noise, str):
        if noise not in NOISE:
            raise ValueError(f"unknown noise {noise!r}; valid: {', '.join(NOISE)}")
        return NOISE[noise]
    return noise


def draw_suite(rng, effects, design: SeedDesign, *, sd: float = 1.0, noise="normal", higher_is_better: bool = True):
    """One suite's values on every seed ``design`` could run, with a shared baseline:
    ``(baseline, {i: candidate i})``, each {seed: value or None}."""
    family, effects, seeds = noise_family(noise), np.asarray(effects, dtype=float), design.max_seeds
    scale = sd / math.sqrt(2)  # baseline and candidate each carry half the paired variance
    worse = 1.0 if higher_is_better else -1.0  # a skewed candidate's bad runs are worse in the metric's direction
    common = rng.normal(BASE, COMMON_SD, seeds)
    baseline = common + family.baseline_noise(rng, scale, seeds)
    candidates = common + effects[:, None] + worse * family.candidate_noise(rng, scale, (len(effects), seeds))
    baseline_values = family.observe(rng, baseline, candidate=False)
    candidate_values = family.observe(rng, candidates, candidate=True)
    seed_ids = design.seeds[:seeds]
    return dict(zip(seed_ids, baseline_values)), {i: dict(zip(seed_ids, row)) for i, row in enumerate(candidate_values)}


# ----------------------------------------------------------------------------- simulation


@dataclass
class SimulationResult:
    suites: int
    comparisons: int
    outcomes: np.ndarray  # (suites, comparisons) of outcome strings
    runs: np.ndarray  # (suites,) runs each simulated suite used

    def rate(self, *outcomes, column=None) -> float:
        """Share of comparisons (optionally one column) that ended in any of ``outcomes``."""
        chosen = self.outcomes if column is None else self.outcomes[:, column]
        return float(np.isin(chosen, outcomes).mean())

    def familywise_rate(self, *outcomes, columns=None) -> float:
        """Share of suites with at least one comparison (among ``columns``) in ``outcomes``."""
        chosen = self.outcomes if columns is None else self.outcomes[:, columns]
        return float(np.isin(chosen, outcomes).any(axis=1).mean())

    def rates(self, column=None) -> dict:
        """Every outcome that occurred (whatever its name: "unstable", "degenerate", ...)
        -> its share of the comparisons (optionally of one column)."""
        chosen = self.outcomes if column is None else self.outcomes[:, column]
        names, counts = np.unique(chosen.astype(str), return_counts=True)
        return {str(name): float(count / chosen.size) for name, count in zip(names, counts)}

    @property
    def mean_runs(self) -> float:
        return float(self.runs.mean())


def simulate(effects, design: SeedDesign, settings: StatsSettings, *, sd: float = 1.0, suites: int = 1000,
             margin: float | None = None, higher_is_better: bool = True, seed: int = 0,
             noise="normal") -> SimulationResult:
    """Simulate ``suites`` suites, each with one shared baseline and ``len(effects)``
    candidates whose true mean paired difference from the baseline is ``effects[i]``
    (metric units) with paired standard deviation ``sd``; ``noise`` names the family
    (:data:`NOISE`) or is one. ``margin`` defaults to the settings' margin.

    Every seed a suite could run is drawn up front (:func:`draw_suite`, one after the
    other from ``numpy.random.default_rng(seed)``) and the looks are replayed over them: a
    look uses only its own seeds, so this reaches the outcomes and run counts of the
    runner's round-by-round loop (:func:`run_rounds`, which the tests show agrees)."""
    effects = np.asarray(effects, dtype=float)
    margin = settings.margin if margin is None else margin
    family = noise_family(noise)
    rng = np.random.default_rng(seed)
    outcomes = np.empty((suites, len(effects)), dtype=object)
    runs = np.zeros(suites, dtype=int)
    for index in range(suites):
        baseline, candidates = draw_suite(rng, effects, design, sd=sd, noise=family, higher_is_better=higher_is_better)
        judgements = judge_family(baseline, candidates, higher_is_better=higher_is_better, margin=margin, design=design,
                                  settings=settings, describe=False)
        outcomes[index] = [judgements[i].outcome for i in range(len(effects))]
        wanted, baseline_wanted = seeds_wanted(judgements, design)
        runs[index] = baseline_wanted + sum(wanted.values())
    return SimulationResult(suites, len(effects), outcomes, runs)


def run_rounds(baseline_values: dict, candidate_values: dict, design: SeedDesign, settings: StatsSettings, *,
               margin: float, higher_is_better: bool = True) -> tuple[dict, int]:
    """The runner's loop over pre-drawn values: judge, run the seeds wanted, repeat until
    nothing more is wanted. Returns the final judgements and the runs used."""
    baseline, candidates = {}, {key: {} for key in candidate_values}
    while True:
        judgements = judge_family(baseline, candidates, higher_is_better=higher_is_better, margin=margin, design=design,
                                  settings=settings, describe=False)
        wanted, baseline_wanted = seeds_wanted(judgements, design)
        added = _fill(baseline, baseline_values, design.seeds[:baseline_wanted])
        for key, count in wanted.items():
            added += _fill(candidates[key], candidate_values[key], design.seeds[:count])
        if not added:
            return judgements, len(baseline) + sum(len(c) for c in candidates.values())


def _fill(target, source, seeds) -> int:
    missing = [s for s in seeds if s not in target]
    target.update({s: source[s] for s in missing})
    return len(missing)


__all__ = [
    "NOISE",
    "Diverging",
    "Heavy",
    "Normal",
    "Quantised",
    "SimulationResult",
    "Skewed",
    "draw_suite",
    "noise_family",
    "run_rounds",
    "simulate",
]
