"""The Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

from .components import KINDS, Catalogue
from .errors import SegbenchError
from .format import plural
from .plugins import load_catalogue
from .runner import SuiteOutcome, prepare, run_prepared


def run_suite(path, output="results", plugins=(), overrides=None, rerun=False, fail_fast=False, quiet=True, cache_dir=None):
    """Run every variant x seed of the suite at ``path``; returns a DataFrame of runs.

    ``overrides`` maps dotted keys to values applied on top of the file, e.g.
    ``{"train.epochs": 1}``.
    """
    return run(path, output, plugins, overrides, rerun, fail_fast, quiet, cache_dir).report["runs"]


def run(path, output="results", plugins=(), overrides=None, rerun=False, fail_fast=False, quiet=False, cache_dir=None) -> SuiteOutcome:
    suite = prepare(path, plugins, overrides, cache_dir)
    return run_prepared(suite, output, rerun=rerun, fail_fast=fail_fast, quiet=quiet, cache_dir=cache_dir)


def list_components(kind=None, plugins=()) -> list:
    """Registered components, optionally of one kind (``upsampler`` or ``upsamplers``)."""
    return load_catalogue(plugins).all(normalize_kind(kind) if kind else None)


def normalize_kind(kind: str) -> str:
    singular = {plural(k): k for k in KINDS}
    kind = singular.get(kind, kind)
    if kind not in KINDS:
        raise SegbenchError(f"unknown component kind {kind!r}; valid: {', '.join(KINDS)}")
    return kind


__all__ = ["run_suite", "run", "list_components", "prepare", "Catalogue"]
