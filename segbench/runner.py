"""Run a suite: every variant x seed, each isolated, each recorded, then the report."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

from .data.cache import resolve_cache_dir, showing_progress
from .engine import resolve_device
from .executors.local import LocalExecutor
from .plugins import load_catalogue
from .components import metric_direction, unknown_name_message
from .errors import SuiteError
from .preflight import suite_problems
from .preflight_watch import watched_problems
from .progress import Progress
from .verdicts import judge_family, metric_values, seeds_wanted
from .stored_report import current_report
from .store import ResultStore, write_json_atomic, write_text_atomic
from .suite import Suite, load_suite


@dataclass
class SuiteOutcome:
    suite: Suite
    store: ResultStore
    records: list
    report: dict = field(default_factory=dict)

    @property
    def failures(self):
        return [r for r in self.records if r["status"] != "ok"]


def prepare(path, plugins=(), overrides=None, cache_dir=None, show_progress=False, skip_if_finished_in=None, apart=False) -> Suite:
    """Load and validate a suite, check its devices, build its models and datasets once:
    everything that can be bad input is found here, before anything trains.

    When every run already has a finished record under the results folder
    ``skip_if_finished_in``, nothing will train, so the builds are skipped (that makes
    re-running a finished suite quick). ``apart``: the preflight in a process of its own
    (segbench.preflight_watch)."""
    return check_suite(load_checked(path, plugins, overrides), cache_dir, show_progress, skip_if_finished_in, apart=apart)


def load_checked(path, plugins=(), overrides=None) -> Suite:
    """The suite file read and validated, its devices present; builds nothing."""
    suite = load_suite(path, load_catalogue, extra_plugins=plugins, overrides=overrides)
    check_exporters(suite)
    for device in {v.config["train"]["device"] for v in suite.variants}:
        resolve_device(device)
    return suite


def check_exporters(suite: Suite) -> None:
    """Each of ``[report] exporters`` must be an installed exporter: a typo is bad input
    now, not a failure after hours of training."""
    exporters = sorted(name for name, reporter in suite.catalogue.reporters.items() if not reporter.default)
    problems = [f"report.exporters: {unknown_name_message('exporter', name, exporters)}"
                for name in suite.report_exporters if name not in exporters]
    problems += [f"report.exporters: {name}: {reason}" for name in suite.report_exporters if name in exporters
                 for reason in [suite.catalogue.reporters[name].ready()] if reason]
    if problems:
        raise SuiteError(suite.path, problems)


def check_suite(suite: Suite, cache_dir=None, show_progress=False, skip_if_finished_in=None, executor=None, apart=False) -> Suite:
    """Build the suite's datasets and models and try them on a tiny batch (preflight),
    each step within the suite's timeout_s; where the runs will run: in this process for
    the local executor (the default) unless ``apart``, else in a process of its own
    (segbench.preflight_watch)."""
    if skip_if_finished_in is not None:
        finished = finished_records(suite, ResultStore(skip_if_finished_in, suite.name, quiet=True))  # the run names damage
        if all(run in finished for run in wanted_runs(suite, finished)):
            return suite
    apart = apart or (executor is not None and not isinstance(executor, LocalExecutor))
    with showing_progress(show_progress):  # decoding a COCO subset the first time takes a while
        # builds, and runs each model on a tiny batch
        problems = watched_problems(suite_problems, suite, resolve_cache_dir(cache_dir), apart=apart, show_progress=show_progress)
    if problems:  # every problem at once: models and data
        raise SuiteError(suite.path, problems)
    return suite


def run_prepared(suite: Suite, output="results", rerun=False, fail_fast=False, quiet=False, cache_dir=None, executor=None,
                 store=None) -> SuiteOutcome:
    """Run ``suite`` into ``output``; pass the ``store`` whose lock the caller already holds
    (``segbench run`` takes it before its preflight), else the lock is taken here."""
    held = store is not None
    store = store or ResultStore(output, suite.name)
    cache_dir = resolve_cache_dir(cache_dir)
    executor = executor or LocalExecutor()
    with contextlib.nullcontext() if held else store.lock():
        write_text_atomic(store.folder.suite_file, suite.text)
        meta = suite_summary(suite)
        write_json_atomic(store.summary_path, meta)
        records = _run_all(suite, store, cache_dir, rerun, fail_fast, quiet, executor)
        report = current_report(records, meta, store, suite.catalogue.reporters, suite.report_exporters)
    return SuiteOutcome(suite, store, records, report)


def _run_all(suite, store, cache_dir, rerun, fail_fast, quiet, executor):
    """Run what is wanted and not finished yet, round by round: a fixed list of seeds is
    one round; adaptive seeds add rounds while comparisons are open. Returns every record
    in the suite's order."""
    done = {} if rerun else finished_records(suite, store)
    attempted, reused = set(), set()
    with Progress(0, quiet=quiet) as progress:
        on_epoch = progress.epoch if executor.shows_epochs else None
        try:
            while True:
                wanted = wanted_runs(suite, done)
                for key in [k for k in wanted if k in done and k not in reused and k not in attempted]:
                    reused.add(key)
                    progress.skipped(done[key]["label"], key[1])
                pending = [(suite.variant(v), seed) for v, seed in wanted if (v, seed) not in done and (v, seed) not in attempted]
                if not pending:
                    break
                progress.expect(len(pending))
                for record in executor.records(suite, pending, cache_dir, on_epoch):
                    record = store.write_record(record)
                    progress.finished(record, suite.primary)
                    key = (record["variant_id"], record["seed"])
                    attempted.add(key)
                    done[key] = record
                    if fail_fast and record["status"] != "ok":
                        return _in_order(suite, done)
        finally:
            executor.close()
    return _in_order(suite, done)


