"""The simulation instrument itself (segbench.simulation): a baseline shared by every
comparison of a suite, noise families that have the properties their docstrings state
(measured on draws), and a replay that matches the runner's round-by-round loop."""

import math

import numpy as np
import pytest
from scipy import stats

from segbench.design import SeedDesign, StatsSettings
from segbench.simulation import (
    NOISE,
    Normal,
    Quantised,
    SimulationResult,
    draw_suite,
    noise_family,
    run_rounds,
    simulate,
)
from segbench.verdicts import judge_family

SEEDS = SeedDesign.fixed(range(10))  # seeds are independent, so each suite gives 10 draws per variant


def paired_differences(noise, effects, suites=1500, sd=1.0, seed=0, higher_is_better=True):
    """(candidates, suites * seeds) of candidate - baseline, from suites drawn one by one."""
    rng = np.random.default_rng(seed)
    rows = [[] for _ in effects]
    for _ in range(suites):
        baseline, candidates = draw_suite(rng, effects, SEEDS, sd=sd, noise=noise, higher_is_better=higher_is_better)
        for i, values in candidates.items():
            rows[i] += [values[s] - baseline[s] for s in SEEDS.seeds]
    return np.array(rows)


def within(value, expected, standard_error, errors=4):
    return abs(value - expected) <= errors * standard_error


# ----------------------------------------------------------------------------- shared baseline


@pytest.mark.parametrize("noise", ["normal", "skewed"])
def test_comparisons_of_a_suite_share_the_baseline_and_differ_by_sd(noise):
    """Two candidates' differences from one baseline share its noise: correlation 1/2
    (each side carries half the paired variance); each difference has sd ``sd``."""
    sd = 0.02
    diffs = paired_differences(noise, [0.0, 0.01], sd=sd)
    n = diffs.shape[1]
    correlation = np.corrcoef(diffs)[0, 1]
    assert within(correlation, 0.5, (1 - 0.5**2) / math.sqrt(n))
    for row, effect in zip(diffs, [0.0, 0.01]):
        kurtosis = stats.kurtosis(row, fisher=False)  # the spread of a sample sd depends on it
        assert within(row.std(ddof=1), sd, sd * math.sqrt((kurtosis - 1) / (4 * n)))
        assert within(row.mean(), effect, sd / math.sqrt(n))


# ----------------------------------------------------------------------------- noise families


def test_heavy_noise_has_heavy_tails_and_the_same_sd():
    diffs = paired_differences("heavy", [0.0], suites=1000)[0]
    assert stats.kurtosis(diffs) > 3  # excess kurtosis; about 0 for normal noise
    draws = NOISE["heavy"].candidate_noise(np.random.default_rng(1), 1.0, 200_000)
    assert draws.std() == pytest.approx(1.0, abs=0.1)  # scaled: an unscaled t3 has sd sqrt(3)
    assert abs(stats.kurtosis(paired_differences("normal", [0.0], suites=1000)[0])) < 0.3


def test_skewed_candidate_is_usually_above_its_mean_sometimes_far_below_and_centred():
    family, rng = NOISE["skewed"], np.random.default_rng(2)
    draws = family.candidate_noise(rng, 1.0, 100_000)
    assert stats.skew(draws) < -1 and np.median(draws) > 0
    far_below = np.mean(draws < -1.5)  # 1.5 sd below the mean: a bad local minimum
    assert within(far_below, family.bad_share, math.sqrt(family.bad_share * (1 - family.bad_share) / draws.size), 3)
    assert draws.std() == pytest.approx(1.0, abs=0.02)
    assert abs(stats.skew(family.baseline_noise(rng, 1.0, 100_000))) < 0.05  # the baseline stays normal
    diffs = paired_differences("skewed", [0.3])[0]
    assert within(diffs.mean(), 0.3, diffs.std() / math.sqrt(diffs.size))  # the true mean difference is the effect
    assert stats.skew(diffs) < -0.3
    lower_is_better = paired_differences("skewed", [0.0], suites=300, higher_is_better=False)[0]
    assert stats.skew(lower_is_better) > 0.3  # the bad runs are on the worse side of the metric


def test_diverging_candidate_runs_fail_one_in_ten_and_the_baseline_never():
    rng, failed, total = np.random.default_rng(3), 0, 0
    for _ in range(1000):
        baseline, candidates = draw_suite(rng, [0.0, 1.0], SEEDS, noise="diverging")
        assert None not in baseline.values()
        values = [v for c in candidates.values() for v in c.values()]
        failed, total = failed + values.count(None), total + len(values)
        assert all(v is None or math.isfinite(v) for v in values)
    probability = NOISE["diverging"].probability
    assert within(failed / total, probability, math.sqrt(probability * (1 - probability) / total), 3)


