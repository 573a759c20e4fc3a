"""Nothing computed is lost: a suite killed with SIGKILL resumes without redoing finished
runs; a second run on the same folder is refused; failures, NaN and out-of-memory are
recorded per run while the others finish."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pandas as pd

from segbench.cli import main

SUITE = """
name = "resume"
seeds = [0, 1]

[dataset]
name = "shapes"
image_size = 48
num_train = 32
num_val = 8

[model]
architecture = "unet"
decoder_channels = [16, 8, 8, 8, 8]

[train]
epochs = 3
batch_size = 8

[ablate]
"model.upsampler" = ["nearest", "bilinear"]
"""
QUALITY = ["miou_mean", "dice_mean", "pixel_accuracy_mean"]


def _records(output):
    return sorted(output.glob("resume/runs/*/seed-*/record.json"))


def _wait_for(predicate, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_kill_9_then_rerun_redoes_nothing_finished_and_matches_an_uninterrupted_run(tmp_path, write_suite, capsys):
    suite = write_suite(SUITE, "resume.toml")
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "segbench", "run", str(suite), "-o", str(killed), "-q"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert _wait_for(lambda: _records(killed)), "no run finished in time"
        # While it runs, a second run on the same folder is refused, touching nothing.
        assert main(["run", str(suite), "-o", str(killed), "-q"]) == 2
        assert "in use by another segbench run" in capsys.readouterr().err
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = {path: path.stat().st_mtime_ns for path in _records(killed)}
    assert 1 <= len(finished) < 4, "the kill should land between runs"
    for path in finished:
        json.loads(path.read_text())  # every record is whole

    assert main(["run", str(suite), "-o", str(killed), "-q"]) == 0
    assert len(_records(killed)) == 4
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items()), "a finished run was redone"

    uninterrupted = tmp_path / "uninterrupted"
    assert main(["run", str(suite), "-o", str(uninterrupted), "-q"]) == 0
    resumed = pd.read_csv(killed / "resume" / "report" / "summary.csv").set_index("variant_id")[QUALITY]
    expected = pd.read_csv(uninterrupted / "resume" / "report" / "summary.csv").set_index("variant_id")[QUALITY]
    pd.testing.assert_frame_equal(resumed.sort_index(), expected.sort_index())


FAILING_PLUGIN = '''
import torch
from segbench import hookimpl


class FailsInTraining(torch.nn.Module):
    """Cross-entropy on its first call (preflight's contract check), then ``fail``."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, logits, target):
        self.calls += 1
        return torch.nn.functional.cross_entropy(logits, target) if self.calls == 1 else self.fail(logits)


class Raising(FailsInTraining):
    def fail(self, logits):
        raise RuntimeError("boom from the loss")


class NotANumber(FailsInTraining):
    def fail(self, logits):
        return logits.sum() * float("nan")


class OutOfMemory(FailsInTraining):
    def fail(self, logits):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def raising(mode, num_classes, ignore_index):
    """Always raises."""
    return Raising()


def not_a_number(mode, num_classes, ignore_index):
    """Always NaN."""
    return NotANumber()


def out_of_memory(mode, num_classes, ignore_index):
    """Simulates running out of GPU memory."""
    return OutOfMemory()


@hookimpl
def segbench_losses(register):
    register.add_loss("raising", raising)
    register.add_loss("not_a_number", not_a_number)
    register.add_loss("out_of_memory", out_of_memory)
'''


def test_raise_nan_and_out_of_memory_are_recorded_while_the_others_finish(tmp_path, write_suite, capsys):
    plugin = tmp_path / "failing.py"
    plugin.write_text(FAILING_PLUGIN)
    text = SUITE.replace('"model.upsampler" = ["nearest", "bilinear"]', '"train.loss" = ["raising", "ce", "not_a_number", "out_of_memory"]')
    suite = write_suite(text.replace("seeds = [0, 1]", "seeds = [0]").replace("epochs = 3", "epochs = 1"), "resume.toml")
    assert main(["run", str(suite), "-p", str(plugin), "-o", str(tmp_path / "out"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "3 run(s) failed" in err and "boom from the loss" in err and "out of memory" in err
    records = {json.loads(p.read_text())["config"]["train"]["loss"]["name"]: json.loads(p.read_text()) for p in _records(tmp_path / "out")}
    assert records["ce"]["status"] == "ok" and 0 <= records["ce"]["metrics"]["miou"] <= 1
    assert records["raising"]["error"]["type"] == "RuntimeError"
    assert records["not_a_number"]["error"]["type"] == "NonFiniteLoss"
    assert records["out_of_memory"]["error"]["type"] == "OutOfMemoryError"
    assert "batch_size" in records["out_of_memory"]["error"]["hint"]


def test_fail_fast_stops_at_the_first_failure(tmp_path, write_suite, capsys):
    plugin = tmp_path / "failing.py"
    plugin.write_text(FAILING_PLUGIN)
    text = SUITE.replace('"model.upsampler" = ["nearest", "bilinear"]', '"train.loss" = ["raising", "ce"]')
    suite = write_suite(text.replace("seeds = [0, 1]", "seeds = [0]").replace("epochs = 3", "epochs = 1"), "resume.toml")
    assert main(["run", str(suite), "-p", str(plugin), "-o", str(tmp_path / "out"), "-q", "--fail-fast"]) == 1
    assert len(_records(tmp_path / "out")) == 1


def test_cost_fields_are_plausible(tmp_path, write_suite):
    from segbench.engine import build
    from segbench.plugins import load_catalogue
    from segbench.suite import load_suite

    suite_path = write_suite(SUITE.replace("seeds = [0, 1]", "seeds = [0]").replace("epochs = 3", "epochs = 1"), "resume.toml")
    assert main(["run", str(suite_path), "-o", str(tmp_path / "out"), "-q"]) == 0
    record = json.loads(_records(tmp_path / "out")[0].read_text())
    suite = load_suite(suite_path, load_catalogue)
    variant = next(v for v in suite.variants if v.id == record["variant_id"])
    model = build.build_model(suite.catalogue, variant.config["model"], len(record["classes"]))
    cost = record["cost"]
    assert cost["params"] == sum(p.numel() for p in model.parameters())
    assert cost["flops_per_image"] > cost["params"]  # every weight is used at least once per pixel row
    assert 0 < cost["latency_ms"] < 10_000 and cost["train_images_per_s"] > 0
    assert cost["peak_memory_mb"] > 100  # the process holds torch at least
    assert cost["image_size"] == [48, 48] and record["wall_seconds"] > cost["train_seconds"] > 0
