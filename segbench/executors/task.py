"""What a worker runs: load the suite again from its source, run one (variant, seed)."""

from __future__ import annotations

import json

_suites: dict = {}  # per worker process: each suite is loaded once


def find_run(source: dict, variant_id: str):
    """The suite loaded from ``source`` (once per process) and its variant ``variant_id``."""
    from ..plugins import load_catalogue
    from ..suite import load_suite

    key = json.dumps(source, sort_keys=True, default=str)
    if key not in _suites:
        _suites[key] = load_suite(source["path"], load_catalogue, extra_plugins=source["plugins"], overrides=source["overrides"])
    suite = _suites[key]
    return suite, suite.variant(variant_id)


def run_task(source: dict, variant_id: str, seed: int, cache_dir: str) -> dict:
    """The record of one run, computed wherever this function is called."""
    from ..runner import execute

    suite, variant = find_run(source, variant_id)
    return execute(suite, variant, seed, cache_dir)
