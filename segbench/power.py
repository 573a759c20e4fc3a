"""The power of segbench's decision rule, as :mod:`segbench.statistics` applies it.

Every comparison is decided on the paired differences d (candidate - baseline, n seeds):

- *difference*: p = max(p_t, p_flip) <= level, p_t the two-sided paired t-test's and
  p_flip the exact two-sided sign-flip test's (random flips beyond
  :data:`statistics.EXACT_FLIPS_UP_TO` seeds), see :func:`statistics.difference_test`;
- *equivalence* within ±margin: the t-TOST p and the one-sided sign-flip p of d + margin
  ("greater") and of d - margin ("less") all <= level, see :func:`statistics.equivalence_test`.

Its power is not the t-test's: the sign flips cannot give less than 2 / 2^n (two-sided) or
1 / 2^n (one-sided), so 3 seeds decide nothing below 0.25, and with n seeds of normal
differences the sign flips also turn down some samples that the t-test accepts. This
module computes the rule's power for normal paired differences with mean ``effect`` and
standard deviation ``sd``.

How, and why this way
---------------------
Both tests are unchanged by scaling the differences, so the power depends on n, the level
and ``effect / sd`` alone. It is split in two parts:

1. **the t part, exact**: P(the t-test rejects) is a one-dimensional integral over the
   sample variance (V ~ chi-square, df = n - 1) of normal probabilities:
   E_V[Phi(effect sqrt(n)/sd - c sqrt(V/df))] for the non-central t, and the same with two
   bounds for t-TOST (Owen 1965). It is integrated by Gauss-Legendre on V's quantile scale
   (:data:`QUADRATURE_NODES` nodes; within 1e-4 of scipy wherever scipy answers, tested),
   t-TOST over the sample sd's density up to where its interval outgrows the margin.
   Not scipy's ``nct``, nor statsmodels' ``TTestPower`` on top of it: they return NaN for
   some (df, nc) (scipy issue 25470), and ``segbench plan`` asked for 6 seeds where 4 do.
2. **the sign-flip part, by Monte Carlo of the exact rule**: minus P(the t-test rejects
   but the sign flips do not), estimated over :func:`draws` (fixed seeds, so every call
   gives the same numbers). The estimate uses the same samples for every effect, margin
   and true difference: for one sample z of n standard normal differences, the rule's
   verdict on ``effect + z`` changes once, at a threshold, as the effect grows (the
   sign-flip count of a pattern with minus-set A is 1{mean_A(d) <= 0}, and
   mean_A(effect + z) grows with the effect). So each sample is reduced once, for each n
   and level, to its thresholds: the k-th smallest (and largest) mean over the subsets of
   its values, the subsets being every sign pattern for up to
   :data:`statistics.EXACT_FLIPS_UP_TO` seeds and the rule's own fixed random patterns
   beyond. The samples come in antithetic pairs (z, -z), whose order statistics are the
   same numbers read from the other end: half the work. Computing them costs 0.1 to 0.5 s
   per n and level (the first time only); then any power is a comparison of arrays
   (microseconds), the minimum detectable effect a bisection, and ``segbench plan`` on the
   shipped examples about 2 s. The rule's own :func:`statistics.difference_test` per
   sample would take seconds per number; each threshold is checked against it sample by
   sample (tests).

   The Monte Carlo error is that of the sign flips' share only (the t part is exact):
   sqrt(q (1 - q) / draws) for a share q, at most about 0.006 at the draws used (q is
   below 0.05 where the draws are fewest, beyond 14 seeds); the powers agree with the real
   rule applied sample by sample within 0.02-0.03 (tests, themselves +-0.01 to 0.015).

Beyond :data:`SIGN_PATTERNS_UP_TO` seeds (where each n would cost a second or more) the
sign-flip part has a large-sample model: the exact sign-flip test and the t-test become
the same test, so what is left is the noise of the rule's random flips around it: each of
its R random patterns is extreme with probability p_t, so the rule keeps a t rejection
with probability P(Binomial(R, p_t) <= the allowed count). That part does not vanish with
n (0.002 to 0.02 of power at 60 seeds, the smaller the level the more); the model is
within 0.007 of the simulation with sign patterns from 30 seeds on, 0.004 at levels from
0.002 (measured at 40 to 80 seeds; tested against the real rule at 33 seeds).

The power of the difference test is P(p <= level), a decision either way, as statsmodels
counts it: the opposite direction adds at most level / 2, and only for tiny effects.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

from . import statistics as _statistics
from .schema import POWER  # [stats] power's default, declared with the suite schema

QUADRATURE_NODES = 96
DRAWS = 10_000  # samples per n while a sample's sign patterns are few
MIN_DRAWS = 1_200  # ... never fewer, however many patterns (the rule's random flips beyond 14 seeds)
WORK = 2.5e7  # draws x patterns per n, the budget that sets the draws between the two
CHUNK = 4e6  # draws x patterns held in memory at once
SIGN_PATTERNS_UP_TO = 30  # beyond, the random flips' part by its large-sample model (see the docstring)
MODEL_DRAWS = 20_000
SEED = 20_260_611


# ----------------------------------------------------------------------------- the t part, exact


@functools.lru_cache(maxsize=1)
def _legendre() -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on (0, 1)."""
    x, w = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    return (x + 1) / 2, w / 2


