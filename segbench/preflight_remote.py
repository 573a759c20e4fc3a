"""The preflight on an executor's workers (``segbench run --preflight-on workers``).

By default the preflight of ``segbench run`` runs on the driver (segbench.runner
check_suite). On a cluster the driver may lack what the workers have (a GPU, the data
folders, $SEGBENCH_COCO), or be a small login node that should not build every model. With
``--preflight-on workers`` an executor that has the optional method

    preflight(suite, variant_ids, cache_dir) -> list of problem lines

runs it on one of its workers, with one of the functions below, which load the suite again
from ``suite.source`` (its text, absolute path, plugins and overrides) as a run's task does
(segbench.executors.task). The problems come back as plain text and are reported exactly as
the driver's: exit 2, the same lines. Each step keeps its ``[train] timeout_s``, and a
plugin that hangs or kills the process there is named (segbench.preflight_watch):

- :func:`serve_on_worker`: in a worker that has a pipe to the driver (the process
  executor); the driver follows its steps and holds the clock (``awaited_problems``).
- :func:`check_on_worker`: anywhere a function can be sent (a Ray task); the checks run in
  a child process of that worker, watched there, and the outcome comes back as data.
- :func:`check_here`: in this process (the local executor, whose worker is the driver).
"""

from __future__ import annotations

import functools

from .errors import SegbenchError
from .plugins import load_catalogue
from .preflight import suite_problems
from .preflight_watch import serve_checks, watched_problems
from .suite import load_suite_source

BAD_INPUT = "bad input"  # check_on_worker's key for a problem outside the checks (a step past its time, a death)


def pending_problems(variant_ids):
    """``problems_of(suite, cache_dir)`` for the variants ``variant_ids``: picklable, so
    that it can travel to a worker."""
    return functools.partial(suite_problems, only=frozenset(variant_ids))


def check_on_worker(source: dict, variant_ids, cache_dir: str) -> dict:
    """The preflight of ``variant_ids`` of the suite ``source``, run where this function
    is called, in a process of its own (a plugin that ends it is named, not the worker's
    end). Returns ``{"problems": [...]}``, or ``{"bad input": text}`` when the preflight
    could not finish (a step past ``timeout_s``, a death, a suite that does not load)."""
    try:
        suite = load_suite_source(source, load_catalogue)
        return {"problems": watched_problems(pending_problems(variant_ids), suite, cache_dir, apart=True)}
    except SegbenchError as exc:
        return {BAD_INPUT: str(exc)}


def preflight_problems(reply: dict) -> list:
    """The problem lines of :func:`check_on_worker`'s reply; SegbenchError (exit 2) when
    the preflight could not finish."""
    if BAD_INPUT in reply:
        raise SegbenchError(reply[BAD_INPUT])
    return list(reply["problems"])


def serve_on_worker(connection, source: dict, variant_ids, cache_dir: str) -> None:
    """In a worker with a pipe to the driver: the preflight of ``variant_ids``, each change
    of step sent as it happens, then its problems (the driver's side:
    segbench.preflight_watch.awaited_problems)."""
    serve_checks(connection, pending_problems(variant_ids), source, cache_dir, show_progress=False)


def check_here(suite, variant_ids, cache_dir) -> list:
    """The preflight of ``variant_ids`` in this process, as the driver's own."""
    return watched_problems(pending_problems(variant_ids), suite, cache_dir)
