"""Is a difference between two result sets outside the seed noise?

Two samples of per-seed values: paired by seed when both sides have the same seeds (the
rule of segbench.statistics.difference_test: the paired t-test and the exact sign flips,
the larger p), else Welch's unequal-variance t-test (scipy).
"""

from __future__ import annotations

import math

import numpy as np

from ..schema import ALPHA  # [stats] alpha's default, declared with the suite schema
from ..statistics import paired_comparison

MIN_SEEDS = 2  # a t-test needs a spread on each side


def seed_comparison(before: dict, after: dict) -> dict:
    """``after - before`` over per-seed values (``{seed: value}``): the difference of the
    means, its 95% CI, the two-sided p-value, the test used and the seeds on each side.
    ``p_value`` is NaN when a side has fewer than :data:`MIN_SEEDS` values."""
    before, after = _finite(before), _finite(after)
    if len(before) >= MIN_SEEDS and set(before) == set(after):
        result = paired_comparison(before, after)
        test, floor = "paired", 2 / 2 ** len(before)  # the exact sign flips' smallest two-sided p
    else:
        result = welch_comparison(list(before.values()), list(after.values()))
        test, floor = "Welch", 0.0
    return {"test": test, "n_before": len(before), "n_after": len(after), "p_floor": floor, **_pick(result)}


def welch_comparison(before, after) -> dict:
    before, after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    result = {"diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    if len(before) == 0 or len(after) == 0:
        return result
    diff = float(after.mean() - before.mean())
    result["diff"] = diff
    if len(before) < MIN_SEEDS or len(after) < MIN_SEEDS:
        return result
    if np.ptp(before) == 0 and np.ptp(after) == 0:
        # No spread on either side: the test is undefined, but any difference is exact.
        return {**result, "ci_low": diff, "ci_high": diff, "p_value": 1.0 if diff == 0 else 0.0}
    from scipy import stats  # heavy (scipy.stats doubles `segbench gate`'s start): only when the seeds differ

    test = stats.ttest_ind(after, before, equal_var=False)
    interval = test.confidence_interval(1 - ALPHA)
    return {**result, "ci_low": float(interval.low), "ci_high": float(interval.high), "p_value": float(test.pvalue)}


def mean_of(values: dict) -> float:
    """Mean of ``{seed: value}``; NaN when empty."""
    return float(np.mean(list(values.values()))) if values else math.nan


def judged(comparison: dict) -> bool:
    """Whether the seeds were enough to tell noise from a real change."""
    return not math.isnan(comparison["p_value"])


def _finite(values: dict) -> dict:
    return {seed: float(v) for seed, v in values.items() if v is not None and math.isfinite(v)}


def _pick(result: dict) -> dict:
    return {key: result[key] for key in ("diff", "ci_low", "ci_high", "p_value")}
