"""Every comparison with the baseline ends in one of these outcomes:

- **better** / **worse**: the paired t-test over seeds is significant after the
  multiplicity correction (Holm over the suite's comparisons), in the metric's direction;
- **equivalent**: the paired two one-sided tests (TOST) put the difference inside
  ``±margin``, after the same correction;
- **inconclusive**: neither; it comes with its minimum detectable effect;
- **degenerate**: a run collapsed or the suite has nothing to compare
  (:mod:`.degenerate`); no statistic is trusted;
- **unstable**: a run of the candidate failed (a diverged, non-finite training loss among
  the causes) on a seed the comparison looked at. Failing is evidence against a variant:
  it is never better or equivalent on its surviving seeds, and P(better) counts the
  failed seed as a loss. A candidate the surviving seeds show *worse* stays worse.

With adaptive seeds the comparisons are looked at after every round of seeds. Each look
tests at the threshold of a Lan-DeMets alpha-spending boundary calibrated for paired
t-tests (:mod:`.design`), and Holm's correction recycles the alpha of a rejected
comparison to the others, as in the graphical approach for group-sequential trials
(Maurer & Bretz 2013, "Multiple testing in group sequential trials using graphical
approaches", Stat. Biopharm. Res. 5:311). A fixed list of seeds is the one-look case,
where this is exactly Holm's procedure.

:func:`judge_family` is a pure function of the per-seed values, so the runner (deciding
which seeds to add), the report and the simulations that validate the rules all replay
the same looks and reach the same outcomes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .design import SeedDesign, StatsSettings
from .numbers import NOT_AVAILABLE, interval, number, p_text
from .power import minimum_detectable_effect
from .statistics import (
    difference_test,
    equivalence_test,
    holm,
    probability_of_improvement,
    t_interval,
)

BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = "better", "worse", "equivalent", "inconclusive"
DEGENERATE = "degenerate"  # a side collapsed (see segbench.degenerate): no statistics can vouch for it
UNSTABLE = "unstable"  # a run of the candidate failed on a seed looked at: it counts against the candidate
OUTCOMES = (BETTER, WORSE, EQUIVALENT, INCONCLUSIVE, DEGENERATE, UNSTABLE)
BASELINE = "baseline"


@dataclass
class Judgement:
    """One comparison's outcome and the numbers behind it, as of its last look."""

    outcome: str = INCONCLUSIVE
    margin: float = math.nan
    n: int = 0  # paired seeds behind the numbers
    diff: float = math.nan  # mean over paired seeds of candidate - baseline
    ci_low: float = math.nan  # 95% t interval of diff
    ci_high: float = math.nan
    sd: float = math.nan  # spread of the paired differences
    p_value: float = math.nan  # two-sided paired t-test, raw
    p_adjusted: float = math.nan
    level: float = math.nan  # the p threshold it last faced (alpha after correction and spending)
    p_equivalence: float = math.nan  # TOST, raw
    p_equivalence_adjusted: float = math.nan
    equivalence_level: float = math.nan
    equivalence_low: float = math.nan  # the (1 - 2 level) interval TOST checks against the margin
    equivalence_high: float = math.nan
    mde: float = math.nan  # minimum detectable effect (inconclusive only)
    p_improve: float = math.nan  # P(candidate beats baseline) over paired seeds
    p_improve_low: float = math.nan
    p_improve_high: float = math.nan
    failed_seeds: list = field(default_factory=list)  # seeds looked at on which the candidate's run failed
    baseline_failed_seeds: list = field(default_factory=list)  # ... on which the baseline's run failed (either side may have)
    attempted: int = 0  # seeds looked at that both sides attempted (finished or failed)
    difference_rejected: bool = False  # the difference test decided it (better or worse, before any unstable mark)
    look: int = -1  # index of the last look it was tested at
    looks: int = 1
    state: str = ""  # why it stopped, or what it waits for
    next_seeds: int | None = None  # seeds it needs for its next look (None: it stopped)
    diffs: list = field(default_factory=list, repr=False)
    paired_seeds: list = field(default_factory=list, repr=False)  # the seeds behind diffs

    @property
    def decided(self) -> bool:
        return self.outcome != INCONCLUSIVE