def ties_and_zero_spread(noise, step, suites=200):
    """Over ``suites`` suites of 2 comparisons at 3 seeds (sd = step): the seeds where a
    candidate ties the baseline, the comparisons whose paired differences have no spread,
    and every value drawn."""
    design, rng = SeedDesign.fixed(range(3)), np.random.default_rng(4)
    ties = zero_spread = 0
    drawn = []
    for _ in range(suites):
        baseline, candidates = draw_suite(rng, [0.0, 0.0], design, sd=step, noise=noise)
        drawn += [*baseline.values(), *(v for c in candidates.values() for v in c.values())]
        ties += sum(c[s] == baseline[s] for c in candidates.values() for s in design.seeds)
        judged = judge_family(baseline, candidates, higher_is_better=True, margin=step / 2, design=design,
                              settings=StatsSettings(), describe=False)
        zero_spread += sum(j.sd == 0 for j in judged.values())
    return ties, zero_spread, np.array(drawn)


@pytest.mark.parametrize("step", [1 / 32, 0.1])
def test_quantised_values_are_steps_and_tie_into_zero_spread_comparisons(step):
    ties, zero_spread, values = ties_and_zero_spread(Quantised(step=step), step)
    assert np.allclose(values / step, np.round(values / step), rtol=0, atol=1e-9)  # baseline and candidates
    assert ties > 0 and zero_spread > 0
    assert ties_and_zero_spread("normal", step)[:2] == (0, 0)  # the rounding makes them
    assert NOISE["quantised"].step == 1 / 32  # a share of 32 validation images


def test_a_family_is_a_name_or_an_object():
    class Silent(Normal):
        """No seed noise at all: every paired difference is exactly the effect."""

        def baseline_noise(self, rng, scale, size):
            return np.zeros(size)

    result = simulate([0.0, 0.0], SeedDesign.fixed(range(6)), StatsSettings(margin=0.5), suites=20, noise=Silent())
    assert result.rate("equivalent") == 1.0  # zero spread inside the margin: 6 seeds let the exact sign flips reach 1/64
    assert noise_family("heavy") is NOISE["heavy"]
    with pytest.raises(ValueError, match="valid: normal, heavy"):
        noise_family("cauchy")


# ----------------------------------------------------------------------------- results


def test_result_reads_the_rate_of_any_outcome_name():
    outcomes = np.array([["better", "unstable"], ["inconclusive", "unstable"], ["degenerate", "equivalent"]], dtype=object)
    result = SimulationResult(3, 2, outcomes, np.array([6, 6, 6]))
    assert result.rates() == pytest.approx({"better": 1 / 6, "unstable": 2 / 6, "inconclusive": 1 / 6, "degenerate": 1 / 6,
                                            "equivalent": 1 / 6})
    assert result.rates(column=1) == pytest.approx({"unstable": 2 / 3, "equivalent": 1 / 3})
    assert result.rate("unstable") == pytest.approx(2 / 6) and result.familywise_rate("unstable") == pytest.approx(2 / 3)


# ----------------------------------------------------------------------------- the runner's loop


@pytest.mark.parametrize("noise", ["heavy", "skewed", "diverging", pytest.param(Quantised(step=0.5), id="quantised-half-sd")])
def test_simulate_reaches_the_outcomes_and_runs_of_the_round_by_round_loop(noise):
    """``simulate`` replays every look over values drawn up front; the runner adds seeds
    round by round. Same suites (the same draws), same outcomes, same runs."""
    design, settings, effects, suites, seed = SeedDesign.sequential(3, 10), StatsSettings(margin=0.5), [0.0, 0.5, 1.5, 3.0], 25, 8
    result = simulate(effects, design, settings, suites=suites, seed=seed, noise=noise)
    rng = np.random.default_rng(seed)
    for index in range(suites):
        baseline, candidates = draw_suite(rng, effects, design, noise=noise)
        judged, runs = run_rounds(baseline, candidates, design, settings, margin=0.5)
        assert [judged[i].outcome for i in range(len(effects))] == list(result.outcomes[index])
        assert runs == result.runs[index]
    assert len(set(result.runs)) > 1  # adaptive: the suites stopped at different points
