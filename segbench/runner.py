"""Run a suite: every variant x seed, each isolated, each recorded, then the report."""

from __future__ import annotations

import datetime
import gc
import hashlib
import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .data.cache import showing_progress
from .engine import resolve_device, run_one
from .executors.local import LocalExecutor
from .environment import environment
from .plugins import load_catalogue
from .errors import SuiteError
from .preflight import dataset_problems, model_problems
from .progress import Progress
from .store import ResultStore, write_json_atomic, write_text_atomic
from .suite import Suite, load_suite

RECORD_SCHEMA = 1
META_NAME = "suite.json"  # what the report needs besides the records (segbench report DIR)
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
    suite = load_suite(path, load_catalogue, extra_plugins=plugins, overrides=overrides)
    for device in {v.config["train"]["device"] for v in suite.variants}:
        resolve_device(device)
    if skip_if_finished_in is not None:
        finished = finished_records(suite, ResultStore(skip_if_finished_in, suite.name))
        if all(run in finished for run in wanted_runs(suite, finished)):
            return suite
    problems = model_problems(suite)
    with showing_progress(show_progress):  # decoding a COCO subset the first time takes a while
        problems += dataset_problems(suite, resolve_cache_dir(cache_dir))
    if problems:  # every problem at once: models and data
        raise SuiteError(suite.path, problems)
    return suite


def run_prepared(suite: Suite, output="results", rerun=False, fail_fast=False, quiet=False, cache_dir=None, executor=None) -> SuiteOutcome:
    store = ResultStore(output, suite.name)
    cache_dir = resolve_cache_dir(cache_dir)
    executor = executor or LocalExecutor()
    with store.lock():
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
    if drawn and stamp.read_text() == fingerprint:
        return {"dir": store.report_dir, "html": store.report_dir / "index.html", "text": text_path.read_text(), "reused": True}
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
    """(variant id, seed) -> the finished record of every run the suite may have."""
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
    """Train one run; any exception becomes a failed record, never a crashed suite."""
    started = time.perf_counter()
    record = {
        "schema": RECORD_SCHEMA,
        "suite": suite.name,
        "variant_id": variant.id,
        "label": variant.label,
        "factors": variant.factors,
        "seed": seed,
        "config": variant.config,
        "versions": variant.versions,
        "is_baseline": variant.id == suite.baseline_id,
        "started_at": _now(),
        "environment": environment(),
    }
    try:
        record.update(run_one(variant, seed, suite.catalogue, cache_dir, on_epoch=on_epoch))
        record["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - isolation is the point
        record["status"] = "failed"
        record["error"] = describe_failure(exc)
    finally:
        release_memory()
    record["wall_seconds"] = time.perf_counter() - started
    record["finished_at"] = _now()
    return record


def describe_failure(exc: BaseException) -> dict:
    error = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        error["hint"] = "out of memory: lower train.batch_size or dataset.image_size, or pick a smaller encoder"
    return error


def release_memory():
    """Give a failed (or finished) run's memory back before the next run starts."""
    gc.collect()
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
        "primary": suite.primary,
        "metrics": [m["name"] for m in suite.variants[0].config["eval"]["metrics"]],
        "higher_is_better": {name: metric_direction(suite.catalogue.get("metric", name)) for name in suite.metric_names},
        "stats": suite.stats.to_dict(),
        "design": suite.design.to_dict(),
    }


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
