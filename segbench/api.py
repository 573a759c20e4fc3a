"""The Python API; the CLI is a thin layer over these functions.

Importing it does not import torch, pandas or matplotlib: every ``segbench`` command
imports it, and those that only read results must start at once. A function that trains,
builds data or draws imports its heavy module when called (marked ``# heavy``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .components import KINDS, Catalogue, metric_direction
from .crash import is_interrupt
from .doctor import diagnose
from .errors import RunNotRecorded, SegbenchError
from .extensions import ReporterError, ReporterFailure, chosen_reporters
from .format import plural
from .layout import is_suite_folder
from .plugins import load_catalogue
from .store import ResultStore, find_suite_dir
from .stored_report import current_report
from .suite import Suite, load_suite


def run_suite(path, output="results", plugins=(), overrides=None, rerun=False, fail_fast=False, quiet=True,
              cache_dir=None, executor="local", workers=None, ray_address=None, executor_options=None, preflight_on="driver",
              **setting_overrides):
    """Run every variant x seed of the suite at ``path``; returns a DataFrame of runs.

    Settings are overridden on top of the file either as ``overrides={"train.epochs": 1}``
    or as keywords with ``__`` for the dots: ``run_suite(path, train__epochs=1)``.
    ``executor`` is ``local``, ``process`` (with ``workers``), ``ray`` (with
    ``ray_address``) or any installed executor, with its options in ``executor_options``
    (``{"workers": 2}``); results do not depend on it. ``preflight_on``: where the checks
    before training run, ``"driver"`` (this machine, the default) or ``"workers"`` (one of
    the executor's workers; local, process and ray can).
    """
    from .report import runs_frame  # heavy: pandas

    overrides = {**(overrides or {}), **{key.replace("__", "."): value for key, value in setting_overrides.items()}}
    outcome = run(path, output, plugins, overrides, rerun, fail_fast, quiet, cache_dir, executor, workers, ray_address, executor_options,
                  preflight_on)
    return runs_frame(outcome.records)


def run(path, output="results", plugins=(), overrides=None, rerun=False, fail_fast=False, quiet=False, cache_dir=None,
        executor="local", workers=None, ray_address=None, executor_options=None, preflight_on="driver"):
    """Run the suite at ``path`` with the executor called ``executor`` and its options
    (``executor_options``, by option name; ``workers`` and ``ray_address`` are the standard
    executors' options, kept as keywords). ``outcome.report["failures"]`` lists reporters that
    failed; the rest of the report and every record are written all the same. Returns the
    runner's SuiteOutcome. ``preflight_on``: where the checks before training run,
    ``"driver"`` (this machine) or ``"workers"`` (one of the executor's workers, for an
    executor with a ``preflight`` method: local, process and ray)."""
    from .runner import check_suite, load_checked, run_prepared  # heavy: torch; so are prepare and the data functions

    output, cache_dir = absolute(output), absolute(cache_dir)  # once: a plugin's os.chdir must not move them
    suite = load_checked(path, plugins, overrides)
    given = {**(executor_options or {}), **{k: v for k, v in (("workers", workers), ("ray_address", ray_address)) if v is not None}}
    runner = suite.catalogue.executor(executor).build(given)
    store = ResultStore(output, suite.name)
    with store.lock():  # a second run of this suite is refused now, not after the preflight
        try:
            check_suite(suite, cache_dir, show_progress=not quiet, skip_if_finished_in=None if rerun else output, executor=runner,
                        preflight_on=preflight_on, executor_name=executor)
        except SegbenchError:
            store.remove_if_new()
            raise
        try:
            return run_prepared(suite, output, rerun=rerun, fail_fast=fail_fast, quiet=quiet, cache_dir=cache_dir, executor=runner,
                                store=store, executor_name=executor)
        except (KeyboardInterrupt, RunNotRecorded) as stopped:  # the CLI says how many finished runs are kept
            stopped.finished_runs = count_finished(suite, store)
            raise


def absolute(path):
    """``path`` made absolute from the current directory (None stays None)."""
    return None if path is None else Path(path).absolute()


def count_finished(suite, store) -> int:
    """How many of the suite's runs have a finished record in ``store``."""
    quiet = ResultStore(store.root, suite.name, quiet=True)
    return sum(quiet.finished(variant.id, seed) for variant, seed in suite.runs())



def prepare(path, plugins=(), overrides=None, cache_dir=None, isolated=False) -> Suite:
    """The suite at ``path`` loaded and validated, its models and datasets built and tried
    on a tiny batch (the preflight); nothing trains. Every problem that is bad input is
    found here (``segbench validate``). ``isolated``: the preflight runs in a process of
    its own, so that a plugin that ends its process there is named (exit 2)."""
    from .runner import prepare as prepare_suite  # heavy

    return prepare_suite(path, plugins, overrides, cache_dir, apart=isolated)


def rebuild_report(results_dir, plugins=()) -> dict:
    """Write the report of a results folder again from its records alone (nothing trains)
    with the default reporters of the installed plugins and ``plugins`` (``-p``; ``no:NAME``
    leaves one out); returns what ``write_report`` returns. Damaged records and samples are
    named on stderr and left out; a damaged ``suite.json`` stops it (exit 2), as the report
    needs it."""
    store, meta, records = _stored_results(results_dir)
    return current_report(records, meta, store, load_catalogue(plugins).reporters, redraw=True)


def find_reporter(name, plugins=()):
    """The registered reporter ``name`` (segbench.extensions.Reporter); an unknown name is
    bad input, naming the valid ones."""
    return load_catalogue(plugins).reporter(name)


def run_reporter(name, results_dir, options=None, plugins=()):
    """Run the one reporter ``name`` (an exporter such as ``mlflow``, or a default one) on a
    results folder's records, with its ``options`` (by option name, as it declares them:
    ``segbench export NAME --help``); returns what its ``write`` returned. An unknown
    name or bad options are bad input (exit 2); a reporter that fails otherwise raises
    ReporterError (exit 1: the results were fine, the export was not)."""
    reporter = find_reporter(name, plugins)
    given = reporter.option_values(options)
    context = stored_context(results_dir)
    try:
        return reporter.write(replace(context, options=given))
    except SegbenchError:
        raise
    except BaseException as exc:  # noqa: BLE001 - a plugin's failure, named with its plugin; Ctrl-C stops
        if is_interrupt(exc):
            raise
        raise ReporterError(ReporterFailure(reporter, exc)) from exc


def stored_context(results_dir):
    """The ReportContext of a results folder's stored records, as every reporter gets it."""
    from .report import report_context  # heavy

    store, meta, records = _stored_results(results_dir)
    return report_context(records, meta, store.report_dir, store.load_samples, store.suite_dir)


def _stored_results(results_dir):
    """The store, summary and records of a results folder, for a report or an export."""
    suite_dir = find_suite_dir(results_dir)
    store = ResultStore(suite_dir.parent, suite_dir.name)
    meta = store.load_summary(required=True)
    records = store.records()
    if not records and store.damaged:
        raise SegbenchError(f"{suite_dir}: every run record is damaged ({len(store.damaged)} file(s)), so there is no report to draw; "
                            f"`segbench doctor {results_dir}` lists them, `segbench run` redoes their runs")
    return store, meta, records


def doctor(results_dir):
    """What is damaged in a results folder, which runs ``segbench run`` would redo, and
    which are finished (see segbench.doctor); reads only, moves nothing."""
    return diagnose(results_dir)


def plan(path, results_dir="results", plugins=(), overrides=None, effect=None, power=None) -> dict:
    """Seeds each comparison of the suite at ``path`` needs, from the paired spread of the
    results in ``results_dir`` (see segbench.planning); nothing trains."""
    from .planning import Pilot, check_request, plan_suite  # heavy: scipy, pandas

    check_request(1.0 if effect is None else effect, 0.5 if power is None else power)
    suite = load_suite(path, load_catalogue, extra_plugins=plugins, overrides=overrides)
    source = Path(results_dir)
    if is_suite_folder(source / suite.name):  # results/ may hold several suites: take this one's
        source = source / suite.name
    elif not source.exists():
        raise SegbenchError(f"results {source} do not exist; run the suite (or a pilot with a few seeds) first, or give --from "
                            "a results folder or a report's runs.csv")
    directions = {name: metric_direction(suite.catalogue.get("metric", name)) for name in suite.metric_names}
    return plan_suite(suite, Pilot.load(source), directions, effect, power)


def prepare_data(source, plugins=(), overrides=None, cache_dir=None, show_progress=True) -> str:
    """Decode the datasets of ``source`` (a suite file or a dataset name) into the sample
    cache; returns a line per dataset saying whether it was already there."""
    from . import data_commands as data  # heavy: torch, as in each data function below

    catalogue, sources = data.resolve_sources(source, plugins, overrides)
    return data.format_events(data.prepare(catalogue, sources, cache_dir, show_progress))


def data_stats(source, plugins=(), overrides=None, cache_dir=None, split=None) -> list:
    """Statistics of each dataset of ``source``, as stable dicts (see segbench.data.stats)."""
    from . import data_commands as data  # heavy
    from .data.stats import check_split, dataset_stats

    catalogue, sources = data.resolve_sources(source, plugins, overrides)
    check_split(split)
    return [
        dataset_stats(data.build(catalogue, s, cache_dir), s.ref["name"], s.ref["params"], split)
        for s in sources
    ]


def show_sample(source, split, index, output, plugins=(), overrides=None, cache_dir=None):
    """Draw sample ``index`` of ``split`` (of the first dataset of ``source``) to ``output``."""
    from . import data_commands as data  # heavy
    from .data.show import draw_sample

    catalogue, sources = data.resolve_sources(source, plugins, overrides)
    return draw_sample(data.build(catalogue, sources[0], cache_dir), split, index, output)


def export_data(source, fmt, directory, plugins=(), overrides=None, cache_dir=None) -> str:
    """Write the (first) dataset of ``source`` in COCO or VOC layout; returns the [dataset]
    table that reads it back."""
    from . import data_commands as data  # heavy
    from .data.export import export_dataset

    catalogue, sources = data.resolve_sources(source, plugins, overrides)
    return export_dataset(data.build(catalogue, sources[0], cache_dir), directory, fmt)


def list_components(kind=None, plugins=()) -> list:
    """Registered components, optionally of one kind (``upsampler`` or ``upsamplers``)."""
    return load_catalogue(plugins).all(normalize_kind(kind) if kind else None)


def list_executors(plugins=()) -> list:
    """The registered executors (segbench.extensions.Executor), by name."""
    catalogue = load_catalogue(plugins)
    return [catalogue.executors[name] for name in sorted(catalogue.executors)]


def list_reporters(plugins=()) -> list:
    """The registered reporters (segbench.extensions.Reporter): the default ones in the order
    they run, then the exporters by name."""
    reporters = load_catalogue(plugins).reporters
    exporters = sorted(name for name, reporter in reporters.items() if not reporter.default)
    return chosen_reporters(reporters, exporters)


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
    "run_reporter", "list_executors", "list_reporters",
]
