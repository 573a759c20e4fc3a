"""Run a suite: every variant x seed, each isolated, each recorded, then the report."""

from __future__ import annotations

import contextlib
import datetime
import gc
import hashlib
import json
import os
import signal
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .data.cache import showing_progress
from .engine import resolve_device, run_one
from .executors.local import LocalExecutor
from .environment import run_environment
from .plugins import load_catalogue
from .errors import SuiteError
from .preflight import suite_problems
from .progress import Progress
from .records import RECORD_SCHEMA
from .store import SUMMARY_NAME, ResultStore, write_json_atomic, write_text_atomic
from .suite import Suite, load_suite

META_NAME = SUMMARY_NAME  # what the report needs besides the records (segbench report DIR)
REPORT_STAMP = ".fingerprint"  # which records and suite the report was drawn from


@dataclass
class SuiteOutcome:
    suite: Suite
    store: ResultStore
    records: list
    report: dict = field(default_factory=dict)

    @property
    def failures(self):
        return [r for r in self.records if r["status"] != "ok"]


DATA_CACHE_ENV = "SEGBENCH_DATA_CACHE"


def resolve_cache_dir(cache_dir=None) -> Path:
    """``--data-cache``, else $SEGBENCH_DATA_CACHE, else the user cache dir."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get(DATA_CACHE_ENV):
        return Path(os.environ[DATA_CACHE_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir("segbench"))


def prepare(path, plugins=(), overrides=None, cache_dir=None, show_progress=False, skip_if_finished_in=None) -> Suite:
    """Load and validate a suite, check its devices, build its models and datasets once:
    everything that can be bad input is found here, before anything trains.

    When every run already has a finished record under the results folder
    ``skip_if_finished_in``, nothing will train, so the builds are skipped (that makes
    re-running a finished suite quick)."""
    return check_suite(load_checked(path, plugins, overrides), cache_dir, show_progress, skip_if_finished_in)


def load_checked(path, plugins=(), overrides=None) -> Suite:
    """The suite file read and validated, its devices present; builds nothing."""
    suite = load_suite(path, load_catalogue, extra_plugins=plugins, overrides=overrides)
    for device in {v.config["train"]["device"] for v in suite.variants}:
        resolve_device(device)
    return suite


def check_suite(suite: Suite, cache_dir=None, show_progress=False, skip_if_finished_in=None) -> Suite:
    """Build the suite's datasets and models and try them on a tiny batch (preflight)."""
    if skip_if_finished_in is not None:
        finished = finished_records(suite, ResultStore(skip_if_finished_in, suite.name, quiet=True))  # the run names damage
        if all(run in finished for run in wanted_runs(suite, finished)):
            return suite
    with showing_progress(show_progress):  # decoding a COCO subset the first time takes a while
        problems = suite_problems(suite, resolve_cache_dir(cache_dir))  # builds, and runs each model on a tiny batch
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
        write_text_atomic(store.suite_dir / "suite.toml", suite.text)
        meta = suite_summary(suite)
        write_json_atomic(store.suite_dir / META_NAME, meta)
        records = _run_all(suite, store, cache_dir, rerun, fail_fast, quiet, executor)
        report = current_report(records, meta, store)
    return SuiteOutcome(suite, store, records, report)


def current_report(records, meta, store) -> dict:
    """The report of ``records``, written again only when a record or the suite changed
    since it was last written (re-running a finished suite then costs next to nothing)."""
    fingerprint = _report_fingerprint(records, meta)
    stamp = store.report_dir / REPORT_STAMP
    text_path = store.report_dir / "summary.txt"
    drawn = all(p.is_file() for p in (stamp, text_path, store.report_dir / "index.html"))
    if drawn and stamp.read_text(errors="replace") == fingerprint:  # a damaged stamp only redraws
        return {"dir": store.report_dir, "html": store.report_dir / "index.html", "text": text_path.read_text(errors="replace"), "reused": True}
    from .report import write_report  # matplotlib, scipy: only when drawing

    report = write_report(records, meta, store.report_dir, store.load_samples)
    write_text_atomic(text_path, report["text"])
    write_text_atomic(stamp, fingerprint)
    return report


