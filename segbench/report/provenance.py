"""Where a report's numbers come from, said at its top: when the runs ran, with which
segbench (and commit), and every ``--set`` override."""

from __future__ import annotations

from .. import __version__


def header_lines(records: list, meta: dict) -> list:
    variants = len({r["variant_id"] for r in records})
    seeds = len({r["seed"] for r in records})
    lines = [f"{len(records)} run(s): {variants} variant(s) x {seeds} seed(s), primary metric {meta['primary']}"]
    started = sorted(r["started_at"] for r in records if isinstance(r.get("started_at"), str))
    finished = sorted(r["finished_at"] for r in records if isinstance(r.get("finished_at"), str))
    if started and finished:
        lines.append(f"ran from {_moment(started[0])} to {_moment(finished[-1])}")
    lines.append("with " + ", ".join(sorted(_segbench_versions(records))))
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
