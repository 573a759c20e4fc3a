"""What an executor calls to produce a run's record: in this process
(:func:`run_in_process`), or in another one, where the suite is loaded again from its
``suite.source`` (:func:`run_task`). Either way the run is isolated: whatever ends it ends
in its failed record."""

from __future__ import annotations

import json

from ..errors import SegbenchError
from ..execute import execute, failed_record
from ..plugins import load_catalogue
from ..suite import load_suite_source

_suites: dict = {}  # per worker process: each suite is loaded once


def load_source(source: dict):
    """The suite as the driver loaded it, from ``source`` (once per process): its text, and
    its local plugin files by content (``plugin_files``), so that neither need exist here."""
    key = json.dumps(source, sort_keys=True, default=str)
    if key not in _suites:
        _suites[key] = load_suite_source(source, load_catalogue)
    return _suites[key]


def find_run(source: dict, variant_id: str):
    """The suite loaded from ``source`` and its variant ``variant_id``."""
    suite = load_source(source)
    variant = next((variant for variant in suite.variants if variant.id == variant_id), None)
    if variant is None:
        raise SegbenchError(f"suite {source['path']} has no variant {variant_id} here: the worker loaded another suite than "
                            "the driver (a plugin whose code differs between the machines changes the variant ids)")
    return suite, variant


def run_in_process(suite, variant, seed: int, cache_dir, on_epoch=None) -> dict:
    """The record of one run of ``suite`` in this process; ``on_epoch`` (or None) is called
    after each epoch, for a progress bar."""
    return execute(suite, variant, seed, cache_dir, on_epoch)


def failed_run(suite, variant, seed: int, error: dict, started: float) -> dict:
    """The failed record of a run that could not write its own (its process died, it was
    lost): ``error`` has ``type`` and ``message`` (and maybe ``hint``); ``started`` is the
    ``time.perf_counter()`` at which it was handed out."""
    return failed_record(suite, variant, seed, error, started)


def run_task(source: dict, variant_id: str, seed: int, cache_dir: str) -> dict:
    """The record of one run, computed wherever this function is called."""
    suite, variant = find_run(source, variant_id)
    return execute(suite, variant, seed, cache_dir)
