"""Statistics over seeds (scipy)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

ALPHA = 0.05


def mean_ci(values, confidence=0.95):
    """Mean and the half-width of its t confidence interval (NaN with fewer than 2 values)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) < 2:
        return float(values.mean()), math.nan
    sem = stats.sem(values)
    return float(values.mean()), float(sem * stats.t.ppf((1 + confidence) / 2, len(values) - 1))


def paired_comparison(baseline: dict, candidate: dict) -> dict:
    """Paired t-test of ``candidate - baseline`` over the seeds both have.

    Returns the mean difference, its 95% CI and the two-sided p-value. Identical
    differences on every seed have no spread: p is 1 when they are all 0, else 0.
    """
    seeds = sorted(set(baseline) & set(candidate))
    diffs = np.array([candidate[s] - baseline[s] for s in seeds], dtype=float)
    diffs = diffs[~np.isnan(diffs)]
    result = {"n_pairs": int(len(diffs)), "diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    if len(diffs) == 0:
        return result
    mean, half_width = mean_ci(diffs)
    result.update(diff=mean, ci_low=mean - half_width, ci_high=mean + half_width)
    if len(diffs) >= 2:
        if np.ptp(diffs) == 0:
            result["p_value"] = 1.0 if mean == 0 else 0.0
        else:
            result["p_value"] = float(stats.ttest_rel(diffs + 0.0, np.zeros_like(diffs)).pvalue)
    return result


def verdict(comparison: dict, higher_is_better=True, alpha=ALPHA) -> str:
    """better / worse / indistinguishable (or n/a when there is nothing to test)."""
    p = comparison["p_value"]
    if p is None or math.isnan(p):
        return "n/a"
    if p >= alpha or comparison["diff"] == 0:
        return "indistinguishable"
    improved = comparison["diff"] > 0 if higher_is_better else comparison["diff"] < 0
    return "better" if improved else "worse"