def _report_fingerprint(records, meta) -> str:
    from . import __version__

    text = json.dumps({"records": records, "meta": meta, "segbench": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


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
    from .verdicts import judge_family, metric_values, seeds_wanted

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
    from .components import metric_direction

    return metric_direction(suite.catalogue.get("metric", suite.primary))


def _in_order(suite, done):
    return [done[(v.id, s)] for v, s in suite.runs() if (v.id, s) in done]


def execute(suite, variant, seed, cache_dir, on_epoch=None) -> dict:
    """Train one run. Any exception, a plugin's ``sys.exit()`` and going past
    ``[train] timeout_s`` become a failed record, never a crashed suite; only
    KeyboardInterrupt stops the suite (the finished runs are kept)."""
    started = time.perf_counter()
    record = new_record(suite, variant, seed)
    gc.freeze()  # what exists now is not the run's: the collection after it need not scan it
    try:
        with time_limit(variant.config["train"].get("timeout_s")):
            measured = run_one(variant, seed, suite.catalogue, cache_dir, on_epoch=on_epoch)
        record.update(measured)
        record["status"] = "ok"
    except (Exception, SystemExit, Timeout) as exc:  # noqa: BLE001 - isolation is the point
        record["status"] = "failed"
        record["error"] = describe_failure(exc)
    finally:
        release_memory()
    return finish_record(record, started)


def new_record(suite, variant, seed, started_at=None) -> dict:
    """What a record says before its run has measured anything."""
    return {
        "schema": RECORD_SCHEMA,
        "suite": suite.name,
        "variant_id": variant.id,
        "label": variant.label,
        "factors": variant.factors,
        "seed": seed,
        "config": variant.config,
        "versions": variant.versions,
        "is_baseline": variant.id == suite.baseline_id,
        "started_at": started_at or _now(),
        "environment": run_environment(suite.path),
    }


def finish_record(record, started) -> dict:
    record["wall_seconds"] = time.perf_counter() - started
    record["finished_at"] = _now()
    return record


def failed_record(suite, variant, seed, error: dict, started) -> dict:
    """The record of a run that could not write its own: its worker died or was killed.
    ``started`` is the time.perf_counter() at which the run was handed out."""
    sent = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=time.perf_counter() - started)
    record = new_record(suite, variant, seed, sent.isoformat(timespec="seconds"))
    record["status"] = "failed"
    record["error"] = {"traceback": "", **error}
    return finish_record(record, started)


def describe_failure(exc: BaseException) -> dict:
    error = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    if isinstance(exc, SystemExit):  # sys.exit() in plugin code ends its run, not the suite
        error["message"] = f"plugin called sys.exit({exc.code!r})" if exc.code is not None else "plugin called sys.exit()"
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        error["hint"] = "out of memory: lower train.batch_size or dataset.image_size, or pick a smaller encoder"
    if isinstance(exc, Timeout):
        error["hint"] = "raise [train] timeout_s if the run is slow rather than stuck"
    return error


class Timeout(BaseException):
    """A run went past its ``[train] timeout_s``. A BaseException, like KeyboardInterrupt,
    so that a plugin's ``except Exception`` does not swallow it."""


def timeout_message(seconds: float) -> str:
    return f"run exceeded timeout_s = {seconds:g} s"


@contextlib.contextmanager
def time_limit(seconds):
    """Raise Timeout in this thread once ``seconds`` have passed (None: no limit).

    It uses SIGALRM, so it works on the main thread of a Unix process: Python code is
    interrupted at once, a hang inside one C call when that call returns. Elsewhere nothing
    is enforced here; the process executor also kills a worker stuck past the limit."""
    if seconds is None or not _can_alarm():
        if seconds is not None:
            warnings.warn(f"timeout_s = {seconds:g} s is not enforced: there is no SIGALRM here, or the run is not on the main thread",
                          RuntimeWarning, stacklevel=3)
        yield
        return

    def expire(signum, frame):
        raise Timeout(timeout_message(seconds))

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)  # None: not set from Python
        if outer:  # someone else's alarm (e.g. a test timeout) was pending: put it back
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def release_memory():
    """Give a failed (or finished) run's memory back before the next run starts: collect
    the run's own reference cycles (an exception's traceback holding its tensors, say).
    Objects older than the run were frozen when it started, so the collection scans only
    what the run made (a full collection over torch's, pandas' and matplotlib's objects
    took 0.7 s per run); they are unfrozen after it, to be collected as usual."""
    gc.collect()
    gc.unfreeze()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def suite_summary(suite: Suite) -> dict:
    """What the report needs to know about the suite besides the records."""
    from .components import metric_direction

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
    }


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
