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


BOOTSTRAP_RESAMPLES = 2000


def per_image_means(records: list, metric: str) -> np.ndarray | None:
    """One value per validation image: the metric's per-image value averaged over seeds
    (every seed scores the same images in the same order)."""
    series = [r["per_image"][metric] for r in records if r.get("status") == "ok" and metric in (r.get("per_image") or {})]
    if not series or len({len(s) for s in series}) != 1:
        return None
    return np.nanmean(np.array(series, dtype=float), axis=0) if len(series) > 1 else np.array(series[0], dtype=float)


def image_bootstrap(baseline: np.ndarray | None, candidate: np.ndarray | None, seed: int = 0) -> dict:
    """Paired bootstrap over validation images of ``candidate - baseline`` (per-image
    values, seeds averaged): the mean difference, its 95% percentile CI and a two-sided
    p-value read off the bootstrap distribution. It measures how sure the difference is
    on this validation set for these trained models; seed-to-seed training noise is the
    seed test's job."""
    result = {"n_images": 0, "diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    if baseline is None or candidate is None or len(baseline) != len(candidate):
        return result
    diffs = candidate - baseline
    diffs = diffs[~np.isnan(diffs)]
    result.update(n_images=int(len(diffs)), diff=float(diffs.mean()) if len(diffs) else math.nan)
    if len(diffs) < 2:
        return result
    if np.ptp(diffs) == 0:
        result.update(ci_low=result["diff"], ci_high=result["diff"], p_value=1.0 if result["diff"] == 0 else 0.0)
        return result
    boot = stats.bootstrap((diffs,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=0.95,
                           method="percentile", random_state=np.random.default_rng(seed))
    distribution = boot.bootstrap_distribution
    tail = min(np.mean(distribution <= 0), np.mean(distribution >= 0))
    result.update(ci_low=float(boot.confidence_interval.low), ci_high=float(boot.confidence_interval.high),
                  p_value=float(min(1.0, max(2 * tail, 1 / (BOOTSTRAP_RESAMPLES + 1)))))
    return result
