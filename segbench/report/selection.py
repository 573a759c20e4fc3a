"""Which variants a plot can show by name. Up to ``MANY_VARIANTS`` variants, every plot shows
every variant. Past it (a large suite), a plot that names variants shows the best
``SHOWN_EACH`` and the worst ``SHOWN_EACH`` by the mean of the primary metric, in its
direction, draws the rest without names (grey dots or lines) where it can, and says so in
its title and caption; every variant stays in the tables (CSV, Markdown, HTML)."""

from __future__ import annotations

import math
from dataclasses import dataclass

MANY_VARIANTS = 30  # up to this many variants, every plot names every variant
SHOWN_EACH = 10  # past it: the top and the bottom this many by the primary metric
LINES_EACH = 5  # the curves plot: the top and the bottom this many (more lines blur together)


@dataclass(frozen=True)
class Ranking:
    """``order``: every variant id in the report's order; ``ranked``: those with a mean of
    the primary metric, best first (ties in the report's order); ``labels``: id -> label."""

    order: tuple
    ranked: tuple
    labels: dict
    primary: str
    higher_is_better: bool

    def pick(self, each: int, limit: int = MANY_VARIANTS) -> Selection:
        """Every variant, in the report's order, when there are at most ``limit``; else the
        top ``each`` and the bottom ``each`` of the ranking."""
        if len(self.order) <= limit:
            return Selection(self, self.order, ())
        top = self.ranked[:each]
        return Selection(self, top, self.ranked[max(len(top), len(self.ranked) - each):])


@dataclass(frozen=True)
class Selection:
    """The variants a plot names: ``top`` (every variant when nothing is left out) and ``bottom``."""

    ranking: Ranking
    top: tuple
    bottom: tuple

    @property
    def shown(self) -> tuple:
        return self.top + self.bottom

    @property
    def partial(self) -> bool:
        return len(self.shown) < len(self.ranking.order)

    def label(self, variant_id) -> str:
        return str(self.ranking.labels.get(variant_id, variant_id))

    def caption(self, what: str = "variants") -> str | None:
        """What the plot leaves out, in words; None when it shows every variant."""
        if not self.partial:
            return None
        ranking = self.ranking
        direction = "higher" if ranking.higher_is_better else "lower"
        unranked = len(ranking.order) - len(ranking.ranked)
        missing = f"; {unranked} without a mean {ranking.primary} are not ranked" if unranked else ""
        return (f"showing {len(self.shown)} of {len(ranking.order)} {what}: the top {len(self.top)} and bottom "
                f"{len(self.bottom)} by mean {ranking.primary} ({direction} is better){missing}; every variant is in the tables")


def rank_variants(summary, order: list, primary: str, higher_is_better: bool) -> Ranking:
    """Rank the variants of ``summary`` (summary_frame) by the mean of ``primary``."""
    labels = dict(zip(summary["variant_id"], summary["variant"])) if len(summary) else {}
    column = f"{primary}_mean"
    means = dict(zip(summary["variant_id"], summary[column])) if column in summary else {}
    position = {variant_id: index for index, variant_id in enumerate(order)}
    valued = [v for v in order if _finite(means.get(v))]
    sign = -1.0 if higher_is_better else 1.0
    ranked = tuple(sorted(valued, key=lambda v: (sign * float(means[v]), position[v])))
    return Ranking(tuple(order), ranked, labels, primary, higher_is_better)


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
