"""Statistical primitives over paired seed results, shared by the report, the gate, the
runner (adaptive seeds) and ``segbench plan``. Library code does the work: scipy for the
t-tests and bootstrap, statsmodels for the Holm adjustment. What they lack (the paired
probability of improvement, a vectorised exact sign-flip test) is written here with a
reference, and tested against them; the power of the decision rule is in
:mod:`segbench.power`.

A *difference* is always ``candidate - baseline`` in the metric's own units; whether a
positive difference is an improvement is the metric's direction (``higher_is_better``).
"""

from __future__ import annotations

import functools
import gc
import math

import numpy as np
from scipy import special

BOOTSTRAP_RESAMPLES = 2000  # the image bootstrap's resamples
BOOTSTRAP_SEED = 0  # fixed: every run resamples the same images, so replicates pair up


def mean_ci(values, confidence=0.95):
    """Mean and the half-width of its t confidence interval (NaN with fewer than 2 values)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) < 2:
        return float(values.mean()), math.nan
    sem = values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(sem * special.stdtrit(len(values) - 1, (1 + confidence) / 2))


def paired_differences(baseline: dict, candidate: dict, seeds=None) -> np.ndarray:
    """``candidate - baseline`` over the seeds both have a finite value for (optionally only
    ``seeds``), in seed order."""
    shared = sorted(set(baseline) & set(candidate) & (set(seeds) if seeds is not None else set(baseline)))
    diffs = np.array([_number(candidate[s]) - _number(baseline[s]) for s in shared], dtype=float)
    return diffs[~np.isnan(diffs)]


def paired_comparison(baseline: dict, candidate: dict) -> dict:
    """The paired test of ``candidate - baseline`` over the seeds both have: the mean
    difference, its 95% CI and the two-sided p-value, with its t and sign-flip parts (see
    :func:`difference_test`)."""
    result = difference_test(paired_differences(baseline, candidate))
    return {"n_pairs": result["n"], "diff": result["diff"], "ci_low": result["ci_low"], "ci_high": result["ci_high"],
            "p_value": result["p_value"], "p_t": result["p_t"], "p_sign_flip": result["p_sign_flip"]}


def difference_test(diffs) -> dict:
    """Two-sided test of paired differences against 0, with the 95% t interval of their
    mean. The p-value is the larger of two: the paired t-test's (the same p as scipy's
    ``ttest_1samp``, tested; exact for normal differences) and the exact sign-flip
    randomisation test's (:func:`sign_flip_p`; exact for any distribution when the variant
    changes nothing, the sharp null). Each is a valid p-value under its own assumption, so
    the larger one is valid under either: skewed, heavy-tailed or quantised seed results
    included. Identical differences have no spread: the t-test cannot judge them, and the
    sign flips give 1 when they are all 0, else 2 / 2^n, never 0."""
    diffs = np.asarray(diffs, dtype=float)
    n = len(diffs)
    result = {"n": n, "diff": math.nan, "sd": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan,
              "p_t": math.nan, "p_sign_flip": math.nan}
    if n == 0:
        return result
    mean, half_width = mean_ci(diffs)
    result.update(diff=mean, ci_low=mean - half_width, ci_high=mean + half_width)
    if n >= 2:
        result["sd"] = float(diffs.std(ddof=1))
        exact = sign_flip_p(diffs)
        t_p = 2 * _t_tail(abs(mean) / (result["sd"] / math.sqrt(n)), n - 1) if np.ptp(diffs) > 0 else math.nan
        result.update(p_t=t_p, p_sign_flip=exact, p_value=exact if t_p != t_p else max(t_p, exact))
    return result


def sign_flip_p(diffs, alternative: str = "two-sided") -> float:
    """The exact paired randomisation test (Fisher 1935; Pitman 1937): under the null that
    the variant changes nothing, each paired difference is as likely to have either sign,
    so the observed sum is compared with the sums of all 2^n sign flips (p = the share at
    least as extreme, the observed one included; scipy's ``permutation_test`` with
    ``permutation_type="samples"`` gives the same, tested). Beyond :data:`EXACT_FLIPS_UP_TO`
    seeds, a fixed draw of :data:`RANDOM_FLIPS` random flips with the +1 correction, still a
    valid p-value. ``alternative``: "greater" tests a positive mean, "less" a negative one.

    The smallest p it can give is 2 / 2^n two-sided, 1 / 2^n one-sided: with 3 seeds 0.25,
    so 3 seeds can decide nothing without assuming normal seed results."""
    diffs = np.asarray(diffs, dtype=float)
    n = len(diffs)
    if n == 0:
        return math.nan
    flips, exact = _flips(n)
    sums = flips @ diffs
    observed = float(diffs.sum())
    slack = 1e-12 * max(1.0, float(np.abs(diffs).sum()))
    if alternative == "greater":
        extreme = sums >= observed - slack
    elif alternative == "less":
        extreme = sums <= observed + slack
    else:
        extreme = np.abs(sums) >= abs(observed) - slack
    count = int(extreme.sum())
    return count / len(flips) if exact else (count + 1) / (len(flips) + 1)


EXACT_FLIPS_UP_TO = 14  # 2^14 sign patterns; more seeds draw RANDOM_FLIPS of them
RANDOM_FLIPS = 20_000


@functools.lru_cache(maxsize=64)
def _flips(n: int) -> tuple[np.ndarray, bool]:
    """Every sign pattern of n differences (the identity first), or a fixed random draw."""
    if n <= EXACT_FLIPS_UP_TO:
        patterns = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(float)
        return 1.0 - 2.0 * patterns, True
    return np.random.default_rng(n).choice([1.0, -1.0], size=(RANDOM_FLIPS, n)), False


def equivalence_test(diffs, margin: float) -> dict:
    """Paired two one-sided tests (TOST; Schuirmann 1987) of ``-margin < mean < margin``:
    p is the larger of the two one-sided p-values, each itself the larger of the t-test's
    and the exact sign-flip test's on the differences shifted by the margin (see
    :func:`difference_test`). The t part alone is scipy's and statsmodels'
    ``ttost_paired`` (tested): equivalence at level alpha holds exactly when the
    (1 - 2 alpha) t interval lies inside the margin, and the sign flips must agree."""
    diffs = np.asarray(diffs, dtype=float)
    n = len(diffs)
    if n < 2 or not margin > 0:
        return {"p_value": math.nan, "p_t": math.nan, "p_sign_flip": math.nan}
    exact = max(sign_flip_p(diffs + margin, "greater"), sign_flip_p(diffs - margin, "less"))
    if np.ptp(diffs) == 0:
        t_p = 0.0 if abs(diffs[0]) < margin else 1.0
    else:
        mean, se = diffs.mean(), diffs.std(ddof=1) / math.sqrt(n)
        above_lower = _t_tail((mean + margin) / se, n - 1)  # H0: mean <= -margin
        below_upper = _t_tail((margin - mean) / se, n - 1)  # H0: mean >= margin
        t_p = float(max(above_lower, below_upper))
    return {"p_value": float(max(t_p, exact)), "p_t": t_p, "p_sign_flip": exact}


def t_interval(diffs, confidence: float) -> tuple[float, float]:
    """The two-sided t interval of the mean of ``diffs`` (NaN with fewer than 2)."""
    mean, half_width = mean_ci(diffs, confidence)
    return mean - half_width, mean + half_width


def holm(p_values, family_size: int | None = None) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels ``multipletests``); NaN stays NaN and is left
    out of the tests. ``family_size`` counts hypotheses that keep their share of alpha
    without being tested here (the equivalence step-down starts at every comparison, the
    ones already decided better or worse included): they enter as p = 1, so each adjusted
    p is at most alpha exactly when the step-down decides it."""
    from statsmodels.stats.multitest import multipletests

    p_values = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p_values, math.nan)
    finite = ~np.isnan(p_values)
    if finite.any():
        untested = max(0, (family_size or 0) - int(finite.sum()))
        # multipletests calls gc.collect() each time: 0.4 s over torch's objects. Frozen,
        # they are not scanned; the collection then has next to nothing to look at.
        gc.freeze()
        try:
            padded = np.concatenate([p_values[finite], np.ones(untested)])
            adjusted[finite] = multipletests(padded, method="holm")[1][: int(finite.sum())]
        finally:
            gc.unfreeze()
    return adjusted


