"""The one JSON summary of benchmarks/gpu_check.sh (docs/gpu.md describes its fields).

    python benchmarks/gpu_summary.py WORK --mode gpu|cpu --out PATH

WORK is the check's work folder, which the script fills:

- ``env.json``: python, torch, CUDA and the device, written by the set-up step (or what
  was missing);
- ``parts.tsv``: one line per part, ``name<TAB>status<TAB>exit code<TAB>wall seconds``;
- ``gpu-tests.xml``: pytest's JUnit XML of ``pytest -m gpu tests/gpu``;
- ``results/``: the results folder of ``segbench run`` on the COCO-layout suite;
- ``engine-bench.json``: pytest-benchmark's JSON of benchmarks/test_engine.py;
- ``loader-bench.json``: pytest-benchmark's JSON of benchmarks/test_loader.py (``-k feed``);
- ``logs/<part>.log``: each part's output (the tail of a failed part's goes into the JSON).

Reading what is there and naming what is not, it never fails for a missing input: a
part that did not run still gets its entry, with its status. Exit codes alone prove
little (a GPU test that skips itself passes), so the summary also checks what the parts
measured and lists, in ``problems``, one sentence per requirement not met; ``ok`` is true
exactly when that list is empty, and the exit code is 1 then. Standard library only, plus
segbench's own results reader for the suite's records.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = 2  # 2: ok requires what the parts measured (problems), and the loader part
PARTS = ("tests", "suite", "engine_vs_raw", "loader")
LOG_TAIL_LINES = 40
STATUS_WORDS = {"failed": "failed", "timeout": "ran past its time limit", "not run": "did not run"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="the check's work folder")
    parser.add_argument("--mode", choices=("gpu", "cpu"), required=True)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--started", type=float, default=None, help="the check's start (Unix seconds)")
    args = parser.parse_args(argv)
    summary = summarise(args.work, args.mode, args.started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2, sort_keys=False, default=_json_default) + "\n")
    print(f"gpu_check: {'ok' if summary['ok'] else 'FAILED'}; summary in {args.out}")
    for problem in summary["problems"]:
        print(f"  - {problem}")
    return 0 if summary["ok"] else 1


def summarise(work: Path, mode: str, started: float | None = None) -> dict:
    env = _read_json(work / "env.json") or {"status": "missing", "error": "the set-up step wrote no env.json"}
    rows = _part_rows(work / "parts.tsv")
    suite = read_suite(work / "results")
    parts = {
        "tests": {**rows.get("tests", _not_run()), **junit_counts(work / "gpu-tests.xml")},
        "suite": {**rows.get("suite", _not_run()), **suite_results(suite)},
        "engine_vs_raw": {**rows.get("engine_vs_raw", _not_run()), **engine_ratio(work / "engine-bench.json")},
        "loader": {**rows.get("loader", _not_run()), **loader_feed(work / "loader-bench.json")},
    }
    for name, part in parts.items():
        if part["status"] != "ok":
            part["log_tail"] = _log_tail(work / "logs" / f"{name}.log")
    problems = find_problems(env, parts, suite, mode)
    summary = {
        "schema": SCHEMA,
        "mode": mode,
        "ok": not problems,
        "problems": problems,
        "wall_s": round(time.time() - started, 1) if started else None,
        "work_dir": str(work),
        "setup": {key: env.get(key) for key in ("status", "error", "missing", "installed", "shim")},
        "python": env.get("python"),
        "python_version": env.get("python_version"),
        "torch": env.get("torch"),
        "cuda": env.get("cuda"),
        "device": env.get("device"),
        "parts": parts,
    }
    if summary["setup"].get("status") != "ok":
        summary["setup"]["log_tail"] = _log_tail(work / "logs" / "setup.log")
    return summary


# Reading each part's output.

def junit_counts(path: Path) -> dict:
    """Test counts from pytest's JUnit XML: passed, failed, errors, skipped, and the names
    of the failed and the reasons of the skipped."""
    if not path.is_file():
        return {"junit": None, "passed": None, "failed": None, "errors": None, "skipped": None}
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        return {"junit": str(path), "junit_error": str(error), "passed": None, "failed": None, "errors": None, "skipped": None}
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures, skip_reasons = [], {}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None:
            counts["failed"] += 1
            failures.append(name)
        elif case.find("error") is not None:
            counts["errors"] += 1
            failures.append(name)
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
            reason = case.find("skipped").get("message", "")
            skip_reasons[reason] = skip_reasons.get(reason, 0) + 1
        else:
            counts["passed"] += 1
    return {"junit": str(path), **counts, "failures": failures, "skip_reasons": skip_reasons}


@dataclass
class SuiteRead:
    """The suite part's results folder as segbench's store reads it (``store`` is None,
    and ``error`` says why, when there is nothing to read)."""

    store: object = None
    error: str | None = None
    meta: dict = field(default_factory=dict)  # suite.json; {} when absent or damaged
    records: list = field(default_factory=list)  # the sound ones; the store names the damaged
    expected: list = field(default_factory=list)  # (variant id, seed) of every run suite.json promises

    def name(self, variant_id: str, seed: int) -> str:
        return f"{(self.meta.get('labels') or {}).get(variant_id, variant_id)} seed {seed}"

    def damage(self, path: Path) -> str | None:
        """Why the store left the file at ``path`` out, or None."""
        return next((d.problem for d in self.store.damaged if d.path == path), None)


def read_suite(results: Path) -> SuiteRead:
    if not results.is_dir():
        return SuiteRead(error=f"no results folder {results}")
    try:
        from segbench.design import SeedDesign
        from segbench.errors import SegbenchError
        from segbench.store import ResultStore, find_suite_dir
    except ImportError as error:
        return SuiteRead(error=f"cannot import segbench: {error}")
    try:
        suite_dir = find_suite_dir(results)
        store = ResultStore(suite_dir.parent, suite_dir.name, quiet=True)
        records = sorted(store.records(), key=lambda r: (r.get("label", ""), r.get("seed", 0)))
        meta = store.load_summary(required=False)
    except SegbenchError as error:  # no suite folder, or a file from a newer segbench
        return SuiteRead(error=str(error))
    # Adaptive seeds may stop after their first look: only that look's seeds are promised.
    seeds = SeedDesign.from_dict(meta.get("design")).seeds_at(0)
    expected = [(variant_id, seed) for variant_id in meta.get("variant_order", []) for seed in seeds]
    return SuiteRead(store, None, meta, records, expected)


def suite_results(suite: SuiteRead) -> dict:
    """Per variant of the suite: mIoU per seed and its mean, each run's peak memory,
    latency and training throughput, the precision and device it ran in."""
    if suite.store is None:
        return {"results": None, "read_error": suite.error, "runs": 0, "expected_runs": None, "failed_runs": None, "variants": {}}
    variants: dict = {}
    for record in suite.records:
        entry = variants.setdefault(record.get("label") or record["variant_id"], _new_variant())
        cost = record.get("cost") or {}
        entry["seeds"].append(record["seed"])
        entry["status"].append(record["status"])
        entry["miou"].append(_number((record.get("metrics") or {}).get("miou")))
        entry["peak_memory_mb"].append(_number(cost.get("peak_memory_mb")))
        entry["latency_ms"].append(_number(cost.get("latency_ms")))
        entry["train_images_per_s"].append(_number(cost.get("train_images_per_s")))
        entry["skipped_steps"].append(record.get("skipped_steps"))
        for key in ("precision", "device"):
            if record.get(key) and record[key] not in entry[key]:
                entry[key].append(record[key])
    for entry in variants.values():
        found = [value for value in entry["miou"] if value is not None]
        entry["miou_mean"] = statistics.fmean(found) if found else None
    report = suite.store.report_dir
    summary_md = report / "summary.md"
    return {
        "results": str(suite.store.suite_dir),
        "report": str(report / "index.html") if (report / "index.html").is_file() else None,
        "runs": len(suite.records),
        "expected_runs": len(suite.expected),
        "failed_runs": sum(1 for r in suite.records if r.get("status") != "ok"),
        "variants": variants,
        "summary_md": summary_md.read_text() if summary_md.is_file() else None,
    }


def engine_ratio(path: Path) -> dict:
    """The engine's throughput over the hand-written loop's, from pytest-benchmark's JSON
    (benchmarks/test_engine.py keeps its timings in ``extra_info``)."""
    info, error = _bench_info(path, "ratio")
    if error:
        return {"benchmark_json": _if_file(path), "ratio": None, "read_error": error}
    keep = ("target", "device", "placement", "precision", "image_size", "num_train", "batch_size", "encoder", "rounds")
    return {
        "benchmark_json": str(path),
        "ratio": info["ratio"],
        "meets_target": info["ratio"] >= info.get("target", 0),
        "engine_epoch_s_median": _median(info.get("engine") or []),
        "hand_epoch_s_median": _median(info.get("hand") or []),
        **{key: info.get(key) for key in keep},
    }


def loader_feed(path: Path) -> dict:
    """How well the streaming loader feeds training steps, from pytest-benchmark's JSON of
    benchmarks/test_loader.py: ``feed_ratio`` (steps fed by the loader over steps fed from
    memory, in images/s) and ``loader_share`` (a step's share of wall time spent waiting
    for it), each with its target (``loader_share_target`` null: no limit)."""
    info, error = _bench_info(path, "feed_ratio")
    if error:
        return {"benchmark_json": _if_file(path), "feed_ratio": None, "read_error": error}
    keep = ("feed_ratio", "feed_target", "loader_share", "loader_share_target", "device", "workers", "crop", "batch_size")
    return {"benchmark_json": str(path), **{key: info.get(key) for key in keep}}


def _bench_info(path: Path, key: str) -> tuple:
    """``(extra_info, None)`` of the benchmark in ``path`` that holds ``key``, or ``(None, why not)``."""
    document = _read_json(path)
    if not document:
        return None, f"no benchmark JSON at {path}"
    for bench in document.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        if key in info:
            return info, None
    return None, f"no benchmark with a {key} in extra_info"


def _if_file(path: Path) -> str | None:
    return str(path) if path.is_file() else None


# Judging: one sentence per requirement not met, naming the part and the numbers.

def find_problems(env: dict, parts: dict, suite: SuiteRead, mode: str) -> list:
    """Every requirement of docs/gpu.md's "What ok requires" not met, part by part."""
    setup = setup_problems(env, mode)
    if env.get("status") != "ok":
        return setup  # no part ran: their absence says nothing more
    checks = {
        "tests": tests_problems(parts["tests"], mode),
        "suite": suite_problems(suite, env.get("device")),
        "engine_vs_raw": engine_problems(parts["engine_vs_raw"]),
        "loader": loader_problems(parts["loader"]),
    }
    return setup + [problem for name in PARTS for problem in _status_problems(name, parts[name]) + checks[name]]


