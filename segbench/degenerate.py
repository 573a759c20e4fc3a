"""Runs that no statistic can vouch for, found in the records.

- A run **collapsed** when every foreground class scores 0 on a per-class metric (its
  suite's primary metric when that has per-class values, else the first that has): the
  model predicts background, or one class, everywhere. Classes a run's data never shows
  (undefined, null) are left out; a run without foreground values is not judged.
- A suite is **degenerate as a whole** when its primary metric takes one value in every
  finished run of every variant, or when every run of every variant scores each validation
  image the same and stores the same predicted label maps: there is nothing to compare.

A comparison involving such a run is neither better, worse nor equivalent but
``degenerate`` (segbench.verdicts), with the reason; the report says so at the top and the
gate fails the candidate. A candidate whose run *failed* (a non-finite training loss: it
diverged) is ``unstable`` instead: :func:`failure_reason` words why. Pure Python over
records: the gate loads it without pandas.
"""

from __future__ import annotations

import math

from .numbers import number
from .text import clipped, one_line


def collapsed_reason(record: dict, primary: str) -> str | None:
    """Why a finished run collapsed, or None."""
    if record.get("status") != "ok":
        return None
    per_class = record.get("per_class") or {}
    metric = primary if isinstance(per_class.get(primary), dict) else next((m for m, v in per_class.items() if isinstance(v, dict)), None)
    if metric is None:
        return None
    classes = list(record.get("classes") or per_class[metric])
    foreground = [per_class[metric].get(name) for name in classes[1:]]
    defined = [value for value in foreground if isinstance(value, (int, float)) and math.isfinite(value)]
    if defined and all(value == 0 for value in defined):
        return f"every foreground class scores {metric} 0"
    return None


def collapsed_runs(records: list, primary: str) -> dict:
    """variant id -> {seed: reason} of its collapsed runs."""
    found = {}
    for record in records:
        reason = collapsed_reason(record, primary)
        if reason:
            found.setdefault(record["variant_id"], {})[record["seed"]] = reason
    return found


def variant_reason(label: str, seeds: dict) -> str:
    """One variant's collapsed runs in words: "bilinear: every foreground class scores miou 0 in seeds 0, 2"."""
    reasons = sorted(set(seeds.values()))
    listed = ", ".join(str(seed) for seed in sorted(seeds))
    return f"{label}: {'; '.join(reasons)} in seed{'s' if len(seeds) > 1 else ''} {listed}"


def suite_reason(records: list, primary: str) -> str | None:
    """Why the suite as a whole has nothing to compare, or None."""
    done = [r for r in records if r.get("status") == "ok"]
    if len({r["variant_id"] for r in done}) < 2:
        return None
    values = [(r.get("metrics") or {}).get(primary) for r in done]
    if all(isinstance(v, (int, float)) for v in values) and len(set(values)) == 1:
        return f"{primary} is {number(values[0])} in every run of every variant"
    outputs = {_outputs(r, primary) for r in done}
    if None not in outputs and len(outputs) == 1:
        return f"every run of every variant predicts the same: the same {primary} on each validation image, the same label maps shown"
    return None


def _outputs(record, primary) -> tuple | None:
    """What a run's predictions look like to the records: its per-image scores and the label
    maps it stored for the report (None when it kept neither)."""
    per_image = (record.get("per_image") or {}).get(primary)
    predictions = (record.get("samples") or {}).get("predictions")
    if per_image is None or predictions is None:
        return None
    return tuple(per_image), predictions


DIVERGED = "NonFiniteLoss"  # segbench.engine.run's error when the training loss becomes NaN or infinite


def failure_reason(records: list, variant_id: str, seeds, attempted: int) -> str:
    """Why a comparison is unstable, from the failed runs' records: "seed 1 of 3 diverged
    (training loss became nan in epoch 3)" or "seeds 0, 2 of 5 failed (OutOfMemoryError)"."""
    seeds = sorted(seeds)
    errors = {r["seed"]: r.get("error") or {} for r in records if r["variant_id"] == variant_id and r["seed"] in seeds}
    kinds = {error.get("type") for error in errors.values()}
    verb = "diverged" if kinds == {DIVERGED} else "failed"
    first = errors.get(seeds[0], {}) if seeds else {}
    detail = first.get("message") if verb == "diverged" else first.get("type")
    listed = ", ".join(str(seed) for seed in seeds)
    return (f"seed{'s' if len(seeds) > 1 else ''} {listed} of {attempted} {verb}"
            + (f" ({one_line_text(detail)})" if detail else ""))


def one_line_text(text, limit: int = 80) -> str:
    """An error message as a short clause: one line, no control sequences, at most ``limit``."""
    return clipped(one_line(text).strip(), limit)
