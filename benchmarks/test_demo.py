"""The default demo, ``segbench run suites/upsampling.toml``, timed as a new user runs it:
a fresh process, a fresh results folder, the data cache warm (as after the first
``segbench data prepare``). Reported:

- wall time (target: at most 300 s on 2 CPU cores) and peak RSS (target: at most 2 GB);
- the share of the wall time spent outside training (start-up, preflight, data,
  evaluation, cost, report; target: at most 10%), from the records' ``train_seconds``;
- the training throughput of its model (images/s), the physical limit of the budget;
- how many comparisons it decided (target: all of them).

It takes about 5 minutes; ``tests/test_suites.py`` checks the suite's configuration
against the budget without running it.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
WALL_TARGET_S = 300
RSS_TARGET_MB = 2048
OVERHEAD_TARGET = 0.10


def test_demo_budget(benchmark, tmp_path, shares, ratios):
    output = tmp_path / "results"
    subprocess.run([sys.executable, "-m", "segbench", "data", "prepare", str(ROOT / "suites" / "upsampling.toml"), "-q"], check=True,
                   stdout=subprocess.DEVNULL)

    def run():
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "segbench", "run", str(ROOT / "suites" / "upsampling.toml"), "-o", str(output), "-q"],
                       check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started

    benchmark.group = "demo"
    wall = benchmark.pedantic(run, rounds=1, iterations=1)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    records = [json.loads(p.read_text()) for p in output.glob("upsampling/runs/*/seed-*/record.json")]
    training = sum(r["cost"]["train_seconds"] for r in records)
    throughput = sum(r["cost"]["train_images_per_s"] for r in records) / len(records)
    summary = pd.read_csv(output / "upsampling" / "report" / "summary.csv")
    compared = summary[summary["verdict"] != "baseline"]
    decided = int((compared["verdict"] != "inconclusive").sum())
    shares.append(("demo: wall time outside training (target <= 10%)", 1 - training / wall))
    ratios.append((f"demo: wall time {wall:.0f} s, target {WALL_TARGET_S} s (ratio target / wall)", WALL_TARGET_S / wall, 1.0))
    ratios.append((f"demo: peak RSS {peak_mb:.0f} MB, target {RSS_TARGET_MB} MB (ratio target / peak)", RSS_TARGET_MB / peak_mb, 1.0))
    ratios.append((f"demo: {decided} of {len(compared)} comparisons decided; training images/s {throughput:.0f}", decided / len(compared), 1.0))
    baseline = summary[summary["verdict"] == "baseline"].iloc[0]
    ratios.append((f"demo: baseline mIoU {baseline['miou_mean']:.3f} (ratio to the 0.75 goal)", baseline["miou_mean"] / 0.75, 1.0))