@functools.lru_cache(maxsize=512)
def _quadrature(df: int) -> tuple[np.ndarray, np.ndarray]:
    """sqrt(V / df) at Gauss-Legendre nodes over V's quantiles, V ~ chi2(df), and weights."""
    u, w = _legendre()
    return np.sqrt(special.chdtri(df, 1 - u) / df), w


@functools.lru_cache(maxsize=512)
def _sd_range(df: int) -> tuple[float, float]:
    """Where the sample sd (of unit-sd normal values, df degrees of freedom) lies but for 1e-12."""
    return math.sqrt(special.chdtri(df, 1 - 1e-12) / df), math.sqrt(special.chdtri(df, 1e-12) / df)


def _sd_density(df: int, s: np.ndarray) -> np.ndarray:
    """The density of the sample sd s = sqrt(V / df), V ~ chi2(df)."""
    v = df * s * s
    return np.exp(np.log(2 * df * s) + (df / 2 - 1) * np.log(v) - v / 2 - df / 2 * math.log(2) - special.gammaln(df / 2))


def t_power(n: int, size: float, level: float) -> tuple[float, float]:
    """The two-sided paired t-test at ``level`` on n normal differences of mean/sd ``size``:
    P(it rejects with a positive mean), P(... with a negative mean)."""
    up, down = _t_power(n, np.array([size], dtype=float), level)
    return float(up[0]), float(down[0])


