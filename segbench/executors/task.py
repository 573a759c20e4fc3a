"""What a worker runs: load the suite again from its source, run one (variant, seed)."""

from __future__ import annotations

import json

_suites: dict = {}  # per worker process: each suite is loaded once


def run_task(source: dict, variant_id: str, seed: int, cache_dir: str) -> dict:
    """The record of one run, computed wherever this function is called."""
    from ..plugins import load_catalogue
    from ..runner import execute
    from ..suite import load_suite

    key = json.dumps(source, sort_keys=True, default=str)
    if key not in _suites:
        _suites[key] = load_suite(source["path"], load_catalogue, extra_plugins=source["plugins"], overrides=source["overrides"])
    suite = _suites[key]
    variant = next(v for v in suite.variants if v.id == variant_id)
    return execute(suite, variant, seed, cache_dir)
