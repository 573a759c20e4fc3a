"""Where a report's numbers come from, said at its top: when the runs ran, with which
segbench (and commit), the decision's settings and where its margin came from, and every
``--set`` override."""

from __future__ import annotations

import tomllib

from .. import __version__
from ..schema import ALPHA, CORRECTIONS, DEFAULT_MARGIN  # [stats] defaults, declared with the suite schema


def header_lines(records: list, meta: dict) -> list:
    variants = len({r["variant_id"] for r in records})
    seeds = len({r["seed"] for r in records})
    lines = [f"{len(records)} run(s): {variants} variant(s) x {seeds} seed(s), primary metric {meta['primary']}"]
    started = sorted(r["started_at"] for r in records if isinstance(r.get("started_at"), str))
    finished = sorted(r["finished_at"] for r in records if isinstance(r.get("finished_at"), str))
    if started and finished:
        lines.append(f"ran from {_moment(started[0])} to {_moment(finished[-1])}")
    lines.append("with " + ", ".join(sorted(_segbench_versions(records))))
    lines.append(decision_line(meta))
    overrides = meta.get("overrides") or []
    lines.append("overrides: " + (" ".join(f"--set {item}" for item in overrides) if overrides else "none (the suite file as it is)"))
    return lines


def _moment(stamp: str) -> str:
    """``2026-11-29T10:02:31.123+00:00`` as ``2026-11-29 10:02 UTC``."""
    text = stamp.replace("T", " ")
    return text[:16] + (" UTC" if stamp.endswith(("+00:00", "Z")) else "")


def _segbench_versions(records) -> set:
    found = set()
    for record in records:
        version = (record.get("versions") or {}).get("segbench") or __version__
        commit = (record.get("environment") or {}).get("segbench_commit")
        found.add(f"segbench {version}" + (f" (commit {commit[:10]})" if isinstance(commit, str) and commit else ""))
    return found or {f"segbench {__version__}"}


def decision_line(meta: dict) -> str:
    """The decision's settings, and where the primary metric's margin was set: it must be
    chosen before the results, so the report says whose choice it was."""
    stats, primary = meta.get("stats") or {}, meta["primary"]
    margins = stats.get("margins") or {}
    margin = margins.get(primary, stats.get("margin", DEFAULT_MARGIN))
    correction = "Holm" if stats.get("correction", CORRECTIONS[0]) == "holm" else "no correction"
    return (f"decided at alpha {stats.get('alpha', ALPHA):g} ({correction}), equivalence margin ±{margin:g} "
            f"for {primary}: {margin_source(meta)}")


def margin_source(meta: dict) -> str:
    primary = meta["primary"]
    if any(str(item).startswith(("stats.margin", "stats.margins")) for item in meta.get("overrides") or []):
        return "set on the command line (--set)"
    try:
        written = (tomllib.loads(meta.get("text") or "").get("stats") or {}).get("margin")
    except tomllib.TOMLDecodeError:
        written = None
    if isinstance(written, dict) and primary in written:
        return f"the suite's [stats] margin.{primary}"
    if isinstance(written, (int, float)):
        return "the suite's [stats] margin"
    return "segbench's default (the suite sets none)"
