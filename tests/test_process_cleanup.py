"""The process executor's workers do not outlive segbench: stopped (SIGTERM, as CI
cancellation, `timeout` and Slurm send it; SIGHUP, a closed terminal) or killed (SIGKILL),
the driver takes its workers, and the processes they started, with it within a few seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads process states from /proc")

# A loss that never returns in a worker, after starting a child of its own (as a
# DataLoader starts its workers); each worker leaves "<its pid>-<its child's pid>" in
# $HANGS_PIDS. Outside a worker (the driver's preflight) it is cross-entropy.
HANGING_LOSS = '''
import multiprocessing
import os
import subprocess
import time
from pathlib import Path

import torch

from segbench import hookimpl


class Hangs(torch.nn.Module):
    def forward(self, logits, target):
        if multiprocessing.current_process().name == "segbench-worker":
            child = subprocess.Popen(["sleep", "600"])
            Path(os.environ["HANGS_PIDS"], f"{os.getpid()}-{child.pid}").touch()
            while True:
                time.sleep(1)
        return torch.nn.functional.cross_entropy(logits, target)


@hookimpl
def segbench_losses(register):
    register.add_loss("hangs", lambda mode, num_classes, ignore_index: Hangs())
'''

# One run that finishes, then two that hang: one in each of the 2 workers.
SUITE = """
name = "cleanup"
seeds = [0]
plugins = ["hangs.py"]

[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = 4

[model]
architecture = "unet"
encoder = "lite"
decoder_channels = [8, 8, 8, 8, 8]

[train]
epochs = 1
batch_size = 4

[[variants]]
label = "finishes"
train.loss = "ce"

[[variants]]
label = "hangs-a"
train.loss = "hangs"

[[variants]]
label = "hangs-b"
train.loss = "hangs"
model.upsampler = "bilinear"
"""

START_TIMEOUT_S = 90.0  # for the driver's preflight, the workers' start and the first run
GONE_WITHIN_S = 5.0


def alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (dead, not yet reaped by whoever adopted it) does not."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def stderr_text(folder) -> str:
    return (folder / "stderr.txt").read_text()


def wait_for(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def hanging_driver(tmp_path):
    """`segbench run` of SUITE with 2 process workers, once both are stuck in their runs;
    yields (driver, the pids of the workers and of their children, output folder)."""
    (tmp_path / "hangs.py").write_text(HANGING_LOSS)
    (tmp_path / "cleanup.toml").write_text(textwrap.dedent(SUITE))
    pids_folder = tmp_path / "pids"
    pids_folder.mkdir()
    stderr = (tmp_path / "stderr.txt").open("w")
    env = dict(os.environ, HANGS_PIDS=str(pids_folder),
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    driver = subprocess.Popen(
        [sys.executable, "-m", "segbench", "run", str(tmp_path / "cleanup.toml"), "-o", str(tmp_path / "out"), "-q",
         "--executor", "process", "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=stderr)  # a file: a stray worker would hold a pipe open
    pids = []
    try:
        wait_for(lambda: len(list(pids_folder.iterdir())) == 2 or driver.poll() is not None, START_TIMEOUT_S, "both workers to hang")
        assert driver.poll() is None, f"the driver ended first ({driver.returncode}): {stderr_text(tmp_path)}"
        pids = [int(pid) for entry in pids_folder.iterdir() for pid in entry.name.split("-")]
        assert all(alive(pid) for pid in pids)
        yield driver, pids, tmp_path / "out"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        stderr.close()
        for pid in pids:  # never leave a stray process behind a failed test
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_ends_every_worker_and_keeps_the_finished_run(hanging_driver, signum):
    driver, pids, out = hanging_driver
    driver.send_signal(signum)
    driver.wait(timeout=GONE_WITHIN_S)
    stderr = stderr_text(out.parent)
    wait_for(lambda: not any(alive(pid) for pid in pids), GONE_WITHIN_S, f"workers and their children {pids} to end")
    assert driver.returncode == 128 + signum, stderr
    assert "terminated: 1 finished runs kept" in stderr
    records = [json.loads(path.read_text()) for path in out.glob("cleanup/runs/*/seed-*/record.json")]
    assert [(record["label"], record["status"]) for record in records] == [("finishes", "ok")]


def test_sigkill_of_the_driver_ends_every_worker(hanging_driver):
    driver, pids, _ = hanging_driver
    driver.kill()  # nothing runs in the driver: the workers must notice on their own
    driver.wait(timeout=GONE_WITHIN_S)
    wait_for(lambda: not any(alive(pid) for pid in pids), GONE_WITHIN_S, f"workers and their children {pids} to end")
