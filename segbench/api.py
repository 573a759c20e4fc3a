"""The Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

from .components import KINDS, Catalogue
from .errors import SegbenchError
from .format import plural
from .plugins import load_catalogue
from .data import tools as data_tools
from .data.show import draw_sample
from .data.stats import check_split, dataset_stats
from .executors import make_executor
from .runner import SuiteOutcome, check_suite, load_checked, prepare, resolve_cache_dir, run_prepared
from .store import ResultStore


def run_suite(path, output="results", plugins=(), overrides=None, rerun=False, fail_fast=False, quiet=True,
              cache_dir=None, executor="local", workers=1, ray_address=None, **setting_overrides):
    """Run every variant x seed of the suite at ``path``; returns a DataFrame of runs.

    Settings are overridden on top of the file either as ``overrides={"train.epochs": 1}``
    or as keywords with ``__`` for the dots: ``run_suite(path, train__epochs=1)``.
    ``executor`` is ``local``, ``process`` (with ``workers``) or ``ray`` (with
    ``ray_address``); results do not depend on it.
    """
    from .report import runs_frame

    overrides = {**(overrides or {}), **{key.replace("__", "."): value for key, value in setting_overrides.items()}}
    outcome = run(path, output, plugins, overrides, rerun, fail_fast, quiet, cache_dir, executor, workers, ray_address)
    return runs_frame(outcome.records)


def run(path, output="results", plugins=(), overrides=None, rerun=False, fail_fast=False, quiet=False, cache_dir=None,
        executor="local", workers=1, ray_address=None) -> SuiteOutcome:
    suite = load_checked(path, plugins, overrides)
    runner = make_executor(executor, workers, ray_address)
    store = ResultStore(output, suite.name)
    with store.lock():  # a second run of this suite is refused now, not after the preflight
        try:
            check_suite(suite, cache_dir, show_progress=not quiet, skip_if_finished_in=None if rerun else output)
        except SegbenchError:
            store.remove_if_new()
            raise
        return run_prepared(suite, output, rerun=rerun, fail_fast=fail_fast, quiet=quiet, cache_dir=cache_dir, executor=runner, store=store)


def rebuild_report(results_dir) -> dict:
    """Write the report of a results folder again from its records alone (nothing trains);
    returns what ``write_report`` returns. Damaged records and samples are named on stderr
    and left out; a damaged ``suite.json`` stops it (exit 2), as the report needs it."""
    from .report import write_report
    from .store import ResultStore, find_suite_dir

    suite_dir = find_suite_dir(results_dir)
    store = ResultStore(suite_dir.parent, suite_dir.name)
    meta = store.load_summary(required=True)
    records = store.records()
    if not records and store.damaged:
        raise SegbenchError(f"{suite_dir}: every run record is damaged ({len(store.damaged)} file(s)), so there is no report to draw; "
                            f"`segbench doctor {results_dir}` lists them, `segbench run` redoes their runs")
    return write_report(records, meta, store.report_dir, store.load_samples)


def doctor(results_dir):
    """What is damaged in a results folder, which runs ``segbench run`` would redo, and
    which are finished (see segbench.doctor); reads only, moves nothing."""
    from .doctor import diagnose

    return diagnose(results_dir)


def plan(path, results_dir="results", plugins=(), overrides=None, effect=None, power=None) -> dict:
    """Seeds each comparison of the suite at ``path`` needs, from the paired spread of the
    results in ``results_dir`` (see segbench.planning); nothing trains."""
    from pathlib import Path

    from .components import metric_direction
    from .planning import Pilot, check_request, plan_suite
    from .suite import load_suite

    check_request(1.0 if effect is None else effect, 0.5 if power is None else power)
    suite = load_suite(path, load_catalogue, extra_plugins=plugins, overrides=overrides)
    source = Path(results_dir)
    if (source / suite.name / "runs").is_dir():  # results/ may hold several suites: take this one's
        source = source / suite.name
    elif not source.exists():
        raise SegbenchError(f"results {source} do not exist; run the suite (or a pilot with a few seeds) first, or give --from "
                            "a results folder or a report's runs.csv")
    directions = {name: metric_direction(suite.catalogue.get("metric", name)) for name in suite.metric_names}
    return plan_suite(suite, Pilot.load(source), directions, effect, power)


def prepare_data(source, plugins=(), overrides=None, cache_dir=None, show_progress=True) -> str:
    """Decode the datasets of ``source`` (a suite file or a dataset name) into the sample
    cache; returns a line per dataset saying whether it was already there."""
    catalogue, sources = data_tools.resolve_sources(source, plugins, overrides)
    return data_tools.format_events(data_tools.prepare(catalogue, sources, resolve_cache_dir(cache_dir), show_progress))


def data_stats(source, plugins=(), overrides=None, cache_dir=None, split=None) -> list:
    """Statistics of each dataset of ``source``, as stable dicts (see segbench.data.stats)."""
    catalogue, sources = data_tools.resolve_sources(source, plugins, overrides)
    check_split(split)
    return [
        dataset_stats(data_tools.build(catalogue, s, resolve_cache_dir(cache_dir)), s.ref["name"], s.ref["params"], split)
        for s in sources
    ]


def show_sample(source, split, index, output, plugins=(), overrides=None, cache_dir=None):
    """Draw sample ``index`` of ``split`` (of the first dataset of ``source``) to ``output``."""
    catalogue, sources = data_tools.resolve_sources(source, plugins, overrides)
    data = data_tools.build(catalogue, sources[0], resolve_cache_dir(cache_dir))
    return draw_sample(data, split, index, output)


def export_data(source, fmt, directory, plugins=(), overrides=None, cache_dir=None) -> str:
    """Write the (first) dataset of ``source`` in COCO or VOC layout; returns the [dataset]
    table that reads it back."""
    from .data.export import export_dataset

    catalogue, sources = data_tools.resolve_sources(source, plugins, overrides)
    data = data_tools.build(catalogue, sources[0], resolve_cache_dir(cache_dir))
    return export_dataset(data, directory, fmt)


def list_components(kind=None, plugins=()) -> list:
    """Registered components, optionally of one kind (``upsampler`` or ``upsamplers``)."""
    return load_catalogue(plugins).all(normalize_kind(kind) if kind else None)


def compatibility_matrix(plugins=()) -> dict:
    """``{architecture: {upsampler: fits}}`` for the installed components."""
    return load_catalogue(plugins).compatibility()


def normalize_kind(kind: str) -> str:
    singular = {plural(k): k for k in KINDS}
    kind = singular.get(kind, kind)
    if kind not in KINDS:
        raise SegbenchError(f"unknown component kind {kind!r}; valid: {', '.join(KINDS)}")
    return kind


__all__ = [
    "run_suite", "run", "list_components", "prepare", "prepare_data", "data_stats", "show_sample",
    "export_data", "compatibility_matrix", "rebuild_report", "doctor", "plan", "Catalogue",
]