def judge_family(baseline: dict, candidates: dict, *, higher_is_better: bool, margin: float, design: SeedDesign,
                 settings: StatsSettings, describe: bool = True) -> dict:
    """Judge every candidate against the baseline on one metric.

    ``baseline`` and each ``candidates[id]`` map seed -> value, with None for a run that
    failed (a key present means the run was attempted). Returns ``{id: Judgement}``.
    ``describe=False`` skips the numbers that only describe an outcome (adjusted p, the
    minimum detectable effect, P(improvement), the equivalence interval); the outcomes and
    the seeds wanted are the same, and simulations run faster.
    """
    judgements = {key: Judgement(margin=margin, looks=len(design.looks)) for key in candidates}
    open_ids = list(candidates)
    remaining = {"difference": len(candidates), "equivalence": len(candidates)}  # hypotheses not yet rejected
    for look in range(len(design.looks)):
        seeds = design.seeds_at(look)
        ready = [key for key in open_ids if not design.adaptive or _attempted(seeds, baseline, candidates[key])]
        for key in open_ids:
            if key not in ready:
                judgements[key].next_seeds = design.looks[look]
                judgements[key].state = f"waiting for the runs of {design.looks[look]} seeds"
        open_ids = ready
        if not open_ids:
            break
        _judge_look(judgements, open_ids, baseline, candidates, seeds, look, design, settings, higher_is_better, remaining)
        open_ids = [key for key in open_ids if judgements[key].next_seeds is not None]
    if describe:
        _describe(judgements, design, settings, higher_is_better)
    return judgements


def _judge_look(judgements, ids, baseline, candidates, seeds, look, design, settings, higher_is_better, remaining):
    for key in ids:
        _test(judgements[key], baseline, candidates[key], seeds, look, higher_is_better)
    _decide(judgements, ids, settings, higher_is_better, remaining, lambda level, sides: design.threshold(level, look, sides))
    _mark_unstable(judgements[key] for key in ids)
    last = look == len(design.looks) - 1
    for key in ids:
        judgement = judgements[key]
        if judgement.decided or last:
            judgement.next_seeds = None
            judgement.state = _stop_reason(judgement, design, look)
        else:
            judgement.next_seeds = design.looks[look + 1]
            judgement.state = f"open after {design.looks[look]} seeds"


def decide_family(judgements: dict, settings: StatsSettings, higher_is_better: bool, adjust: bool = True) -> dict:
    """The outcome of each of a family of comparisons already tested (each judgement's
    ``diff``, ``p_value`` and ``p_equivalence`` set), looked at once: the rule every
    comparison of segbench is decided by, the report's, ``compare``'s and the gate's.
    Sets each judgement's outcome, the levels it faced and (``adjust``) its adjusted
    p-values, which need statsmodels (and pandas): the gate, which shows raw p, skips them."""
    ids = list(judgements)
    remaining = {"difference": len(ids), "equivalence": len(ids)}
    _decide(judgements, ids, settings, higher_is_better, remaining, lambda level, sides: level)
    _mark_unstable(judgements.values())
    if adjust:
        _adjust(judgements, SeedDesign.fixed(()), settings)
    return judgements


def _decide(judgements, ids, settings, higher_is_better, remaining, threshold):
    """Holm's step-down (or none) on the difference tests; the rest on the equivalence tests."""
    rejected = _step_down(ids, judgements, "p_value", "level", remaining, "difference", lambda level: threshold(level, 2), settings)
    undecided = [key for key in ids if key not in rejected]
    equivalent = _step_down(undecided, judgements, "p_equivalence", "equivalence_level", remaining, "equivalence",
                            lambda level: threshold(level, 1), settings)
    for key in ids:
        judgement = judgements[key]
        judgement.difference_rejected = key in rejected
        if key in rejected:
            improved = judgement.diff > 0 if higher_is_better else judgement.diff < 0
            judgement.outcome = BETTER if improved else WORSE
        elif key in equivalent:
            judgement.outcome = EQUIVALENT