def setup_problems(env: dict, mode: str) -> list:
    if env.get("status") != "ok":
        missing = f" ({', '.join(env['missing'])})" if env.get("missing") else ""
        return [f"setup: {env.get('error') or 'failed'}{missing}; no part ran"]
    device = (env.get("device") or {}).get("type")
    if mode == "gpu" and device != "cuda":
        return [f"setup: the device is {device}, not CUDA"]
    return []


def tests_problems(part: dict, mode: str) -> list:
    """Every gpu test ran and passed; on the CPU (``--cpu``) they skip themselves, as they should."""
    if part.get("junit") is None:
        return ["tests: pytest wrote no JUnit XML"]
    if part.get("junit_error"):
        return [f"tests: the JUnit XML cannot be read ({part['junit_error']})"]
    total = sum(part[key] for key in ("passed", "failed", "errors", "skipped"))
    problems = [] if total else ["tests: the JUnit XML holds no test"]
    if part["failed"] or part["errors"]:
        problems.append(f"tests: {part['failed']} failed and {part['errors']} errors among {total} gpu tests "
                        f"({', '.join(part['failures'])})")
    if mode == "gpu" and part["skipped"]:
        reasons = "; ".join(f"{count} because {reason}" for reason, count in part["skip_reasons"].items())
        problems.append(f"tests: {part['skipped']} of {total} gpu tests skipped ({reasons})")
    return problems


