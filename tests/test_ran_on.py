"""Where a run ran: every record names its host, executor, device and, under Ray or Slurm,
its node or job; a report whose cost figures come from several devices says so and splits
them by device."""

from __future__ import annotations

import socket
import sys
import types

import pytest
from battery.harness import tiny

from segbench.cli import main
from segbench.environment import cpu_model, ran_on
from segbench.records import read_record
from segbench.report import write_report


def test_a_record_says_which_host_executor_and_device_ran_it(tmp_path):
    (tmp_path / "suite.toml").write_text(tiny(seeds="[0]"))
    assert main(["run", str(tmp_path / "suite.toml"), "-o", str(tmp_path / "out"), "-q"]) == 0
    paths = sorted(tmp_path.glob("out/*/runs/*/seed-*/record.json"))
    assert len(paths) == 2
    for path in paths:
        record = read_record(path)  # the new field reads back through the record's own checks
        assert record["device"] == "cpu"
        assert record["ran_on"] == {"hostname": socket.gethostname(), "device_name": cpu_model(), "executor": "local"}


def test_a_slurm_array_task_and_a_ray_node_are_named(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "1001")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "1000")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    fake_ray = types.SimpleNamespace(is_initialized=lambda: True,
                                     get_runtime_context=lambda: types.SimpleNamespace(get_node_id=lambda: "node-abc"))
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    place = ran_on("cpu")
    assert (place["slurm_job_id"], place["ray_node_id"]) == ("1000_7", "node-abc")
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    fake_ray.is_initialized = lambda: False  # imported but not started: no node
    place = ran_on("cpu")
    assert place["slurm_job_id"] == "1001" and "ray_node_id" not in place


def test_without_ray_or_slurm_no_node_or_job_is_named_and_ray_is_not_imported(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    place = ran_on(None)
    assert place == {"hostname": socket.gethostname(), "device_name": None}
    assert "ray" not in sys.modules


def _record(variant_id, seed, miou, device, latency):
    return {"variant_id": variant_id, "label": f"v{variant_id}", "seed": seed, "status": "ok", "factors": {},
            "wall_seconds": 1.0, "curves": {"epoch": [1], "miou": [miou]}, "metrics": {"miou": miou},
            "cost": {"params": 10, "latency_ms": latency}, "ran_on": {"hostname": "h", "executor": "ray", "device_name": device}}


META = {"name": "s", "description": "", "path": "s.toml", "text": "", "baseline_id": "a", "variant_order": ["a", "b"],
        "primary": "miou", "metrics": ["miou"]}


def test_costs_from_two_devices_are_noted_and_split_by_device(tmp_path):
    records = [_record("a", 0, 0.5, "NVIDIA H100", 2.0), _record("a", 1, 0.51, "Intel Xeon", 40.0),
               _record("b", 0, 0.6, "NVIDIA H100", 3.0), _record("b", 1, 0.61, "NVIDIA H100", 5.0)]
    report = write_report(records, META, tmp_path)
    markdown = (report["dir"] / "summary.md").read_text()
    assert "cost figures come from 2 devices (NVIDIA H100: 3 run(s); Intel Xeon: 1 run(s))" in markdown
    assert "### Cost by device" in markdown
    assert "| va | NVIDIA H100 | 1 | 2.0000 |" in markdown and "| va | Intel Xeon | 1 | 40.0 |" in markdown
    assert "| vb | NVIDIA H100 | 2 | 4.0000 |" in markdown  # two runs on one device: their mean
    assert "cost figures come from 2 devices" in report["text"]  # the terminal's findings too
    assert (report["dir"] / "cost_by_device.csv").exists()
    assert list(report["runs"]["device"]) == ["NVIDIA H100", "Intel Xeon", "NVIDIA H100", "NVIDIA H100"]


@pytest.mark.parametrize("devices", [("NVIDIA H100", "NVIDIA H100"), (None, None)])
def test_costs_from_one_device_or_old_records_get_no_note(tmp_path, devices):
    records = [_record("a", 0, 0.5, devices[0], 2.0), _record("b", 0, 0.6, devices[1], 3.0)]
    if devices[0] is None:
        for record in records:
            del record["ran_on"]  # written before segbench recorded it
    report = write_report(records, META, tmp_path)
    markdown = (report["dir"] / "summary.md").read_text()
    assert "devices" not in markdown.split("###")[0] and "Cost by device" not in markdown
    assert not (report["dir"] / "cost_by_device.csv").exists()


def test_a_cuda_device_that_cannot_be_named_leaves_the_name_out_not_the_record(monkeypatch):
    import torch

    def broken(device):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(torch.cuda, "get_device_name", broken)
    assert ran_on("cuda:0")["device_name"] is None


def test_a_cuda_run_names_its_gpu_not_the_cpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"Fake GPU {torch.device(device).index}")
    assert ran_on("cuda:1")["device_name"] == "Fake GPU 1"