def _mark_unstable(judgements):
    """A candidate whose run failed on a seed looked at is unstable, unless the seeds it
    finished already show it worse. The step-down ran as if it were not: conservative, as
    its hypotheses keep their share of alpha."""
    for judgement in judgements:
        if judgement.failed_seeds and judgement.outcome != WORSE:
            judgement.outcome = UNSTABLE


def _test(judgement, baseline, candidate, seeds, look, higher_is_better):
    attempted = [s for s in seeds if s in baseline and s in candidate]
    judgement.failed_seeds = [s for s in attempted if not _finite(candidate[s])]
    judgement.baseline_failed_seeds = [s for s in attempted if not _finite(baseline[s])]
    judgement.attempted = len(attempted)
    paired = [s for s in seeds if _finite(baseline.get(s)) and _finite(candidate.get(s))]
    diffs = [candidate[s] - baseline[s] for s in paired]
    difference = difference_test(diffs)
    judgement.diffs, judgement.paired_seeds = diffs, paired
    judgement.look = look
    judgement.n = difference["n"]
    judgement.diff, judgement.sd = difference["diff"], difference["sd"]
    judgement.ci_low, judgement.ci_high = difference["ci_low"], difference["ci_high"]
    judgement.p_value = difference["p_value"]
    judgement.p_equivalence = equivalence_test(diffs, judgement.margin)["p_value"]


def _step_down(ids, judgements, p_field, level_field, remaining, family, threshold, settings) -> set:
    """Holm's step-down at one look: the smallest p faces alpha / (hypotheses not yet
    rejected), turned into this look's nominal threshold; each rejection passes its alpha
    on. With ``correction = "none"`` every p faces alpha itself. Returns the rejected ids
    and records in each judgement the threshold it faced."""
    holm_ = settings.correction == "holm"
    level = lambda: settings.alpha / max(remaining[family], 1) if holm_ else settings.alpha  # noqa: E731
    rejected, stopped = set(), False
    for key in sorted(ids, key=lambda k: _sort_p(getattr(judgements[k], p_field))):
        faced = threshold(level())
        setattr(judgements[key], level_field, faced)
        p = getattr(judgements[key], p_field)
        if stopped or not (p <= faced):
            stopped = stopped or holm_
            continue
        rejected.add(key)
        if holm_:
            remaining[family] -= 1
    return rejected


def _equivalence_interval(judgement):
    level = judgement.equivalence_level
    if judgement.n >= 2 and 0 < level < 0.5:
        judgement.equivalence_low, judgement.equivalence_high = t_interval(judgement.diffs, 1 - 2 * level)


def _stop_reason(judgement, design, look) -> str:
    seeds = design.looks[look]
    if not design.adaptive:
        return f"{judgement.n} paired seed(s)" if judgement.n else "no paired seeds"
    if judgement.decided:
        return f"stopped {judgement.outcome} at {seeds} seeds (look {look + 1} of {len(design.looks)})"
    return f"reached the maximum of {seeds} seeds"


def _describe(judgements, design, settings, higher_is_better):
    _adjust(judgements, design, settings)
    for judgement in judgements.values():
        _equivalence_interval(judgement)
        failed, baseline_failed = set(judgement.failed_seeds), set(judgement.baseline_failed_seeds)
        improvement = probability_of_improvement(judgement.diffs, higher_is_better, losses=len(failed - baseline_failed),
                                                 wins=len(baseline_failed - failed), ties=len(failed & baseline_failed))
        judgement.p_improve = improvement["p_improve"]
        judgement.p_improve_low, judgement.p_improve_high = improvement["ci_low"], improvement["ci_high"]
        if not judgement.decided:
            judgement.mde = minimum_detectable_effect(judgement.sd, judgement.n, judgement.level, settings.power)


