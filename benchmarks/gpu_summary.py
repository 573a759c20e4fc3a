"""The one JSON summary of benchmarks/gpu_check.sh (docs/gpu.md describes its fields).

    python benchmarks/gpu_summary.py WORK --mode gpu|cpu --out PATH

WORK is the check's work folder, which the script fills:

- ``env.json``: python, torch, CUDA and the device, written by the set-up step (or what
  was missing);
- ``parts.tsv``: one line per part, ``name<TAB>status<TAB>exit code<TAB>wall seconds``;
- ``gpu-tests.xml``: pytest's JUnit XML of ``pytest -m gpu tests/gpu``;
- ``results/``: the results folder of ``segbench run`` on the COCO-layout suite;
- ``engine-bench.json``: pytest-benchmark's JSON of benchmarks/test_engine.py;
- ``logs/<part>.log``: each part's output (the tail of a failed part's goes into the JSON).

Reading what is there and naming what is not, it never fails for a missing input: a
part that did not run still gets its entry, with its status. Standard library only, plus
segbench's own results reader for the suite's records.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

SCHEMA = 1
PARTS = ("tests", "suite", "engine_vs_raw")
LOG_TAIL_LINES = 40


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
    return 0


def summarise(work: Path, mode: str, started: float | None = None) -> dict:
    env = _read_json(work / "env.json") or {"status": "missing", "error": "the set-up step wrote no env.json"}
    rows = _part_rows(work / "parts.tsv")
    parts = {
        "tests": {**rows.get("tests", _not_run()), **junit_counts(work / "gpu-tests.xml")},
        "suite": {**rows.get("suite", _not_run()), **suite_results(work / "results")},
        "engine_vs_raw": {**rows.get("engine_vs_raw", _not_run()), **engine_ratio(work / "engine-bench.json")},
    }
    for name, part in parts.items():
        if part["status"] != "ok":
            part["log_tail"] = _log_tail(work / "logs" / f"{name}.log")
    summary = {
        "schema": SCHEMA,
        "mode": mode,
        "ok": env.get("status") == "ok" and all(part["status"] == "ok" for part in parts.values()),
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


def suite_results(results: Path) -> dict:
    """Per variant of the suite: mIoU per seed and its mean, each run's peak memory,
    latency and training throughput, the precision and device it ran in."""
    if not results.is_dir():
        return {"results": None, "runs": 0, "failed_runs": None, "variants": {}}
    try:
        from segbench.errors import SegbenchError
        from segbench.store import ResultStore, find_suite_dir
    except ImportError as error:
        return {"results": str(results), "read_error": f"cannot import segbench: {error}", "variants": {}}
    try:
        suite_dir = find_suite_dir(results)
    except SegbenchError as error:
        return {"results": str(results), "read_error": str(error), "runs": 0, "failed_runs": None, "variants": {}}
    records = sorted(ResultStore(suite_dir.parent, suite_dir.name, quiet=True).records(),
                     key=lambda r: (r.get("label", ""), r.get("seed", 0)))
    variants: dict = {}
    for record in records:
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
    report = suite_dir / "report"
    summary_md = report / "summary.md"
    return {
        "results": str(suite_dir),
        "report": str(report / "index.html") if (report / "index.html").is_file() else None,
        "runs": len(records),
        "failed_runs": sum(1 for r in records if r.get("status") != "ok"),
        "variants": variants,
        "summary_md": summary_md.read_text() if summary_md.is_file() else None,
    }


def engine_ratio(path: Path) -> dict:
    """The engine's throughput over the hand-written loop's, from pytest-benchmark's JSON
    (benchmarks/test_engine.py keeps its timings in ``extra_info``)."""
    document = _read_json(path)
    if not document:
        return {"benchmark_json": None, "ratio": None}
    for bench in document.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        if "ratio" in info:
            keep = ("target", "device", "placement", "precision", "image_size", "num_train", "batch_size", "encoder", "rounds")
            return {
                "benchmark_json": str(path),
                "ratio": info["ratio"],
                "meets_target": info["ratio"] >= info.get("target", 0),
                "engine_epoch_s_median": _median(info.get("engine") or []),
                "hand_epoch_s_median": _median(info.get("hand") or []),
                **{key: info.get(key) for key in keep},
            }
    return {"benchmark_json": str(path), "ratio": None, "read_error": "no benchmark with a ratio in extra_info"}


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