def suite_problems(suite: SuiteRead, device: dict | None) -> list:
    """Every run suite.json promises has a sound record, finished, with every metric, on
    the check's device and in the precision the suite asked for there."""
    if suite.store is None:
        return [f"suite: no records to check ({suite.error})"]
    problems = _count_problems(suite)
    for record in suite.records:
        problems += _run_problems(suite, record, device)
    return [f"suite: {problem}" for problem in problems]


def _count_problems(suite: SuiteRead) -> list:
    summary_path = suite.store.summary_path
    if not suite.expected:
        why = suite.damage(summary_path) or ("names no variants or seeds" if summary_path.exists() else "is missing")
        return [f"the expected records are unknown: suite.json {why}"]
    found = {(record["variant_id"], record["seed"]) for record in suite.records}
    absent = [run for run in suite.expected if run not in found]
    problems = []
    if absent:
        # A record with a metric that is not finite, or otherwise damaged, is one the store left out.
        named = "; ".join(f"variant {suite.name(*run)} {_absence(suite, *run)}" for run in absent)
        problems.append(f"{len(suite.expected) - len(absent)} of {len(suite.expected)} expected records ({named})")
    expected_paths = {suite.store.record_path(*run) for run in suite.expected} | {summary_path}
    problems += [f"{os.path.relpath(d.path, suite.store.suite_dir)} {d.problem}"
                 for d in suite.store.damaged if d.path not in expected_paths]
    return problems