def _t_power(n: int, sizes: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`t_power` for an array of sizes: E_V[Phi(+-size sqrt(n) - c sqrt(V / df))]."""
    df = n - 1
    c = float(special.stdtrit(df, 1 - level / 2))
    scale, weights = _quadrature(df)
    lam = sizes[:, None] * math.sqrt(n)
    up = special.ndtr(lam - c * scale) @ weights
    down = special.ndtr(-lam - c * scale) @ weights
    return np.clip(up, 0.0, 1.0), np.clip(down, 0.0, 1.0)


def t_tost_power(n: int, margin: float, level: float, true_diff: float = 0.0) -> float:
    """P(the paired t-TOST at ``level`` shows equivalence within ±margin), margin and true
    difference in units of the sd: E_s[Phi(sqrt(n)(m - d) - c s) - Phi(-sqrt(n)(m + d) + c s)]
    over the sample sd s, where positive (Owen 1965)."""
    df = n - 1
    c = float(special.stdtrit(df, 1 - level))
    if c <= 0 or margin <= 0:
        return 0.0
    root = math.sqrt(n)
    low, high = _sd_range(df)
    high = min(high, root * margin / c)  # beyond it the t interval is wider than the margin
    if high <= low:
        return 0.0
    u, w = _legendre()
    scale = low + (high - low) * u
    weights = w * (high - low) * _sd_density(df, scale)
    inside = special.ndtr(root * (margin - true_diff) - c * scale) - special.ndtr(-root * (margin + true_diff) + c * scale)
    return min(max(float(np.dot(weights, np.maximum(inside, 0.0))), 0.0), 1.0)


# ----------------------------------------------------------------------------- the sign-flip part, by simulation


def draws(n: int) -> int:
    return int(min(DRAWS, max(MIN_DRAWS, WORK // _pattern_count(n))))


def _pattern_count(n: int) -> int:
    return 2 ** n if n <= _statistics.EXACT_FLIPS_UP_TO else _statistics.RANDOM_FLIPS


@functools.lru_cache(maxsize=64)
def _sample(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed samples of n standard normal differences, in antithetic pairs (z and -z):
    values, means, sds."""
    half = np.random.default_rng([SEED, n]).standard_normal((draws(n) // 2, n))
    z = np.concatenate([half, -half])
    return z, z.mean(axis=1), z.std(axis=1, ddof=1)


@functools.lru_cache(maxsize=16)
def _patterns(n: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Minus-set indicators (patterns x n) and their sizes: every subset for the exact test,
    the rule's own random sign patterns beyond (:func:`statistics._flips`)."""
    flips, exact = _statistics._flips(n)
    minus = (flips < 0).astype(np.float32)
    return minus, minus.sum(axis=1), exact


def _allowed(n: int, level: float) -> int:
    """The most sign patterns that may count as extreme (the observed one included) for the
    rule's sign-flip p to stay <= level: count / 2^n exactly, (count + 1) / (R + 1) with R
    random patterns. -1 when none may."""
    total = _pattern_count(n)
    if n <= _statistics.EXACT_FLIPS_UP_TO:
        return math.floor(level * total)
    count = math.floor(level * (total + 1)) - 1
    while count >= 0 and (count + 1) / (total + 1) > level:
        count -= 1
    while (count + 2) / (total + 1) <= level:
        count += 1
    return count


@functools.lru_cache(maxsize=256)
def _flip_thresholds(n: int, allowed: int):
    """Per sample z: the effect beyond which the sign flips reject two-sided, and the shifts
    a, b beyond which the one-sided flips of z + a ("greater") and of z - b ("less") reject,
    when at most ``allowed`` sign patterns may count as extreme. +inf where they never do.

    A pattern with minus-set A counts for z + a ("greater") when sum_A(z + a) <= 0, i.e.
    when mean_A(z) <= -a, and always when A is empty; for z - b ("less") when
    mean_A(z) >= b. Two-sided, with a positive sum, when the mean over A or over its
    complement is <= -effect, and always for A empty or everything. So each threshold is an
    order statistic of the patterns' means. With every pattern (the exact test) the
    two-sided count is twice the one-sided one, wherever the threshold can matter (a positive
    mean): it is the order statistic allowed // 2 of the same means."""
    z, _, _ = _sample(n)
    minus, sizes, exact = _patterns(n)
    count, size = len(z), len(minus)
    two, low, high = (np.full(count, math.inf) for _ in range(3))
    if allowed >= size:
        return -two, -low, -high
    half = count // 2  # the samples are antithetic: the second half is minus the first
    step = max(1, int(CHUNK // size))
    empty, full = sizes == 0, sizes == n
    inv_size = (1 / np.where(empty, 1, sizes)).astype(np.float32)
    inv_rest = (1 / np.where(full, 1, n - sizes)).astype(np.float32)
    if exact:  # every subset once (the empty one as -inf); two-sided, each partition is two patterns
        one_up, two_k, two_up = allowed - 1, allowed // 2, allowed // 2 - 1
    else:  # the empty minus set counts always; two-sided, also the full one
        one_up, two_k, two_up = allowed - int(empty.sum()), allowed, allowed - int(empty.sum() + full.sum())
    zs = z[:half].astype(np.float32)
    for start in range(0, half, step):
        block = zs[start:start + step]
        rows, mirror = slice(start, start + len(block)), slice(half + start, half + start + len(block))
        means = block @ minus.T  # the sum over each pattern's minus set
        if not exact:
            rest = block.sum(axis=1, keepdims=True) - means
            rest *= inv_rest  # the mean over the complement
            rest[:, full] = -math.inf
        means *= inv_size  # the mean over the minus set
        means[:, empty] = -math.inf  # counts as extreme whatever the values
        # low: the allowed-th smallest mean; high: the one_up-th largest, and for -z the other way round
        wanted = {allowed, size - 1 - one_up, size - 1 - two_up} | ({two_k} if exact else set())
        ordered = np.partition(means, sorted(k for k in wanted if 0 <= k < size), axis=1)
        low[rows] = -ordered[:, allowed]
        high[mirror] = low[rows]  # TOST is symmetric: -z's "less" threshold is z's "greater" one
        if one_up >= 0:
            high[rows] = ordered[:, size - 1 - one_up]
            low[mirror] = high[rows]
        if exact:
            two[rows] = -ordered[:, two_k]
            if two_up >= 0:
                two[mirror] = ordered[:, size - 1 - two_up]
            continue
        # random patterns: two-sided, a pattern counts when its minus set's mean or its
        # complement's is low enough (only one can be, where the sum is positive): order
        # statistics of the two arrays together, from the few smallest (largest) of each
        others = np.partition(rest, sorted({k for k in (allowed, size - 1 - two_up) if 0 <= k < size}), axis=1)
        smallest = np.concatenate([ordered[:, :allowed + 1], others[:, :allowed + 1]], axis=1)
        two[rows] = -np.partition(smallest, allowed, axis=1)[:, allowed]
        if two_up >= 0:
            largest = np.concatenate([ordered[:, size - 1 - two_up:], others[:, size - 1 - two_up:]], axis=1)
            two[mirror] = np.partition(largest, two_up + 1, axis=1)[:, two_up + 1]
        del rest
    return two, low, high


@functools.lru_cache(maxsize=64)
def _model_sample(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed draws of sqrt(n) x the mean and of the sd of n standard normal differences."""
    rng = np.random.default_rng([SEED, n, 1])
    return rng.standard_normal(MODEL_DRAWS), np.sqrt(rng.chisquare(n - 1, MODEL_DRAWS) / (n - 1))


def _lost(n: int, level: float, t: np.ndarray, sides: int) -> np.ndarray:
    """For t statistics the t-test rejects at ``level``: P(the random flips' p > level) when
    each of the R random patterns is extreme with probability p_t (``sides``-sided):
    P(Binomial(R, p_t) > the allowed count). Far beyond the critical value (p_t < level / 50)
    that is below 1e-9 and taken as 0."""
    lost = np.zeros_like(t)
    near = t < special.stdtrit(n - 1, 1 - level / 50 / sides)
    p = sides * special.stdtr(n - 1, -t[near])
    lost[near] = special.bdtrc(_allowed(n, level), _statistics.RANDOM_FLIPS, np.clip(p, 0.0, 1.0))
    return lost


def _model_difference_penalty(n: int, sizes: np.ndarray, level: float) -> np.ndarray:
    """Many seeds: the exact sign flips' p is the t-test's (they are asymptotically the same
    test); what is left is the random flips' own noise around it."""
    z, s = _model_sample(n)
    t = np.abs(sizes[:, None] * math.sqrt(n) + z) / s
    rejects = t >= special.stdtrit(n - 1, 1 - level / 2)
    lost = np.zeros_like(t)
    lost[rejects] = _lost(n, level, t[rejects], 2)
    return lost.sum(axis=1) / len(z)


def _model_equivalence_penalty(n: int, margin: float, true_diff: float, level: float) -> float:
    z, s = _model_sample(n)
    root = math.sqrt(n)
    above, below = (root * (margin + true_diff) + z) / s, (root * (margin - true_diff) - z) / s
    c = special.stdtrit(n - 1, 1 - level)
    shows = (above >= c) & (below >= c)
    kept = (1 - _lost(n, level, above[shows], 1)) * (1 - _lost(n, level, below[shows], 1))
    return float(np.sum(1 - kept)) / len(z)


@functools.lru_cache(maxsize=512)
def _difference_thresholds(n: int, level: float):
    """Per sample: the effect (in sd) from which the t-test rejects with a positive mean,
    and from which the rule does; sorted, for counting."""
    _, mean, sd = _sample(n)
    c = float(special.stdtrit(n - 1, 1 - level / 2))
    t_only = -mean + c * sd / math.sqrt(n)
    flip, _, _ = _flip_thresholds(n, _allowed(n, level))
    return np.sort(t_only), np.sort(np.maximum(t_only, flip))


@functools.lru_cache(maxsize=512)
def _equivalence_thresholds(n: int, level: float):
    """Per sample: the shifts a (of the lower bound) and b (of the upper) from which the
    t-TOST's one-sided tests reject, and from which the rule's do (t and sign flips)."""
    _, mean, sd = _sample(n)
    c = float(special.stdtrit(n - 1, 1 - level))
    half = c * sd / math.sqrt(n)
    t_low, t_high = -mean + half, mean + half
    _, low, high = _flip_thresholds(n, _allowed(n, level))
    return t_low, t_high, np.maximum(t_low, low), np.maximum(t_high, high)


def _feasible(n: int, level: float, sides: int) -> bool:
    """Whether the sign flips can reject at all with n seeds: the patterns that always count
    (the observed one; two-sided, its mirror too) must be few enough for the level."""
    return _allowed(n, level) >= _always(n, sides)


@functools.lru_cache(maxsize=256)
def _always(n: int, sides: int) -> int:
    """The sign patterns that count as extreme whatever the differences: the identity (and,
    two-sided, all signs flipped); with random flips, those of them that were drawn."""
    _, sizes, exact = _patterns(n)
    if exact:
        return sides
    return int(np.sum(sizes == 0)) + (int(np.sum(sizes == n)) if sides == 2 else 0)


# ----------------------------------------------------------------------------- the rule's power


def _size(effect: float, sd: float) -> float:
    return math.inf if sd == 0 and effect != 0 else 0.0 if sd == 0 else abs(effect) / sd


def difference_power(n: int, effect: float, sd: float, level: float) -> float:
    """P(the rule's difference test decides, p <= ``level``) with ``n`` seeds of normal paired
    differences of mean ``effect`` and standard deviation ``sd``. 0 when the sign flips
    cannot reach the level with n seeds (2 / 2^n > level) or with fewer than 2 seeds."""
    n = int(n)
    if n < 2 or not 0 < level < 1 or not math.isfinite(effect) or not (sd >= 0):
        return 0.0 if n < 2 or not 0 < level < 1 else math.nan
    if not _feasible(n, level, 2):
        return 0.0
    size = _size(effect, sd)
    if size == math.inf:
        return 1.0
    return _difference_power(n, size, float(level))


def _difference_power(n: int, size: float, level: float) -> float:
    return float(_difference_powers(n, np.array([size], dtype=float), level)[0])


def _difference_powers(n: int, sizes: np.ndarray, level: float) -> np.ndarray:
    """The rule's difference power at each of ``sizes`` (effect / sd, >= 0), the flips feasible."""
    up, down = _t_power(n, sizes, level)
    if n > SIGN_PATTERNS_UP_TO:
        penalty = _model_difference_penalty(n, sizes, level)
    else:
        t_only, rule = _difference_thresholds(n, level)
        penalty = _between(t_only, rule, sizes) + _between(t_only, rule, -sizes)
    return np.clip(up + down - penalty, 0.0, 1.0)


def _between(t_only: np.ndarray, rule: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The share of samples the t-test rejects at x and the rule does not (both sorted)."""
    return (np.searchsorted(t_only, x, side="right") - np.searchsorted(rule, x, side="right")) / len(t_only)


def equivalence_power(n: int, sd: float, margin: float, level: float, true_diff: float = 0.0) -> float:
    """P(the rule's TOST shows equivalence within ±``margin`` at ``level``) with ``n`` seeds of
    normal paired differences of mean ``true_diff`` and standard deviation ``sd``. 0 when the
    one-sided sign flips cannot reach the level (1 / 2^n > level)."""
    n = int(n)
    if n < 2 or not margin > 0 or not 0 < level < 1:
        return 0.0
    if not (sd >= 0) or not math.isfinite(true_diff):
        return math.nan
    if not _feasible(n, level, 1):
        return 0.0
    if sd == 0:
        return 1.0 if abs(true_diff) < margin else 0.0
    return _equivalence_power(n, margin / sd, true_diff / sd, float(level))


def _equivalence_power(n: int, margin: float, true_diff: float, level: float) -> float:
    exact = t_tost_power(n, margin, level, true_diff)
    if n > SIGN_PATTERNS_UP_TO:
        return min(max(exact - _model_equivalence_penalty(n, margin, true_diff, level), 0.0), 1.0)
    t_low, t_high, low, high = _equivalence_thresholds(n, level)
    lower, upper = margin + true_diff, margin - true_diff
    t_shows = (t_low <= lower) & (t_high <= upper)
    rule_shows = (low <= lower) & (high <= upper)
    penalty = float(np.count_nonzero(t_shows & ~rule_shows)) / len(t_low)
    return min(max(exact - penalty, 0.0), 1.0)


# ----------------------------------------------------------------------------- what it takes


def minimum_detectable_effect(sd: float, n: int, level: float, power: float = POWER) -> float:
    """The smallest true difference that the rule's difference test over ``n`` seeds at
    ``level`` detects with probability ``power``, given the paired spread ``sd``. NaN with
    fewer than 2 seeds or no spread; **inf when no difference is detectable**: the sign
    flips cannot reach the level with n seeds (2 / 2^n > level, e.g. 3 seeds and any level
    below 0.25)."""
    if n is None or not n == n or int(n) < 2 or not (sd == sd and math.isfinite(sd)) or not 0 < level < 1:
        return math.nan
    n = int(n)
    if not _feasible(n, level, 2):
        return math.inf
    if sd == 0:
        return 0.0
    return _detectable_size(n, float(level), float(power)) * sd


@functools.lru_cache(maxsize=4096)
def _detectable_size(n: int, level: float, power: float) -> float:
    """The effect in sd with power ``power`` (bisection: the power grows with the effect)."""
    low, high = 0.0, 1.0
    while _difference_power(n, high, level) < power:
        low, high = high, high * 2
        if high > 1e6:
            return math.inf
    for _ in range(60):
        middle = (low + high) / 2
        if _difference_power(n, middle, level) >= power:
            high = middle
        else:
            low = middle
        if high - low <= 1e-6 * high:
            break
    return high


def seeds_to_detect(effect: float, sd: float, level: float, power: float = POWER, ceiling: int = 10_000) -> int | None:
    """The fewest paired seeds with which the rule's difference test at ``level`` detects a
    true difference ``effect`` with probability ``power`` (None: more than ``ceiling``)."""
    if not (sd >= 0) or not effect == effect or not 0 < level < 1:
        return None
    size = _size(effect, sd)
    if size == 0:
        return None
    first = fewest_seeds_to_decide(level, 2)
    if size == math.inf:
        return first if first <= ceiling else None
    # the t-test alone rejects at least as often as the rule: its n is a lower bound
    start = max(first, _fewest(lambda n: sum(t_power(n, size, level)) >= power, first, ceiling))
    return _first_from(lambda n: _difference_power(n, size, level) >= power, start, ceiling)


def seeds_to_show_equivalence(sd: float, margin: float, level: float, power: float = POWER, true_diff: float = 0.0,
                              ceiling: int = 10_000) -> int | None:
    """The fewest paired seeds with which the rule's TOST at ``level`` shows equivalence within
    ``margin`` with probability ``power`` when the true difference is ``true_diff`` (None:
    never, or more than ``ceiling``)."""
    if abs(true_diff) >= margin or not (sd >= 0) or not 0 < level < 1:
        return None
    first = fewest_seeds_to_decide(level, 1)
    if sd == 0:
        return first if first <= ceiling else None
    m, d = margin / sd, true_diff / sd
    start = max(first, _fewest(lambda n: t_tost_power(n, m, level, d) >= power, first, ceiling))
    return _first_from(lambda n: _equivalence_power(n, m, d, level) >= power, start, ceiling)


def fewest_seeds_to_decide(level: float, sides: int = 2) -> int:
    """The fewest seeds with which the sign flips can reach ``level`` at all."""
    n = 2
    while not _feasible(n, level, sides) and n <= 64:
        n += 1
    return n


def _fewest(reaches, start: int, ceiling: int) -> int:
    """The fewest n in [start, ceiling] for which the monotone ``reaches(n)`` holds
    (ceiling + 1 when none): doubling, then bisection."""
    if start > ceiling:
        return ceiling + 1
    if reaches(start):
        return start
    low, high = start, start
    while not reaches(high):
        low = high
        if high >= ceiling:
            return ceiling + 1
        high = min(ceiling, high * 2)
    while high - low > 1:
        middle = (low + high) // 2
        if reaches(middle):
            high = middle
        else:
            low = middle
    return high


def _first_from(reaches, start: int, ceiling: int) -> int | None:
    """The first n from ``start`` (the t-test's n, a lower bound) on for which
    ``reaches(n)``, None beyond ``ceiling``: one n at a time, as the rule rarely needs many
    seeds more than the t-test (and its power is monotone in n only up to the simulation's
    error); after :data:`WALK` of them, by doubling and bisection."""
    n = start
    while n <= min(ceiling, start + WALK - 1):
        if reaches(n):
            return n
        n += 1
    if n > ceiling:
        return None
    found = _fewest(reaches, n, ceiling)
    return found if found <= ceiling else None


WALK = 8


# ----------------------------------------------------------------------------- planning from a pilot


PILOT_NODES = 32


@functools.lru_cache(maxsize=64)
def _spread_nodes(df: int) -> tuple[np.ndarray, np.ndarray]:
    """sqrt(X / df) at Gauss-Legendre nodes over the quantiles of X ~ chi2(df), and weights:
    the true sd is the pilot's sd divided by it (see :func:`expected_difference_power`)."""
    x, w = np.polynomial.legendre.leggauss(PILOT_NODES)
    u = (x + 1) / 2
    return np.sqrt(special.chdtri(df, 1 - u) / df), w / 2


def expected_difference_power(n: int, effect: float, pilot_sd: float, pilot_df: int, level: float) -> float:
    """The rule's difference power averaged over what the true sd may be, given a pilot's sd
    from ``pilot_df`` degrees of freedom: sigma^2 = pilot_df s^2 / X, X ~ chi2(pilot_df) (the
    posterior of a normal variance under the reference prior 1/sigma^2; O'Hagan, Stevens &
    Campbell 2005, "Assurance in clinical trial design", Pharm. Stat. 4:187)."""
    n = int(n)
    if n < 2 or not _feasible(n, level, 2):
        return 0.0
    if pilot_sd == 0:
        return difference_power(n, effect, 0.0, level)
    scale, weights = _spread_nodes(int(pilot_df))
    return float(weights @ _difference_powers(n, abs(effect) / pilot_sd * scale, float(level)))


def expected_equivalence_power(n: int, pilot_sd: float, pilot_df: int, margin: float, level: float,
                               true_diff: float = 0.0) -> float:
    """The rule's TOST power averaged over the true sd as :func:`expected_difference_power` does."""
    n = int(n)
    if n < 2 or not margin > 0 or not _feasible(n, level, 1):
        return 0.0
    if pilot_sd == 0:
        return equivalence_power(n, 0.0, margin, level, true_diff)
    scale, weights = _spread_nodes(int(pilot_df))
    m, d = margin / pilot_sd, true_diff / pilot_sd
    return float(sum(w * _equivalence_power(n, m * k, d * k, float(level)) for k, w in zip(scale, weights)))


def seeds_to_detect_from_pilot(effect: float, pilot_sd: float, pilot_df: int, level: float, power: float = POWER,
                               ceiling: int = 10_000) -> int | None:
    """The fewest paired seeds whose power to detect ``effect``, averaged over the true sd
    given the pilot (:func:`expected_difference_power`), reaches ``power``."""
    if not (pilot_sd >= 0) or not effect or not 0 < level < 1:
        return None
    if pilot_sd == 0:
        return seeds_to_detect(effect, 0.0, level, power, ceiling)
    first = fewest_seeds_to_decide(level, 2)
    start = max(first, _fewest(lambda n: _expected_t(n, effect / pilot_sd, pilot_df, level) >= power, first, ceiling))
    return _first_from(lambda n: expected_difference_power(n, effect, pilot_sd, pilot_df, level) >= power, start, ceiling)


def seeds_to_show_equivalence_from_pilot(pilot_sd: float, pilot_df: int, margin: float, level: float, power: float = POWER,
                                         true_diff: float = 0.0, ceiling: int = 10_000) -> int | None:
    """The fewest paired seeds whose power to show equivalence within ``margin``, averaged
    over the true sd given the pilot, reaches ``power``."""
    if abs(true_diff) >= margin or not (pilot_sd >= 0) or not 0 < level < 1:
        return None
    if pilot_sd == 0:
        return seeds_to_show_equivalence(0.0, margin, level, power, true_diff, ceiling)
    first = fewest_seeds_to_decide(level, 1)
    scale, weights = _spread_nodes(int(pilot_df))
    m, d = margin / pilot_sd, true_diff / pilot_sd

    def t_only(n):
        return sum(w * t_tost_power(n, m * k, level, d * k) for k, w in zip(scale, weights)) >= power

    start = max(first, _fewest(t_only, first, ceiling))
    return _first_from(lambda n: expected_equivalence_power(n, pilot_sd, pilot_df, margin, level, true_diff) >= power,
                       start, ceiling)


def _expected_t(n: int, size: float, pilot_df: int, level: float) -> float:
    scale, weights = _spread_nodes(int(pilot_df))
    up, down = _t_power(n, size * scale, level)
    return float(weights @ (up + down))
