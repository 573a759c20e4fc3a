"""Run a suite: every variant x seed, each isolated, each recorded, then the report."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from .data.cache import resolve_cache_dir, showing_progress
from .engine import resolve_device
from .executors.local import LocalExecutor
from .plugins import load_catalogue
from .components import metric_direction, unknown_name_message
from .crash import is_interrupt, write_crash_log
from .errors import SegbenchError, SuiteError
from .execute import failed_record
from .extensions import ExecutorError
from .preflight import suite_problems
from .preflight_watch import watched_problems
from .progress import Progress
from .records import record_problem
from .verdicts import judge_family, metric_values, seeds_wanted
from .stored_report import current_report
from .store import ResultStore, to_json_safe, write_json_atomic, write_text_atomic
from .suite import Suite, load_suite
from .text import clipped


@dataclass
class SuiteOutcome:
    suite: Suite
    store: ResultStore
    records: list
    report: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # what the executor got wrong (runs missing, twice, not sent), and its own notes

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


PREFLIGHT_PLACES = ("driver", "workers")  # --preflight-on


def check_suite(suite: Suite, cache_dir=None, show_progress=False, skip_if_finished_in=None, executor=None, apart=False,
                preflight_on="driver", executor_name=None) -> Suite:
    """Build the suite's datasets and models and try them on a tiny batch (preflight),
    each step within the suite's timeout_s. ``preflight_on="driver"``: on this machine, in
    this process for the local executor (the default) unless ``apart``, else in a process
    of its own (segbench.preflight_watch); ``"workers"``: on one of the executor's workers,
    through its optional ``preflight`` method (segbench.preflight_remote)."""
    on_workers = workers_preflight(executor, preflight_on, executor_name)
    problems_of, variant_ids = suite_problems, [variant.id for variant in suite.variants]
    if skip_if_finished_in is not None:
        finished = finished_records(suite, ResultStore(skip_if_finished_in, suite.name, quiet=True))  # the run names damage
        pending = {variant_id for variant_id, seed in wanted_runs(suite, finished) if (variant_id, seed) not in finished}
        if not pending:
            return suite
        # only the variants with runs to do: adding one variant to a finished suite checks one model, not all
        problems_of = functools.partial(suite_problems, only=frozenset(pending))
        variant_ids = [variant_id for variant_id in variant_ids if variant_id in pending]
    apart = apart or (executor is not None and not isinstance(executor, LocalExecutor))
    cache_dir = resolve_cache_dir(cache_dir)
    with showing_progress(show_progress):  # decoding a COCO subset the first time takes a while
        # builds, and runs each model on a tiny batch
        if on_workers is not None:
            problems = _closing_on_failure(executor, on_workers, suite, variant_ids, cache_dir)
        else:
            problems = watched_problems(problems_of, suite, cache_dir, apart=apart, show_progress=show_progress)
    if problems:  # every problem at once: models and data
        raise SuiteError(suite.path, problems)
    return suite


def workers_preflight(executor, preflight_on, executor_name=None):
    """The executor's ``preflight`` method when the preflight is to run on its workers,
    else None. Bad input (exit 2) before anything runs: a place that is neither of
    ``PREFLIGHT_PLACES``, or an executor without the method."""
    if preflight_on not in PREFLIGHT_PLACES:
        raise SegbenchError(f"--preflight-on {preflight_on!r}: expected {' or '.join(PREFLIGHT_PLACES)}")
    if preflight_on == "driver":
        return None
    executor = executor or LocalExecutor()
    method = getattr(executor, "preflight", None)
    if not callable(method):
        name = executor_name or getattr(executor, "name", None) or type(executor).__name__
        raise SegbenchError(f'--preflight-on workers: executor "{name}" cannot run the preflight on its workers (it has no '
                            "preflight(suite, variant_ids, cache_dir) method); --preflight-on driver runs it on this machine")
    return method


def _closing_on_failure(executor, preflight, suite, variant_ids, cache_dir) -> list:
    """``preflight(...)``'s problems; the executor is closed when they stop the suite or
    it raises (its workers may have started)."""
    try:
        problems = preflight(suite, variant_ids, cache_dir)
        if not isinstance(problems, list) or not all(isinstance(problem, str) for problem in problems):
            raise SegbenchError(f'--preflight-on workers: executor "{getattr(executor, "name", type(executor).__name__)}" '
                                f"returned {clipped(repr(problems), 80)} from preflight(); expected a list of problem lines (text)")
    except BaseException:
        executor.close()
        raise
    if problems:
        executor.close()
    return problems


def run_prepared(suite: Suite, output="results", rerun=False, fail_fast=False, quiet=False, cache_dir=None, executor=None,
                 store=None, executor_name=None) -> SuiteOutcome:
    """Run ``suite`` into ``output``; pass the ``store`` whose lock the caller already holds
    (``segbench run`` takes it before its preflight), else the lock is taken here.
    ``executor_name`` is the name the executor was chosen by (``--executor NAME``): the
    runner names it when the executor misbehaves."""
    held = store is not None
    store = store or ResultStore(output, suite.name)
    cache_dir = resolve_cache_dir(cache_dir)
    executor = executor or LocalExecutor()
    name = executor_name or getattr(executor, "name", None) or type(executor).__name__
    if callable(getattr(executor, "use_results_folder", None)):  # optional: an executor whose tasks write there (slurm)
        executor.use_results_folder(store.suite_dir)
    with contextlib.nullcontext() if held else store.lock():
        write_text_atomic(store.folder.suite_file, suite.text)
        meta = suite_summary(suite)
        write_json_atomic(store.summary_path, meta)
        notes = []
        records = _run_all(suite, store, cache_dir, rerun, fail_fast, quiet, executor, name, notes)
        report = current_report(records, meta, store, suite.catalogue.reporters, suite.report_exporters)
    return SuiteOutcome(suite, store, records, report, notes)


def _run_all(suite, store, cache_dir, rerun, fail_fast, quiet, executor, executor_name, notes):
    """Run what is wanted and not finished yet, round by round: a fixed list of seeds is
    one round; adaptive seeds add rounds while comparisons are open. What the executor
    returns is checked against what it was sent (:class:`RoundCheck`, :class:`MissingRuns`);
    what it got wrong is warned about and appended to ``notes``. Returns every record in
    the suite's order."""
    done = {} if rerun else finished_records(suite, store)
    attempted, reused = set(), set()
    missing = MissingRuns(executor_name)
    limit = round_limit(suite)
    with Progress(0, quiet=quiet) as progress:
        on_epoch = progress.epoch if executor.shows_epochs else None

        def keep(record) -> bool:
            """Write ``record``; True when the suite stops here (--fail-fast)."""
            record = store.write_record(with_executor(record, executor_name))
            progress.finished(record, suite.primary)
            key = (record["variant_id"], record["seed"])
            attempted.add(key)
            done[key] = record
            return fail_fast and record["status"] != "ok"

        def note(text):
            notes.append(text)
            progress.warn(text)

        try:
            for round_number in itertools.count(1):
                wanted = wanted_runs(suite, done)
                for key in [k for k in wanted if k in done and k not in reused and k not in attempted]:
                    reused.add(key)
                    progress.skipped(done[key]["label"], key[1])
                pending = [(suite.variant(v), seed) for v, seed in wanted if (v, seed) not in done and (v, seed) not in attempted]
                if not pending:
                    break
                if round_number > limit:  # cannot happen while each round makes progress; a guard against a loop
                    raise ExecutorError(f'executor "{executor_name}": {len(pending)} run(s) still not returned after {limit} '
                                        f"rounds: {run_names(pending)}; the finished runs are kept")
                missing.sending(pending)
                progress.expect(len(pending))
                check = RoundCheck(pending, executor_name)
                for record in _returned(executor.records(suite, pending, cache_dir, on_epoch)):
                    if isinstance(record, ExecutorRaised):
                        note(executor_failed(executor_name, record.error))
                        if any(keep(missing.failed_record(suite, variant, seed, record.error)) for variant, seed in check.given_up()):
                            return _in_order(suite, done)
                        break
                    problem = check.problem(record)
                    if problem:
                        note(problem)
                    elif keep(check.sound(record, suite, missing.first_sent)):
                        return _in_order(suite, done)
                for variant, seed in check.missing():
                    lost = missing.failed_record(suite, variant, seed)
                    if lost is None:
                        note(f'executor "{executor_name}" did not return run {run_names([(variant, seed)])}; it is sent again')
                        progress.expect(-1)  # counted again when it is sent again
                    elif keep(lost):
                        return _in_order(suite, done)
        finally:
            executor.close()
            notes.extend(getattr(executor, "notes", None) or ())  # what it warned about itself (a Ray node left out)
    return _in_order(suite, done)


