"""The Slurm executor (segbench.executors.slurm) through submitit's local executor, which
runs each array task as processes on this machine: the local executor's numbers, a task
that dies becomes a failed record the next run redoes, close() and SIGTERM cancel the
tasks, bad options exit 2 before anything is submitted. The tests marked ``slurm`` run
against a real Slurm (tests/slurm/start_local_slurm.sh starts one on this machine)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from battery.harness import tiny

from segbench.cli import main
from segbench.errors import SegbenchError
from segbench.plugins import load_catalogue
from segbench.suite import load_suite
from segbench.testing import ExecutorContract

pytest.importorskip("submitit", reason="the Slurm executor needs submitit (pip install 'segbench[slurm]')")

from segbench.executors.slurm import SlurmExecutor, squeue_states, time_minutes

COMPUTED = ("metrics", "curves", "per_class", "per_image")  # what a run computes, compared bit for bit
LOCAL = ["--executor", "slurm", "--slurm-cluster", "local"]
# A loss that kills its own process (as the OOM killer, a lost node or a hard time limit
# would) the first time it runs in a task, then trains as cross-entropy: the second
# `segbench run` works. The preflight (in the driver's own process) is left alone.
KILLER = '''
import os
import signal
from pathlib import Path

import torch.nn.functional as F

from segbench import hookimpl


def killer(mode, num_classes, ignore_index, *, marker: str = ""):
    def loss(logits, target):
        if os.environ.get("SUBMITIT_EXECUTOR") and not Path(marker).exists():
            Path(marker).write_text("killed once")
            os.kill(os.getpid(), signal.SIGKILL)
        return F.cross_entropy(logits, target, ignore_index=ignore_index)
    return loss


@hookimpl
def segbench_losses(register):
    register.add_loss("killer", killer)
'''
HANGER = '''
import os
import time

import torch.nn.functional as F

from segbench import hookimpl


def hanger(mode, num_classes, ignore_index):
    def loss(logits, target):
        while os.environ.get("SUBMITIT_EXECUTOR"):  # in a task; the preflight passes
            time.sleep(0.05)
        return F.cross_entropy(logits, target, ignore_index=ignore_index)
    return loss


@hookimpl
def segbench_losses(register):
    register.add_loss("hanger", hanger)
'''


def _records(output):
    return {(r["variant_id"], r["seed"]): r for r in (json.loads(p.read_text()) for p in output.glob("*/runs/*/seed-*/record.json"))}


def _suite(tmp_path, name="tiny.toml", ablate=None):
    """TINY with one seed; ``ablate``: the [ablate] line in place of its two upsamplers."""
    path = tmp_path / name
    text = tiny(seeds="[0]")
    path.write_text(text.replace('"model.upsampler" = ["nearest", "bilinear"]', ablate) if ablate else text)
    return path


def _plugin(tmp_path, text, name):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    return path


def _processes_mentioning(text) -> list:
    """The live processes whose command line holds ``text`` (a test's own folder)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace") and int(cmdline.parent.name) != os.getpid():
                state = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    found.append(int(cmdline.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def test_a_tiny_suite_gives_the_local_executor_s_records_bit_for_bit(tmp_path):
    """Item 3: the same runs under --executor local and as submitit tasks, records equal in
    every computed number; each task's log names its run, and the pickles are cleared."""
    suite = _suite(tmp_path)
    assert main(["run", str(suite), "-o", str(tmp_path / "local"), "-q"]) == 0
    assert main(["run", str(suite), "-o", str(tmp_path / "slurm"), "-q", *LOCAL]) == 0
    local, slurm = _records(tmp_path / "local"), _records(tmp_path / "slurm")
    assert local.keys() == slurm.keys() and len(slurm) == 2
    for key, record in slurm.items():
        assert record["status"] == local[key]["status"] == "ok"
        for field in COMPUTED:
            assert record[field] == local[key][field], f"{field} of {key} differs between local and slurm"
        assert record["ran_on"]["executor"] == "slurm" and record["environment"]["torch_threads"] == 1
    jobs = tmp_path / "slurm" / "tiny" / "slurm"
    logs = sorted(path.read_text() for path in jobs.glob("*_log.out"))
    assert len(logs) == 2 and all("segbench: upsampler=" in log and "seed=0 of suite file" in log for log in logs)
    assert not list(jobs.glob("*.pkl"))  # each record was written by the runner; its pickle is gone


def test_a_killed_task_is_a_failed_record_naming_its_job_that_the_next_run_redoes(tmp_path, capsys):
    marker = tmp_path / "killed-once"
    plugin = _plugin(tmp_path, KILLER, "killer_loss")
    suite = _suite(tmp_path, ablate=f'"train.loss" = ["ce", {{ name = "killer", marker = "{marker}" }}]')
    output = tmp_path / "out"
    assert main(["run", str(suite), "-o", str(output), "-q", "-p", str(plugin), *LOCAL]) == 1
    first = _records(output)
    failed = [record for record in first.values() if record["status"] == "failed"]
    assert marker.exists() and len(failed) == 1 and failed[0]["label"].startswith("loss=killer"), first
    error = failed[0]["error"]
    log = error["message"].split("log: ")[1].rstrip(")")
    assert error["type"] == "SlurmJobEnded" and "submitit local job " in error["message"] and "ended without a record (state" in error["message"]
    assert Path(log).is_file() and log.startswith(str(output / "tiny" / "slurm")), error
    assert "next `segbench run` redoes it" in error["hint"]
    assert "seed 0: SlurmJobEnded: submitit local job" in capsys.readouterr().err
    kept = {key: record["finished_at"] for key, record in first.items() if record["status"] == "ok"}

    assert main(["run", str(suite), "-o", str(output), "-q", "-p", str(plugin), *LOCAL]) == 0
    second = _records(output)
    assert all(record["status"] == "ok" for record in second.values()) and len(second) == len(first) == 2
    assert {key: second[key]["finished_at"] for key in kept} == kept  # the finished runs were not run again


UNLOADABLE = '''
import os

from segbench import hookimpl

if os.environ.get("SUBMITIT_EXECUTOR"):  # only in a task: as a node without the plugin's dependencies
    raise RuntimeError("planted: this node cannot import the plugin")


@hookimpl
def segbench_losses(register):
    pass
'''


def test_a_task_that_raises_outside_the_run_is_a_failed_record_with_the_cause(tmp_path):
    plugin = _plugin(tmp_path, UNLOADABLE, "unloadable")
    suite = _suite(tmp_path, ablate='"model.upsampler" = ["nearest"]')
    output = tmp_path / "out"
    assert main(["run", str(suite), "-o", str(output), "-q", "-p", str(plugin), *LOCAL]) == 1
    (record,) = _records(output).values()
    error = record["error"]
    assert record["status"] == "failed" and error["type"] == "SlurmTaskRaised", error
    assert "raised outside the run: " in error["message"] and "planted: this node cannot import the plugin" in error["message"]
    assert "Traceback" in error["traceback"] and "log: " in error["message"]


def _wait_for_log(folder, text, limit_s=60):
    give_up = time.monotonic() + limit_s
    while time.monotonic() < give_up:
        if any(text in path.read_text(errors="replace") for path in folder.glob("*_log.out")):
            return
        time.sleep(0.2)
    raise AssertionError(f"no task log in {folder} says {text!r} after {limit_s} s")


def _gone(text, limit_s=10) -> list:
    give_up = time.monotonic() + limit_s
    while (left := _processes_mentioning(text)) and time.monotonic() < give_up:
        time.sleep(0.2)
    return left


HANGS = '"train.loss" = ["hanger"]'


def test_close_cancels_the_tasks_not_read_yet(tmp_path):
    """Ctrl-C or --fail-fast: the runner calls close() while a task runs; no process of it
    is left, and the reading ends."""
    plugin = _plugin(tmp_path, HANGER, "hanger_loss")
    suite = load_suite(_suite(tmp_path, ablate=HANGS), load_catalogue, extra_plugins=[str(plugin)])
    executor = SlurmExecutor(cluster="local")
    executor.use_results_folder(tmp_path / "results" / "tiny")
    hangs = suite.variants[0]
    returned = []
    reader = threading.Thread(target=lambda: returned.extend(executor.records(suite, [(hangs, 0)], tmp_path / "cache")), daemon=True)
    reader.start()
    _wait_for_log(tmp_path / "results" / "tiny" / "slurm", "segbench: loss=hanger seed=0")
    assert _processes_mentioning(str(tmp_path)), "the hanging task should run before close()"
    executor.close()
    assert not _gone(str(tmp_path)), "close() returned, but a process of the hanging task still runs"
    reader.join(30)
    assert not reader.is_alive() and [r["status"] for r in returned] == ["failed"]


def test_sigterm_of_the_driver_cancels_its_tasks(tmp_path):
    """Item 6: `timeout`, CI cancellation and Slurm itself send SIGTERM to segbench run."""
    plugin = _plugin(tmp_path, HANGER, "hanger_loss")
    suite = _suite(tmp_path, ablate=HANGS)
    output = tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-m", "segbench", "run", str(suite), "-o", str(output), "-q", "-p", str(plugin), *LOCAL],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_log(output / "tiny" / "slurm", "segbench: loss=hanger seed=0", limit_s=120)
        driver.send_signal(signal.SIGTERM)
        _, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 143 and "segbench: terminated" in err, err
    assert not _gone(str(tmp_path)), "segbench run ended on SIGTERM, but a process of its Slurm task still runs"


class TestSlurmContract(ExecutorContract):
    """The executor contract, with submitit's local executor (--segbench-contracts builds
    it with its defaults: auto, which is Slurm where srun exists)."""

    name = "slurm"
    options = {"slurm_cluster": "local"}  # noqa: RUF012 - the contract reads it as the docs show


# --- bad input: exit 2 before anything is submitted -----------------------------------


def _refused(capsys, tmp_path, *options):
    suite = _suite(tmp_path)
    output = tmp_path / "out"
    code = main(["run", str(suite), "-o", str(output), "-q", "--executor", "slurm", *options])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code == 2, err
    assert not (output / "tiny" / "slurm").exists() and not list(output.glob("*/runs/*/seed-*/record.json"))  # nothing went out
    return err


def test_without_submitit_the_install_hint_is_given(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if not installed: import submitit raises ImportError
    err = _refused(capsys, tmp_path, "--slurm-cluster", "local")
    assert "--executor slurm needs submitit, which is not installed" in err and "pip install 'segbench[slurm]'" in err


STAND_IN_SBATCH = """#!/bin/sh
echo "$@" > "$(dirname "$0")/asked"
echo "sbatch: error: invalid partition specified: nope" >&2
echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2
exit 1
"""


def test_an_option_slurm_refuses_is_named_with_slurm_s_words(tmp_path, capsys, monkeypatch):
    """sbatch --test-only answers for Slurm; here a stand-in sbatch refuses the partition."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(STAND_IN_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    err = _refused(capsys, tmp_path, "--slurm-cluster", "slurm", "--slurm-partition", "nope", "--slurm-time", "1:30:00")
    assert "Slurm refuses the job options --slurm-time 1:30:00 (sbatch --time=90), --slurm-partition nope (sbatch --partition=nope)" in err
    assert "sbatch: error: invalid partition specified: nope" in err
    assert (bin_dir / "asked").read_text().split() == ["--test-only", "--time=90", "--partition=nope", "--wrap=true"]


UNREACHABLE_SBATCH = """#!/bin/sh
echo "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)" >&2
exit 1
"""


def test_a_slurm_controller_that_does_not_answer_is_named_as_such(tmp_path, capsys, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(UNREACHABLE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    err = _refused(capsys, tmp_path, "--slurm-cluster", "slurm")
    assert "sbatch cannot reach the Slurm controller (sbatch: error: Batch job submission failed: Unable to contact slurm" in err
    assert "is slurmctld up (sinfo)?" in err


def test_slurm_asked_for_where_there_is_no_sbatch_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    err = _refused(capsys, tmp_path, "--slurm-cluster", "slurm")
    assert "--slurm-cluster slurm: sbatch is not on PATH here" in err


@pytest.mark.parametrize("options, says", [
    (["--env", "SEGBENCH_TEST_SURELY_UNSET_NAME"], "--env SEGBENCH_TEST_SURELY_UNSET_NAME: not set in this environment"),
    (["--slurm-time", "soon"], "--slurm-time 'soon': expected minutes (90) or Slurm's time format"),
    (["--slurm-gpus", "-1"], "--slurm-gpus: expected an integer >= 0, got -1"),
    (["--slurm-cluster", "lsf"], "--slurm-cluster 'lsf': expected one of auto, slurm, local"),
    (["--workers", "2"], "--workers: not an option of --executor slurm"),
])
def test_a_bad_option_is_named(tmp_path, capsys, options, says):
    err = _refused(capsys, tmp_path, "--slurm-cluster", "local", *options)
    assert says in err


@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30", 2), ("2:00:00", 120), ("1-12", 2160), ("1-00:30", 1470),
                                           ("0-0:0:1", 1)])
def test_slurm_s_time_formats_are_read_in_whole_minutes(text, minutes):
    assert time_minutes(text) == minutes


@pytest.mark.parametrize("text", ["0", "1.5", "1h", "-5", "1:2:3:4"])
def test_a_time_slurm_would_not_read_is_refused(text):
    with pytest.raises(SegbenchError, match="--slurm-time"):
        time_minutes(text)


def test_segbench_s_variables_and_those_named_go_to_the_tasks(monkeypatch):
    monkeypatch.setenv("SEGBENCH_COCO", "/data/coco")
    monkeypatch.setenv("HF_HOME", "/hf")
    env = SlurmExecutor(cluster="local", env=["HF_HOME"]).env
    assert env["SEGBENCH_COCO"] == "/data/coco" and env["HF_HOME"] == "/hf"


# --- a real Slurm (tests/slurm/start_local_slurm.sh) ----------------------------------


@functools.cache
def _slurm_answers() -> str | None:
    """Why the real-Slurm tests cannot run here, or None (asked once: sinfo without a
    controller takes a while to give up)."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm is not installed here (no sinfo/sbatch); tests/slurm/start_local_slurm.sh sets one up"
    try:
        answer = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s: no slurmctld (tests/slurm/start_local_slurm.sh starts one)"
    states = answer.stdout.split()
    if answer.returncode != 0 or not any(state.rstrip("*") in ("idle", "mixed", "allocated") for state in states):
        return f"no Slurm node is up here (sinfo: {(answer.stderr or answer.stdout).strip() or 'no nodes'})"
    return None


@pytest.fixture
def real_slurm():
    reason = _slurm_answers()
    if reason:
        pytest.skip(reason)


@pytest.mark.slurm
def test_on_a_real_slurm_records_equal_the_local_executor_s_and_name_their_job(tmp_path, real_slurm):
    suite = _suite(tmp_path)
    assert main(["run", str(suite), "-o", str(tmp_path / "local"), "-q"]) == 0
    assert main(["run", str(suite), "-o", str(tmp_path / "slurm"), "-q", "--executor", "slurm", "--slurm-cluster", "slurm",
                 "--slurm-time", "10"]) == 0
    local, slurm = _records(tmp_path / "local"), _records(tmp_path / "slurm")
    assert local.keys() == slurm.keys() and len(slurm) == 2
    for key, record in slurm.items():
        for field in COMPUTED:
            assert record[field] == local[key][field], f"{field} of {key} differs between local and a real Slurm"
        assert record["ran_on"]["executor"] == "slurm" and "_" in record["ran_on"]["slurm_job_id"]  # <array job>_<task>


@pytest.mark.slurm
def test_on_a_real_slurm_a_bad_partition_exits_2(tmp_path, capsys, real_slurm):
    err = _refused(capsys, tmp_path, "--slurm-cluster", "slurm", "--slurm-partition", "no_such_partition")
    assert "Slurm refuses the job options" in err and "--slurm-partition no_such_partition" in err
    assert "invalid partition" in err.lower(), err


@pytest.mark.slurm
def test_on_a_real_slurm_a_cancelled_task_is_a_failed_record_naming_its_job(tmp_path, real_slurm):
    plugin = _plugin(tmp_path, HANGER, "hanger_loss")
    suite = _suite(tmp_path, ablate=HANGS)
    output = tmp_path / "out"
    jobs = output / "tiny" / "slurm"
    driver = subprocess.Popen([sys.executable, "-m", "segbench", "run", str(suite), "-o", str(output), "-q", "-p", str(plugin),
                               "--executor", "slurm", "--slurm-cluster", "slurm", "--slurm-time", "10"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_log(jobs, "segbench: loss=hanger seed=0", limit_s=180)
        hanging = next(p.name.removesuffix("_0_log.out") for p in jobs.glob("*_log.out") if "segbench: loss=hanger seed=0" in p.read_text())
        subprocess.run(["scancel", hanging], check=True)  # as an admin, a preemption or a lost node would end it
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 1, err
    failed = [record for record in _records(output).values() if record["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"]["type"] == "SlurmJobEnded", failed
    message = failed[0]["error"]["message"]
    assert f"Slurm job {hanging} ended without a record (state CANCELLED" in message and f"log: {jobs}" in message, message
    assert failed[0]["ran_on"]["slurm_job_id"] == hanging


@pytest.mark.slurm
def test_on_a_real_slurm_a_run_past_its_time_limit_is_a_failed_record_naming_it(tmp_path, real_slurm):
    """--slurm-time 1: Slurm warns the task (USR2) before its limit, submitit ends the run."""
    plugin = _plugin(tmp_path, HANGER, "hanger_loss")
    output = tmp_path / "out"
    assert main(["run", str(_suite(tmp_path, ablate=HANGS)), "-o", str(output), "-q", "-p", str(plugin),
                 "--executor", "slurm", "--slurm-cluster", "slurm", "--slurm-time", "1"]) == 1
    (record,) = _records(output).values()
    error = record["error"]
    job = record["ran_on"]["slurm_job_id"]
    assert f"Slurm job {job} reached its time limit (--slurm-time 1)" in error["message"], error
    assert f"log: {output / 'tiny' / 'slurm' / job}_0_log.err" in error["hint"], error


@pytest.mark.slurm
def test_on_a_real_slurm_sigterm_of_the_driver_cancels_its_tasks(tmp_path, real_slurm):
    plugin = _plugin(tmp_path, HANGER, "hanger_loss")
    output = tmp_path / "out"
    jobs = output / "tiny" / "slurm"
    driver = subprocess.Popen([sys.executable, "-m", "segbench", "run", str(_suite(tmp_path, ablate=HANGS)), "-o", str(output), "-q",
                               "-p", str(plugin), "--executor", "slurm", "--slurm-cluster", "slurm", "--slurm-time", "10"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_log(jobs, "segbench: loss=hanger seed=0", limit_s=180)
        task = next(jobs.glob("*_log.out")).name.removesuffix("_0_log.out")
        driver.send_signal(signal.SIGTERM)
        _, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 143, err
    give_up, state = time.monotonic() + 30, None
    while time.monotonic() < give_up:
        state = squeue_states().get(task)
        if state in (None, "CANCELLED"):
            break
        time.sleep(1)
    assert state in (None, "CANCELLED"), f"Slurm task {task} is {state} after segbench run was terminated"
