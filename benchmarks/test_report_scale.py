"""The report at scale: ``segbench report`` on 30, 300 and 3,000 records (10, 100 and 1,000
variants x 3 seeds), each a copy of a real record of the demo suite with its own variant,
metrics and costs, written by the real record writer (tests/synthetic_records.py).

Each report runs in a child process (one malloc arena, so that its peak repeats); its CPU
time (user + system) and peak RSS come from ``os.wait4``, the largest side of its images
from the PNG headers. For comparison, one ``segbench run`` of suites/smoke.toml (4 runs and
their report) is measured the same way. Targets (issue 24): at 3,000 records at most 20 s of
CPU on this machine, no image side over 4,000 px, the peak below that of a training run, and
a cost that grows linearly (the 3,000/300 and 300/30 ratios at most 10x: fixed costs, such as
imports, make them smaller). Each count is a row of the session's summary; the table in
docs/guide/benchmarks.md is made from them.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.synthetic_records import write_results

REPO = Path(__file__).resolve().parents[1]
COUNTS = (30, 300, 3000)
SEEDS = 3
CPU_TARGET_S = 20.0
SIDE_TARGET_PX = 4000
LINEAR = 10.0  # x10 the records: at most x10 the cost
BEFORE = {3000: {"cpu_s": 81.6, "peak_mb": 3802, "side_px": 198_330}}  # before the change, on this machine (2026-12-06, /usr/bin/time)
ENV = {**os.environ, "MALLOC_ARENA_MAX": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def measured_child(argv, cwd=None) -> dict:
    """Run ``argv`` and return its own CPU seconds (``os.wait4``), its own peak RSS in MB (the
    kernel's high-water mark VmHWM, read while it runs: wait4's ru_maxrss also takes in the
    children it starts, e.g. ``git``, and came out up to 120 MB above it) and its exit code."""
    with open(os.devnull, "wb") as sink, tempfile.TemporaryFile() as errors:  # a file: a full pipe would stall the child
        process = subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=sink, stderr=errors)
        peak_kb = 0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, _high_water_kb(process.pid))
            time.sleep(0.02)
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        error = errors.read().decode(errors="replace")
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "peak_mb": peak_kb / 1024, "returncode": process.returncode, "stderr": error}


def _high_water_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    except OSError:  # it ended meanwhile
        return 0


def largest_side(folder: Path) -> int:
    sides = [max(struct.unpack(">II", path.read_bytes()[16:24])) for path in folder.glob("*.png")]
    return max(sides, default=0)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """count -> the report's measurements (each drawn once: a report at 3,000 records takes seconds)."""
    found = {}
    for count in COUNTS:
        suite_dir = write_results(tmp_path_factory.mktemp(f"report{count}"), count // SEEDS, SEEDS)
        result = measured_child([sys.executable, "-m", "segbench", "report", str(suite_dir)])
        assert result["returncode"] == 0, result["stderr"][-2000:]
        found[count] = {**result, "side_px": largest_side(suite_dir / "report" / "plots")}
    return found


@pytest.fixture(scope="module")
def training_run(tmp_path_factory):
    """One ``segbench run`` of suites/smoke.toml: the peak a report should stay under."""
    result = measured_child([sys.executable, "-m", "segbench", "run", str(REPO / "suites" / "smoke.toml"), "-q"],
                            cwd=tmp_path_factory.mktemp("smoke"))
    assert result["returncode"] == 0, result["stderr"][-2000:]
    return result


def test_report_scale(benchmark, reports, training_run, ratios, shares):
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # the work is in the fixtures: one child process each
    for count, result in reports.items():
        shares.append((f"segbench report of {count:,} records: {result['cpu_s']:.1f} CPU-s, peak RSS {result['peak_mb']:,.0f} MB, "
                       f"largest image side {result['side_px']:,} px (share: CPU of the 20 s target)", result["cpu_s"] / CPU_TARGET_S))
    big, mid, small = (reports[count] for count in reversed(COUNTS))
    for name, (upper, lower) in {"3000/300": (big, mid), "300/30": (mid, small)}.items():
        ratios.append((f"report CPU growth {name} records", upper["cpu_s"] / lower["cpu_s"], None))
        ratios.append((f"report peak RSS growth {name} records", upper["peak_mb"] / lower["peak_mb"], None))
    ratios.append((f"report at 3,000 records: {big['cpu_s']:.1f} CPU-s, the target over it (before: {BEFORE[3000]['cpu_s']} s)",
                   CPU_TARGET_S / big["cpu_s"], 1.0))
    ratios.append((f"report at 3,000 records: largest image side {big['side_px']:,} px, the target over it "
                   f"(before: {BEFORE[3000]['side_px']:,} px)", SIDE_TARGET_PX / big["side_px"], 1.0))
    ratios.append((f"peak RSS of a smoke training run ({training_run['peak_mb']:,.0f} MB) over the report's at 3,000 records "
                   f"({big['peak_mb']:,.0f} MB; before: {BEFORE[3000]['peak_mb']:,} MB)", training_run["peak_mb"] / big["peak_mb"], 1.0))
    assert all(result["side_px"] <= SIDE_TARGET_PX for result in reports.values())
    assert big["cpu_s"] / mid["cpu_s"] <= LINEAR and mid["cpu_s"] / small["cpu_s"] <= LINEAR  # no worse than linear
