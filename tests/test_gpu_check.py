"""benchmarks/gpu_check.sh, the check a lent GPU runs (docs/gpu.md), exercised in its
``--cpu`` mode: the same parts at tiny sizes (about 30 s on 2 cores), and the one JSON
summary it writes. The GPU tests skip themselves here, so the tests part counts skips.

What only a GPU run would show is checked on a copy of the real work folder relabelled
as a healthy CUDA run, then with one fault planted at a time: each must make ``ok``
false with a problem that names it."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from conftest import CUDA_MISSING

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_summary  # noqa: E402 - benchmarks/ is not a package

H100 = {"type": "cuda", "name": "NVIDIA H100 80GB HBM3", "count": 1, "memory_gib": 79.1, "capability": "9.0", "bf16": True}
ENGINE_TARGET = 0.97
CUDA_LOADER = {"feed_ratio": 0.97, "feed_target": 0.9, "loader_share": 0.03, "loader_share_target": 0.1, "device": "cuda",
               "workers": 8, "crop": 256, "batch_size": 32}


@pytest.fixture(scope="module")
def cpu_check(tmp_path_factory):
    """The one real run of the script: (its process, the summary's path, the work folder)."""
    folder = tmp_path_factory.mktemp("gpu-check")
    out, work = folder / "out" / "gpu_check.json", folder / "work"
    # not as an xdist worker: pytest-benchmark in the script's own pytest would take itself for one and write no JSON
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_XDIST")}
    done = subprocess.run(["bash", str(SCRIPT), "--cpu", "--python", sys.executable, "--out", str(out), "--work", str(work)],
                          cwd=folder, capture_output=True, text=True, timeout=300, env=env)
    return done, out, work


@pytest.fixture(scope="module")
def summary(cpu_check):
    return json.loads(cpu_check[1].read_text())


def test_the_cpu_mode_runs_every_part_and_says_so(cpu_check, summary):
    done = cpu_check[0]
    assert summary["schema"] == gpu_summary.SCHEMA and summary["mode"] == "cpu"
    assert summary["setup"]["status"] == "ok" and summary["torch"] and summary["device"]["type"] == "cpu"
    assert set(summary["parts"]) == set(gpu_summary.PARTS) == {"tests", "suite", "engine_vs_raw", "loader"}
    for name, part in summary["parts"].items():
        assert 0 < part["wall_s"] < summary["wall_s"], name
        assert (part["status"], part["exit_code"]) == ("ok", 0), name
    assert summary["problems"] == [] and summary["ok"] is True
    assert done.returncode == (0 if summary["ok"] else 1), done.stdout[-4000:] + done.stderr[-2000:]
    assert done.stdout.splitlines()[-len(summary["problems"]) - 1:] == [
        f"gpu_check: {'ok' if summary['ok'] else 'FAILED'}; summary in {cpu_check[1]}",
        *(f"  - {problem}" for problem in summary["problems"])]
    assert summary["wall_s"] < 120


def test_the_loader_part_measures_the_feed_on_the_cpu(cpu_check, summary):
    loader = summary["parts"]["loader"]
    assert (loader["status"], loader["device"], loader["feed_target"], loader["loader_share_target"]) == ("ok", "cpu", 0, None)
    assert loader["feed_ratio"] > 0 and 0 <= loader["loader_share"] <= 1
    assert summary["ok"] is True and cpu_check[0].returncode == 0


def test_the_gpu_tests_skip_themselves_on_the_cpu(summary):
    tests = summary["parts"]["tests"]
    assert (tests["passed"], tests["failed"], tests["errors"]) == (0, 0, 0)
    assert tests["skipped"] >= 10 and tests["skip_reasons"] == {CUDA_MISSING: tests["skipped"]}


def test_the_suite_reports_each_variants_quality_and_cost_per_run(summary):
    suite = summary["parts"]["suite"]
    assert (suite["runs"], suite["expected_runs"], suite["failed_runs"]) == (4, 4, 0)
    assert set(suite["variants"]) == {"upsampler=bilinear", "upsampler=dysample"}
    for variant in suite["variants"].values():
        assert variant["seeds"] == [0, 1] and variant["status"] == ["ok", "ok"]
        assert all(0 <= value <= 1 for value in variant["miou"])
        assert variant["miou_mean"] == pytest.approx(sum(variant["miou"]) / 2)
        assert all(value > 0 for value in variant["peak_memory_mb"] + variant["latency_ms"] + variant["train_images_per_s"])
        assert variant["precision"] == ["fp32"] and variant["device"] == ["cpu"]
    assert "gpu-coco-small" in suite["summary_md"] and Path(suite["report"]).is_file()


def test_the_engine_is_timed_against_the_hand_loop(summary):
    engine = summary["parts"]["engine_vs_raw"]
    assert math.isfinite(engine["ratio"]) and engine["ratio"] > 0
    assert engine["device"] == "cpu" and engine["target"] == 0 and engine["meets_target"] is True
    assert engine["engine_epoch_s_median"] > 0 and engine["hand_epoch_s_median"] > 0


def test_a_summary_of_nothing_names_every_part_as_not_run(tmp_path):
    summary = gpu_summary.summarise(tmp_path, "gpu")
    assert summary["ok"] is False and summary["setup"]["status"] == "missing"
    assert summary["problems"] == ["setup: the set-up step wrote no env.json; no part ran"]
    assert {name: part["status"] for name, part in summary["parts"].items()} == dict.fromkeys(gpu_summary.PARTS, "not run")
    assert summary["parts"]["tests"]["passed"] is None and summary["parts"]["engine_vs_raw"]["ratio"] is None
    assert summary["parts"]["loader"]["feed_ratio"] is None


def test_a_bad_option_is_refused_with_the_usage():
    done = subprocess.run(["bash", str(SCRIPT), "--gpus", "2"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "unknown option '--gpus'" in done.stderr and "--download-wheels DIR" in done.stderr


# The real work folder, copied and edited: a healthy CUDA run, then one fault at a time.

@pytest.fixture
def cuda_work(cpu_check, tmp_path):
    """A copy of the cpu check's work folder, relabelled as a healthy run on an H100."""
    work = copy_work(cpu_check[2], tmp_path)
    edit_json(work / "env.json", lambda env: env.update(device=H100))
    for path in record_paths(work):
        edit_json(path, lambda record: record.update(device="cuda:0", precision="bf16"))  # amp = "auto" on a bf16 device
    edit_junit(work, unskip)
    edit_engine(work, ratio=1.01, target=ENGINE_TARGET)
    write_loader(work, CUDA_LOADER)
    return work


@pytest.fixture
def cpu_work(cpu_check, tmp_path):
    return copy_work(cpu_check[2], tmp_path)


def copy_work(work: Path, tmp_path: Path) -> Path:
    return shutil.copytree(work, tmp_path / "work", ignore=shutil.ignore_patterns("cache", "coco"))


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))  # NaN as NaN, as a careless writer would


def record_paths(work: Path) -> list:
    return sorted((work / "results").glob("*/runs/*/seed-*/record.json"))


def first_record(work: Path) -> tuple:
    path = record_paths(work)[0]
    return path, json.loads(path.read_text())


def run_name(record: dict) -> str:
    return f"{record['label']} seed {record['seed']}"


def edit_junit(work: Path, change) -> None:
    """``change(cases)`` edits the JUnit XML's test cases in place."""
    tree = ElementTree.parse(work / "gpu-tests.xml")
    change(list(tree.getroot().iter("testcase")))
    tree.write(work / "gpu-tests.xml")


def unskip(cases) -> None:
    for case in cases:
        for skipped in case.findall("skipped"):
            case.remove(skipped)


def edit_engine(work: Path, **info) -> None:
    edit_json(work / "engine-bench.json", lambda document: document["benchmarks"][0]["extra_info"].update(info))


def write_loader(work: Path, info: dict) -> None:
    bench = {"name": "test_feed_streaming_vs_memory", "extra_info": info}
    (work / "loader-bench.json").write_text(json.dumps({"benchmarks": [bench]}))


def set_part(work: Path, name: str, status: str, exit_code: int) -> None:
    rows = [row for row in (work / "parts.tsv").read_text().splitlines() if not row.startswith(f"{name}\t")]
    (work / "parts.tsv").write_text("\n".join([*rows, f"{name}\t{status}\t{exit_code}\t1.0"]) + "\n")


# Each plants one fault and returns a pattern the problem naming it must match.

def skip_every_gpu_test(work):
    def skip(cases):
        for case in cases:
            ElementTree.SubElement(case, "skipped", message=CUDA_MISSING)

    edit_junit(work, skip)
    return r"tests: (\d+) of \1 gpu tests skipped \(\1 because needs CUDA"


def fail_a_gpu_test(work):
    edit_junit(work, lambda cases: ElementTree.SubElement(cases[0], "failure", message="assert 0.3 < 0.02"))
    set_part(work, "tests", "failed", 1)
    return r"tests: 1 failed and 0 errors among \d+ gpu tests \(tests\.gpu\.\w+::"


def train_a_run_in_fp32(work):
    path, record = first_record(work)
    edit_json(path, lambda record: record.update(precision="fp32"))
    return re.escape(f"suite: run {run_name(record)} trained in fp32 on cuda:0; the suite asked for amp=auto, "
                     "which is bf16 on this device")


def train_a_run_on_the_cpu(work):
    path, record = first_record(work)
    edit_json(path, lambda record: record.update(device="cpu"))
    return re.escape(f"suite: run {run_name(record)} trained on cpu, not on the check's cuda device")


def delete_a_record(work):
    path, record = first_record(work)
    path.unlink()
    return re.escape(f"suite: 3 of 4 expected records (variant {run_name(record)} missing)")


def give_a_run_a_nan_miou(work):
    path, record = first_record(work)
    edit_json(path, lambda record: record["metrics"].update(miou=math.nan))
    return re.escape(f"suite: 3 of 4 expected records (variant {run_name(record)} damaged: its record ") + r".*'miou' is nan"


def fail_a_run(work):
    path, record = first_record(work)
    edit_json(path, lambda record: record.update(status="failed", error={"type": "OutOfMemoryError", "message": "CUDA out of memory"}))
    return re.escape(f"suite: run {run_name(record)} failed (OutOfMemoryError: CUDA out of memory)")


def slow_the_engine(work):
    edit_engine(work, ratio=0.41 * ENGINE_TARGET)
    return r"engine_vs_raw: ratio 0\.398 is below the target 0\.97"


def starve_the_steps(work):
    write_loader(work, {**CUDA_LOADER, "feed_ratio": 0.6})
    return r"loader: feed ratio 0\.6 is below the target 0\.9"


def keep_the_steps_waiting(work):
    write_loader(work, {**CUDA_LOADER, "loader_share": 0.35})
    return r"loader: loader share 0\.35 is above the target 0\.1"


FAULTS = [skip_every_gpu_test, train_a_run_in_fp32, train_a_run_on_the_cpu, slow_the_engine, delete_a_record,
          give_a_run_a_nan_miou, fail_a_run, starve_the_steps, keep_the_steps_waiting, fail_a_gpu_test]
RUN_FAULTS = [delete_a_record, give_a_run_a_nan_miou, fail_a_run]  # faults whatever the device


def assert_named(summary: dict, pattern: str) -> None:
    """``ok`` is false, a problem matches ``pattern``, and every problem is the planted part's."""
    part = pattern.split(":")[0]
    assert summary["ok"] is False
    assert any(re.search(pattern, problem) for problem in summary["problems"]), summary["problems"]
    assert all(problem.startswith(f"{part}: ") for problem in summary["problems"]), summary["problems"]


def test_a_healthy_cuda_run_is_ok(cuda_work):
    summary = gpu_summary.summarise(cuda_work, "gpu")
    assert (summary["ok"], summary["problems"]) == (True, [])
    assert summary["parts"]["tests"]["passed"] >= 10 and summary["parts"]["tests"]["skipped"] == 0
    assert summary["parts"]["suite"]["variants"]["upsampler=bilinear"]["precision"] == ["bf16"]
    loader = summary["parts"]["loader"]
    assert loader.pop("wall_s") > 0
    assert loader == {"status": "ok", "exit_code": 0, "benchmark_json": str(cuda_work / "loader-bench.json"), **CUDA_LOADER}


@pytest.mark.parametrize("plant", FAULTS, ids=lambda plant: plant.__name__)
def test_each_fault_planted_in_a_cuda_run_fails_the_check_naming_it(cuda_work, plant):
    pattern = plant(cuda_work)
    assert_named(gpu_summary.summarise(cuda_work, "gpu"), pattern)


def test_the_cpu_mode_expects_skipped_gpu_tests_fp32_and_the_cpu(cpu_work):
    summary = gpu_summary.summarise(cpu_work, "cpu")
    assert (summary["ok"], summary["problems"]) == (True, [])
    assert summary["parts"]["tests"]["skipped"] >= 10


@pytest.mark.parametrize("plant", RUN_FAULTS, ids=lambda plant: plant.__name__)
def test_a_lost_or_failed_run_fails_the_cpu_mode_too(cpu_work, plant):
    pattern = plant(cpu_work)
    assert_named(gpu_summary.summarise(cpu_work, "cpu"), pattern)


def test_the_cpu_run_on_a_cuda_check_is_a_problem(cpu_work):
    """The same folder judged as a GPU check: a CPU device, skipped tests, fp32 runs."""
    summary = gpu_summary.summarise(cpu_work, "gpu")
    skipped = summary["parts"]["tests"]["skipped"]
    assert summary["problems"] == ["setup: the device is cpu, not CUDA",
                                   f"tests: {skipped} of {skipped} gpu tests skipped ({skipped} because {CUDA_MISSING})"]


def test_the_summary_prints_its_problems_and_exits_1(cuda_work, tmp_path, capsys):
    out = tmp_path / "out.json"
    assert gpu_summary.main([str(cuda_work), "--mode", "gpu", "--out", str(out)]) == 0
    slow_the_engine(cuda_work)
    assert gpu_summary.main([str(cuda_work), "--mode", "gpu", "--out", str(out)]) == 1
    problems = json.loads(out.read_text())["problems"]
    assert capsys.readouterr().out.splitlines()[-2:] == [f"gpu_check: FAILED; summary in {out}", f"  - {problems[0]}"]


@pytest.mark.parametrize("amp", ["auto", "off", "bf16", "fp16"])
@pytest.mark.parametrize("bf16", [True, False])
def test_the_precision_asked_is_the_engines(amp, bf16, monkeypatch):
    """The summary reads the device from env.json; the engine asks torch: the same rule."""
    import torch

    from segbench.engine.precision import DTYPES, Precision, resolve_amp

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    for device in ("cuda", "cpu"):
        engine = Precision(device, DTYPES.get(resolve_amp(amp, torch.device(device))), scaler=None).name
        assert gpu_summary.precision_asked(amp, {"type": device, "bf16": bf16}) == engine, device