def _absence(suite: SuiteRead, variant_id: str, seed: int) -> str:
    why = suite.damage(suite.store.record_path(variant_id, seed))
    return f"damaged: its record {why}" if why else "missing"


def _run_problems(suite: SuiteRead, record: dict, device: dict | None) -> list:
    run = f"run {suite.name(record['variant_id'], record['seed'])}"
    if record["status"] != "ok":
        error = record.get("error") or {}
        return [f"{run} failed ({error.get('type', 'no error recorded')}: {error.get('message', '')})"]
    # The store reads a finished record only when each of its metrics is a finite number.
    absent = [name for name in suite.meta.get("metrics", []) if name not in record["metrics"]]
    problems = [f"{run} has no {', '.join(absent)} among its metrics"] if absent else []
    if device:
        problems += _placement_problems(run, record, device)
    return problems


def _placement_problems(run: str, record: dict, device: dict) -> list:
    trained_on, precision = record.get("device") or "no device", record.get("precision")
    problems = []
    if not trained_on.startswith(device["type"]):
        problems.append(f"{run} trained on {trained_on}, not on the check's {device['type']} device")
    amp = ((record.get("config") or {}).get("train") or {}).get("amp", "auto")  # "auto": the schema's default
    asked = precision_asked(amp, device)
    if precision != asked:
        problems.append(f"{run} trained in {precision} on {trained_on}; the suite asked for amp={amp}, which is {asked} on this device")
    return problems


def precision_asked(amp: str, device: dict) -> str:
    """The precision ``[train] amp`` gives on the check's device (env.json's), as
    segbench/engine/precision.py resolves it; read here from env.json, not from a live torch."""
    if amp == "auto":
        if device.get("type") != "cuda":
            return "fp32"
        return "bf16" if device.get("bf16") else "fp16"
    return "fp32" if amp == "off" else amp


def engine_problems(part: dict) -> list:
    ratio, target = part.get("ratio"), part.get("target") or 0
    if ratio is None:
        return [f"engine_vs_raw: no ratio ({part.get('read_error') or 'the benchmark gave null'})"]
    if not ratio >= target:  # a NaN ratio fails too
        return [f"engine_vs_raw: ratio {ratio:.3g} is below the target {target:g}"]
    return []


def loader_problems(part: dict) -> list:
    ratio, target = part.get("feed_ratio"), part.get("feed_target") or 0
    if ratio is None:
        return [f"loader: no feed ratio ({part.get('read_error') or 'the benchmark gave null'})"]
    problems = [] if ratio >= target else [f"loader: feed ratio {ratio:.3g} is below the target {target:g}"]
    share, share_target = _number(part.get("loader_share")), part.get("loader_share_target")
    if share_target is None:  # no limit (the CPU)
        return problems
    if share is None:
        problems.append(f"loader: no loader share to hold to the target {share_target:g}")
    elif share > share_target:
        problems.append(f"loader: loader share {share:.3g} is above the target {share_target:g}")
    return problems


def _status_problems(name: str, part: dict) -> list:
    if part["status"] == "ok":
        return []
    code = f" (exit {part['exit_code']}; its log's tail is in the summary)" if part["exit_code"] is not None else ""
    return [f"{name}: the part {STATUS_WORDS.get(part['status'], part['status'])}{code}"]


def _part_rows(path: Path) -> dict:
    rows = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) == 4 and fields[0] in PARTS:
                name, status, code, wall = fields
                rows[name] = {"status": status, "exit_code": int(code), "wall_s": round(float(wall), 1)}
    return rows


def _not_run() -> dict:
    return {"status": "not run", "exit_code": None, "wall_s": None}


def _new_variant() -> dict:
    keys = ("seeds", "status", "miou", "peak_memory_mb", "latency_ms", "train_images_per_s", "skipped_steps", "precision", "device")
    return {key: [] for key in keys}


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def _median(values):
    return statistics.median(values) if values else None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _log_tail(path: Path) -> list:
    try:
        return path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return []


def _json_default(value):
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