def probability_of_improvement(diffs, higher_is_better: bool = True, *, wins: int = 0, losses: int = 0, ties: int = 0,
                               confidence: float = 0.95) -> dict:
    """P(candidate beats baseline) over paired seeds: the share of seeds on which the
    candidate is better (a tie counts half), with its Clopper-Pearson (exact binomial)
    interval. ``wins``, ``losses`` and ``ties`` add seeds without a difference: a seed
    on which only the baseline's run failed is a win, only the candidate's a loss, both a
    tie. The paired form of the probability of improvement that rliable (Agarwal et al.,
    NeurIPS 2021) and Bouthillier et al. (MLSys 2021) report next to the mean.

    Clopper-Pearson covers at least its confidence for every true P and any number of
    seeds (a percentile bootstrap over 3 seeds covered 0.27 at P = 0.9); ties enter as half
    a success, so the bounds take a fractional count (the regularised incomplete beta
    accepts it)."""
    diffs = np.asarray(diffs, dtype=float)
    signed = diffs if higher_is_better else -diffs
    n = len(diffs) + wins + losses + ties
    if n == 0:
        return {"p_improve": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    successes = float(np.sum(signed > 0) + 0.5 * np.sum(signed == 0)) + wins + 0.5 * ties
    low, high = clopper_pearson(successes, n, confidence)
    return {"p_improve": successes / n, "ci_low": low, "ci_high": high}


def clopper_pearson(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a binomial proportion, from the beta
    quantiles (the same bounds as statsmodels' ``proportion_confint(method="beta")``)."""
    tail = (1 - confidence) / 2
    low = 0.0 if successes <= 0 else float(special.betaincinv(successes, n - successes + 1, tail))
    high = 1.0 if successes >= n else float(special.betaincinv(successes + 1, n - successes, 1 - tail))
    return low, high


def resample_weights(n_images: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(resamples, n_images) counts: how often each image is drawn in each bootstrap
    resample. Fixed by ``n_images`` and ``seed``, so every run of a suite draws the same
    resamples and their replicates pair up across seeds and variants."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(resamples, n_images))
    offsets = np.arange(resamples)[:, None] * n_images
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n_images).reshape(resamples, n_images).astype(float)


def image_bootstrap(baseline: dict, candidate: dict, seeds) -> dict:
    """The paired bootstrap over validation images of the *same* Δ the seed test tests:
    the mean over ``seeds`` of ``candidate - baseline`` in the dataset-level metric. Each
    argument maps seed -> that run's replicates (the metric recomputed on each of the
    shared image resamples, stored in the record), so the resampled Δ is
    ``mean_s(candidate_s[b] - baseline_s[b])``. Returns the 95% percentile interval and a
    two-sided p-value read off the replicates."""
    result = {"ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    pairs = [(np.asarray(baseline[s], float), np.asarray(candidate[s], float)) for s in seeds if s in baseline and s in candidate]
    if not pairs or len({len(b) for pair in pairs for b in pair}) != 1:
        return result
    deltas = np.mean([c - b for b, c in pairs], axis=0)
    deltas = deltas[~np.isnan(deltas)]
    if len(deltas) < 2:
        return result
    low, high = np.percentile(deltas, [2.5, 97.5])
    tail = min(np.mean(deltas <= 0), np.mean(deltas >= 0))
    if np.ptp(deltas) == 0:
        tail = 0.5 if deltas[0] == 0 else 0.0
    return {"ci_low": float(low), "ci_high": float(high), "p_value": float(min(1.0, max(2 * tail, 1 / (len(deltas) + 1))))}


def _t_tail(t: float, df: int) -> float:
    """P(T >= t) for Student's t with ``df`` degrees of freedom (scipy's ``stdtr``)."""
    return float(special.stdtr(df, -t))


def _number(value) -> float:
    return math.nan if value is None else float(value)
