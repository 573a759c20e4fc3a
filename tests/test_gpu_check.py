"""benchmarks/gpu_check.sh, the check a lent GPU runs (docs/gpu.md), exercised in its
``--cpu`` mode: the same parts at tiny sizes (about 30 s on 2 cores), and the one JSON
summary it writes. The GPU tests skip themselves here, so the tests part counts skips."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CUDA_MISSING

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_summary  # noqa: E402 - benchmarks/ is not a package


@pytest.fixture(scope="module")
def cpu_check(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpu-check")
    out = folder / "out" / "gpu_check.json"
    done = subprocess.run(["bash", str(SCRIPT), "--cpu", "--python", sys.executable, "--out", str(out), "--work", str(folder / "work")],
                          cwd=folder, capture_output=True, text=True, timeout=300)
    return done, out


def test_the_cpu_mode_runs_every_part_and_says_so(cpu_check):
    done, out = cpu_check
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["schema"] == gpu_summary.SCHEMA and summary["mode"] == "cpu" and summary["ok"] is True
    assert summary["setup"]["status"] == "ok" and summary["torch"] and summary["device"]["type"] == "cpu"
    assert set(summary["parts"]) == {"tests", "suite", "engine_vs_raw"}
    for name, part in summary["parts"].items():
        assert (part["status"], part["exit_code"]) == ("ok", 0), name
        assert 0 < part["wall_s"] < summary["wall_s"], name
    assert summary["wall_s"] < 120


def test_the_gpu_tests_skip_themselves_on_the_cpu(cpu_check):
    tests = json.loads(cpu_check[1].read_text())["parts"]["tests"]
    assert (tests["passed"], tests["failed"], tests["errors"]) == (0, 0, 0)
    assert tests["skipped"] >= 10 and tests["skip_reasons"] == {CUDA_MISSING: tests["skipped"]}


def test_the_suite_reports_each_variants_quality_and_cost_per_run(cpu_check):
    suite = json.loads(cpu_check[1].read_text())["parts"]["suite"]
    assert (suite["runs"], suite["failed_runs"]) == (4, 0)
    assert set(suite["variants"]) == {"upsampler=bilinear", "upsampler=dysample"}
    for variant in suite["variants"].values():
        assert variant["seeds"] == [0, 1] and variant["status"] == ["ok", "ok"]
        assert all(0 <= value <= 1 for value in variant["miou"])
        assert variant["miou_mean"] == pytest.approx(sum(variant["miou"]) / 2)
        assert all(value > 0 for value in variant["peak_memory_mb"] + variant["latency_ms"] + variant["train_images_per_s"])
        assert variant["precision"] == ["fp32"] and variant["device"] == ["cpu"]
    assert "gpu-coco-small" in suite["summary_md"] and Path(suite["report"]).is_file()


def test_the_engine_is_timed_against_the_hand_loop(cpu_check):
    engine = json.loads(cpu_check[1].read_text())["parts"]["engine_vs_raw"]
    assert math.isfinite(engine["ratio"]) and engine["ratio"] > 0
    assert engine["device"] == "cpu" and engine["target"] == 0 and engine["meets_target"] is True
    assert engine["engine_epoch_s_median"] > 0 and engine["hand_epoch_s_median"] > 0


def test_a_summary_of_nothing_names_every_part_as_not_run(tmp_path):
    summary = gpu_summary.summarise(tmp_path, "gpu")
    assert summary["ok"] is False and summary["setup"]["status"] == "missing"
    assert {name: part["status"] for name, part in summary["parts"].items()} == dict.fromkeys(gpu_summary.PARTS, "not run")
    assert summary["parts"]["tests"]["passed"] is None and summary["parts"]["engine_vs_raw"]["ratio"] is None


def test_a_bad_option_is_refused_with_the_usage():
    done = subprocess.run(["bash", str(SCRIPT), "--gpus", "2"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "unknown option '--gpus'" in done.stderr and "--download-wheels DIR" in done.stderr
