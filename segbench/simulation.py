"""Validation of the decision rules by simulation, with no training.

Synthetic suites of paired seed results (baseline and candidates, per-seed values whose
paired differences have a chosen mean and spread) are fed to the real decision code, in
the same loop the runner uses: judge the comparisons (:func:`segbench.verdicts.judge_family`),
ask which seeds each variant needs next (:func:`segbench.verdicts.seeds_wanted`), "run"
them, and repeat until nothing more is wanted. The tests and ``benchmarks/`` use this to
measure the false better/worse rate, power, the false-equivalence rate and the runs that
adaptive seeds save; docs/statistics.md and docs/guide/benchmarks.md quote the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .design import SeedDesign, StatsSettings
from .verdicts import judge_family, seeds_wanted


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

    @property
    def mean_runs(self) -> float:
        return float(self.runs.mean())


def simulate(effects, design: SeedDesign, settings: StatsSettings, *, sd: float = 1.0, suites: int = 1000,
             margin: float | None = None, higher_is_better: bool = True, seed: int = 0) -> SimulationResult:
    """Simulate ``suites`` suites, each with one baseline and ``len(effects)`` candidates
    whose true paired difference from the baseline is ``effects[i]`` (metric units) with
    paired standard deviation ``sd``. ``margin`` defaults to the settings' margin.

    Every seed a suite could run is drawn up front and the looks are replayed over them:
    a look uses only its own seeds, so this reaches the outcomes and run counts of the
    runner's round-by-round loop (:func:`run_rounds`, which the tests show agrees)."""
    effects = np.asarray(effects, dtype=float)
    margin = settings.margin if margin is None else margin
    rng = np.random.default_rng(seed)
    outcomes = np.empty((suites, len(effects)), dtype=object)
    runs = np.zeros(suites, dtype=int)
    for index in range(suites):
        baseline, candidates = _draw(rng, effects, sd, design)
        judgements = judge_family(baseline, candidates, higher_is_better=higher_is_better, margin=margin, design=design,
                                  settings=settings, describe=False)
        outcomes[index] = [judgements[i].outcome for i in range(len(effects))]
        wanted, baseline_wanted = seeds_wanted(judgements, design)
        runs[index] = baseline_wanted + sum(wanted.values())
    return SimulationResult(suites, len(effects), outcomes, runs)


def _draw(rng, effects, sd, design):
    base = rng.normal(0.5, 0.05, design.max_seeds)
    values = base[None, :] + effects[:, None] + rng.normal(0.0, sd, (len(effects), design.max_seeds))
    baseline = dict(zip(design.seeds, base.tolist()))
    return baseline, {i: dict(zip(design.seeds, row.tolist())) for i, row in enumerate(values)}


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


__all__ = ["simulate", "run_rounds", "SimulationResult"]