def with_executor(record: dict, executor_name: str) -> dict:
    """The record with the executor that ran it in ``ran_on``: the run itself cannot tell."""
    place = record.get("ran_on")
    return {**record, "ran_on": {**(place if isinstance(place, dict) else {}), "executor": executor_name}}


@dataclass
class ExecutorRaised:
    """What :func:`_returned` yields when the executor's ``records()`` raised."""

    error: BaseException


def _returned(records):
    """The executor's records, then an :class:`ExecutorRaised` if its iteration raised:
    only the executor's own failure, not one of segbench's writing what it returned. A
    SegbenchError before its first record is bad input, raised (nothing was sent)."""
    iterator = iter(records)
    returned = False
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            return
        except BaseException as exc:  # noqa: BLE001 - the executor is a plugin
            if is_interrupt(exc) or (isinstance(exc, SegbenchError) and not returned):
                raise  # refused before returning any run (no Ray node can run the suite): bad input, nothing sent
            yield ExecutorRaised(exc)  # the executor is a plugin: its failure fails the runs it kept
            return
        returned = True
        yield record


MISSING_LIMIT = 2  # a run the executor leaves out this many times fails, naming the executor


def round_limit(suite) -> int:
    """The most rounds a suite may take: each round records a run or counts a run missing,
    so ``MISSING_LIMIT`` rounds per run (and one to find nothing pending) is a bound."""
    return MISSING_LIMIT * len(list(suite.runs())) + 1