def _adjust(judgements, design, settings):
    """Adjusted p-values. With a fixed list of seeds, Holm's adjusted p (statsmodels), so
    p adj. <= alpha exactly when decided. With adaptive seeds, the raw p scaled by the
    threshold it faced, p * alpha / threshold, which keeps that reading."""
    keys = list(judgements)
    for p_field, adjusted_field, level_field in (("p_value", "p_adjusted", "level"),
                                                 ("p_equivalence", "p_equivalence_adjusted", "equivalence_level")):
        raw = np.array([getattr(judgements[k], p_field) for k in keys], dtype=float)
        if design.adaptive:
            levels = np.array([getattr(judgements[k], level_field) for k in keys], dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                adjusted = np.minimum(1.0, raw * settings.alpha / levels)
        elif settings.correction != "holm":
            adjusted = raw
        elif p_field == "p_equivalence":  # the equivalence family tests only what the difference tests left open
            tested = np.array([not judgements[k].difference_rejected for k in keys])
            adjusted = holm(np.where(tested, raw, np.nan), family_size=len(keys))
        else:
            adjusted = holm(raw)
        for key, value in zip(keys, adjusted):
            setattr(judgements[key], adjusted_field, float(value))


def seeds_wanted(judgements: dict, design: SeedDesign) -> tuple[dict, int]:
    """How many seeds each candidate needs now (its next look, or what it stopped at) and
    how many the baseline needs (the most any candidate needs)."""
    if not design.adaptive:
        return {key: design.max_seeds for key in judgements}, design.max_seeds
    wanted = {}
    for key, judgement in judgements.items():
        if judgement.next_seeds is not None:
            wanted[key] = judgement.next_seeds
        else:
            wanted[key] = design.looks[judgement.look] if judgement.look >= 0 else design.min_seeds
    return wanted, max(wanted.values(), default=design.min_seeds)


def metric_values(records, metric: str) -> dict:
    """variant id -> {seed: the metric's value in that run, or None when the run failed
    (or lacks it)}: the input :func:`judge_family` replays."""
    values = {}
    for record in records:
        value = (record.get("metrics") or {}).get(metric) if record.get("status") == "ok" else None
        values.setdefault(record["variant_id"], {})[record["seed"]] = value
    return values


def _attempted(seeds, baseline, candidate) -> bool:
    return all(s in baseline and s in candidate for s in seeds)


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _sort_p(p) -> float:
    return p if p == p else math.inf  # NaN last


def outcome_text(outcome: str, *, margin=math.nan, low=math.nan, high=math.nan, level=math.nan, p_adjusted=math.nan,
                 mde=math.nan, reason: str = "") -> str:
    """An outcome and what decided it, as every output words it: the interval an equivalence
    rests on (its confidence is 1 - 2 x the level TOST faced), the adjusted p of a better or
    worse, the minimum detectable effect of an inconclusive one, the reason for a degenerate one."""
    if outcome == EQUIVALENT:
        return f"equivalent: {confidence(level)} CI {interval(low, high, NOT_AVAILABLE)} within ±{margin:g}"
    if outcome in (BETTER, WORSE):
        return f"{outcome}: p adj. {p_text(p_adjusted, NOT_AVAILABLE)}"
    if outcome == INCONCLUSIVE:
        if mde == math.inf:  # the sign flips cannot reach the level with these seeds
            return "inconclusive: MDE ∞ (too few seeds for the level)"
        return f"inconclusive: MDE {number(mde)}" if mde == mde else f"inconclusive: {reason}" if reason else INCONCLUSIVE
    if outcome in (DEGENERATE, UNSTABLE):
        return f"{outcome}: {reason}" if reason else outcome
    return outcome


def confidence(level) -> str:
    """The confidence of the (1 - 2 level) interval TOST checks against the margin, e.g. "90%"."""
    if not level == level or not 0 < level < 0.5:
        return "?"
    return f"{(1 - 2 * level) * 100:.3g}%"