def finished_records(suite, store) -> dict:
    """(variant id, seed) -> the finished record of every run the suite may have. A
    damaged record is not finished (the store names it), so its run is redone, and the new
    record's write moves the damaged file aside as ``record.json.corrupt``."""
    records = {}
    for variant, seed in suite.runs():
        record = store.load(variant.id, seed)
        if record and record.get("status") == "ok":
            records[(variant.id, seed)] = record
    return records


def wanted_runs(suite, records: dict) -> list:
    """(variant id, seed) of every run the suite wants given ``records`` so far: all of
    them for a fixed list of seeds; with adaptive seeds, the seeds of each comparison's
    next look (see segbench.verdicts), and the baseline's to pair them."""
    design = suite.design
    if not design.adaptive:
        return [(variant.id, seed) for variant, seed in suite.runs()]
    values = metric_values(records.values(), suite.primary)
    candidates = {v.id: values.get(v.id, {}) for v in suite.variants if v.id != suite.baseline_id}
    judgements = judge_family(values.get(suite.baseline_id, {}), candidates, higher_is_better=primary_direction(suite),
                              margin=suite.stats.margin_for(suite.primary), design=design, settings=suite.stats, describe=False)
    wanted, baseline_seeds = seeds_wanted(judgements, design)
    runs = [(suite.baseline_id, seed) for seed in design.seeds[:baseline_seeds]]
    runs += [(variant_id, seed) for variant_id, count in wanted.items() for seed in design.seeds[:count]]
    order = {variant.id: index for index, variant in enumerate(suite.variants)}
    return sorted(runs, key=lambda run: (design.seeds.index(run[1]), order[run[0]]))


def primary_direction(suite) -> bool:
    return metric_direction(suite.catalogue.get("metric", suite.primary))


def _in_order(suite, done):
    return [done[(v.id, s)] for v, s in suite.runs() if (v.id, s) in done]


def suite_summary(suite: Suite) -> dict:
    """What the report needs to know about the suite besides the records."""
    return {
        "name": suite.name,
        "description": suite.description,
        "path": str(suite.path),
        "text": suite.text,
        "baseline_id": suite.baseline_id,
        "variant_order": [v.id for v in suite.variants],
        "labels": {v.id: v.label for v in suite.variants},  # the report shows these, not the labels records were trained under
        "primary": suite.primary,
        "metrics": [m["name"] for m in suite.variants[0].config["eval"]["metrics"]],
        "higher_is_better": {name: metric_direction(suite.catalogue.get("metric", name)) for name in suite.metric_names},
        "stats": suite.stats.to_dict(),
        "design": suite.design.to_dict(),
        "gate_rules": [str(rule) for rule in suite.gate_rules],  # as run, --set included
        "overrides": [f"{key}={json.dumps(value, default=str)}" for key, value in (suite.source.get("overrides") or {}).items()],
    }