class MissingRuns:
    """The runs an executor left out, counted over the rounds: sent again the first time,
    failed the ``MISSING_LIMIT``-th ("executor X did not return this run")."""

    def __init__(self, executor_name):
        self.executor = executor_name
        self.counts = Counter()
        self.first_sent = {}  # (variant id, seed) -> time.perf_counter() when first sent

    def sending(self, pending):
        for variant, seed in pending:
            self.first_sent.setdefault((variant.id, seed), time.perf_counter())

    def failed_record(self, suite, variant, seed, raised: BaseException | None = None) -> dict | None:
        """The run's failed record once it is missing for good, or at once when the executor
        ``raised`` before returning it; None: send it again."""
        key = (variant.id, seed)
        self.counts[key] += 1
        if raised is not None:
            error = {"type": "ExecutorFailed", "message": f'executor "{self.executor}" raised before returning this run: '
                                                          f"{type(raised).__name__}: {clipped(str(raised), 300)}",
                     "hint": "a bug in the executor, or in what it runs on; the crash log holds its traceback"}
        elif self.counts[key] < MISSING_LIMIT:
            return None
        else:
            error = {"type": "RunNotReturned",
                     "message": f'executor "{self.executor}" did not return this run (sent {self.counts[key]} times)',
                     "hint": "a bug in the executor: it must return one record per run it is given"}
        return failed_record(suite, variant, seed, error, self.first_sent[key])


def executor_failed(executor_name, exc: BaseException) -> str:
    """The note for an executor whose ``records()`` raised: its runs not returned yet fail,
    the records it returned are kept, and its traceback goes to a crash log."""
    log = write_crash_log(exc, sys.argv[1:], kind=f"executor-{executor_name}")
    return (f'executor "{executor_name}" raised {type(exc).__name__}: {clipped(str(exc), 200)}; the runs it had not returned '
            f"fail, those it returned are kept (traceback: {log})")


class RoundCheck:
    """What came back from an executor in one round against what it was sent: each run
    sent must come back once. A duplicate keeps the first record; a record of a run not
    sent (another variant or seed, or no record at all) is left out. Either is named,
    with the executor, by :meth:`problem`; :meth:`missing` lists the runs that did not
    come back."""

    def __init__(self, pending, executor_name):
        self.sent = {(variant.id, seed): (variant, seed) for variant, seed in pending}
        self.returned = set()
        self.executor = executor_name

    def problem(self, record) -> str | None:
        """Why ``record`` is not kept, or None (it is then counted as returned)."""
        who = f'executor "{self.executor}"'
        if not isinstance(record, dict):
            return f"{who} returned {type(record).__name__} {_clipped(record)} where a run's record (a dict) was expected; ignored"
        key = (record.get("variant_id"), record.get("seed"))
        if not isinstance(key[0], str) or type(key[1]) is not int or key not in self.sent:
            label = record.get("label", "?")
            return (f"{who} returned a record of a run it was not sent (variant {_clipped(label)}, id {_clipped(key[0])}, "
                    f"seed {_clipped(key[1])}); ignored, not written")
        if key in self.returned:
            return f"{who} returned run {run_names([self.sent[key]])} twice; the first record is kept, the second ignored"
        self.returned.add(key)
        return None

    def missing(self) -> list:
        return [run for key, run in self.sent.items() if key not in self.returned]

    def given_up(self) -> list:
        """The runs missing now, counted as returned: they fail without being sent again."""
        runs = self.missing()
        self.returned.update((variant.id, seed) for variant, seed in runs)
        return runs

    def sound(self, record, suite, first_sent) -> dict:
        """``record`` (a run sent, returned once), or a failed record in its place when it
        is not a run record the store can keep (a field missing, a wrong type)."""
        problem = record_problem(to_json_safe(record))
        if problem is None:
            return record
        variant, seed = self.sent[(record["variant_id"], record["seed"])]
        error = {"type": "MalformedRecord",
                 "message": f'executor "{self.executor}" returned a record that is no run record: {clipped(problem, 300)}',
                 "hint": "a bug in the executor: return the record segbench.execute made for the run, unchanged"}
        return failed_record(suite, variant, seed, error, first_sent[(variant.id, seed)])


def run_names(runs) -> str:
    """``label seed=N`` of each (variant, seed), for a message."""
    return ", ".join(f"{variant.label} seed={seed}" for variant, seed in runs)


def _clipped(value) -> str:
    return clipped(repr(value), 80)


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

