"""Failures stay in their run: a plugin's sys.exit(), a worker process that dies and a run
that hangs past [train] timeout_s each become a failed record while the other runs finish
and the report is written; only Ctrl-C (KeyboardInterrupt) stops the suite."""

from __future__ import annotations

import json
import time

import pytest

from segbench.cli import main
from segbench.executors import process
from segbench.plugins import load_catalogue
from segbench.data.cache import resolve_cache_dir
from segbench.execute import Timeout, time_limit
from segbench.suite import load_suite

# Each loss misbehaves from its second call on: a preflight may call it once, and the
# run's first training step does; the second step is the run's own.
PLUGIN = '''
import ctypes
import multiprocessing
import os
import sys
import time

import torch
from segbench import hookimpl

if os.environ.get("DISARM_ALARM_IN_WORKERS") and multiprocessing.parent_process() is not None:
    # As if every run hung inside one long C call, which the run's own alarm cannot end.
    import contextlib
    import segbench.execute
    segbench.execute.time_limit = lambda seconds: contextlib.nullcontext()


class Misbehaving(torch.nn.Module):
    def __init__(self, act):
        super().__init__()
        self.act, self.calls = act, 0

    def forward(self, logits, target):
        self.calls += 1
        if self.calls >= 2:
            self.act()
        return torch.nn.functional.cross_entropy(logits, target)


def interrupt():
    raise KeyboardInterrupt


ACTS = {
    "exiting": lambda: sys.exit(3),
    "dying": lambda: os._exit(7),
    "segfaulting": lambda: ctypes.string_at(0),
    "sleeping": lambda: time.sleep(600),
    "interrupting": interrupt,
}


def factory(act):
    def make(mode, num_classes, ignore_index):
        """Cross-entropy that misbehaves from its second call on."""
        return Misbehaving(act)
    return make


@hookimpl
def segbench_losses(register):
    for name, act in ACTS.items():
        register.add_loss(name, factory(act))
'''

SUITE = """
name = "isolation"
seeds = [0]

[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = 4

[model]
architecture = "unet"
encoder = "lite"
decoder_channels = [16, 8, 8, 8, 8]

[train]
epochs = 1
batch_size = 4

[eval]
metrics = ["miou"]
"""


def _suite(write_suite, *losses, timeouts=None):
    """SUITE with one variant per loss, in this order; ``timeouts`` maps a loss to its timeout_s."""
    tables = []
    for loss in losses:
        table = f'[[variants]]\nlabel = "{loss}"\ntrain.loss = "{loss}"\n'
        if loss in (timeouts or {}):
            table += f"train.timeout_s = {timeouts[loss]}\n"
        tables.append(table)
    return write_suite(SUITE + "\n" + "\n".join(tables), "isolation.toml")


def _run(tmp_path, suite, *flags):
    plugin = tmp_path / "misbehaving.py"
    plugin.write_text(PLUGIN)
    return main(["run", str(suite), "-p", str(plugin), "-o", str(tmp_path / "out"), "-q", *flags])


def _records(tmp_path):
    records = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("isolation/runs/*/seed-*/record.json")]
    return {r["label"]: r for r in records}


def _assert_finished(record):
    assert record["status"] == "ok" and 0 <= record["metrics"]["miou"] <= 1


def test_sys_exit_in_a_plugin_fails_its_run_and_the_suite_goes_on(tmp_path, write_suite, capsys):
    suite = _suite(write_suite, "exiting", "ce")
    assert _run(tmp_path, suite) == 1
    err = capsys.readouterr().err
    assert "1 run(s) failed" in err and "plugin called sys.exit(3)" in err
    records = _records(tmp_path)
    assert records["exiting"]["status"] == "failed"
    assert records["exiting"]["error"]["type"] == "SystemExit"
    assert records["exiting"]["error"]["message"] == "plugin called sys.exit(3)"
    assert "sys.exit(3)" in records["exiting"]["error"]["traceback"]  # where the plugin called it
    _assert_finished(records["ce"])
    assert (tmp_path / "out" / "isolation" / "report" / "index.html").is_file()


def test_a_dead_worker_fails_its_run_and_a_new_worker_runs_the_rest(tmp_path, write_suite, capsys):
    """--workers 1: the runs after each death need the replacement worker to finish."""
    suite = _suite(write_suite, "exiting", "dying", "segfaulting", "ce")
    assert _run(tmp_path, suite, "--executor", "process", "--workers", "1") == 1
    assert "3 run(s) failed" in capsys.readouterr().err
    records = _records(tmp_path)
    assert records["exiting"]["error"]["message"] == "plugin called sys.exit(3)"
    assert records["dying"]["error"]["type"] == "WorkerDied"
    assert records["dying"]["error"]["message"] == "worker died: exit code 7"
    assert records["segfaulting"]["error"]["message"] == "worker died: signal 11 (SIGSEGV)"
    assert records["dying"]["wall_seconds"] > 0 and records["dying"]["config"]["train"]["loss"]["name"] == "dying"
    _assert_finished(records["ce"])
    assert (tmp_path / "out" / "isolation" / "report" / "index.html").is_file()


# In the timeout tests "ce" runs first, so that the timed run is not a process's first,
# which imports parts of torch.


def test_a_run_past_its_timeout_fails_as_timeout_and_the_others_finish(tmp_path, write_suite, capsys):
    suite = _suite(write_suite, "ce", "sleeping", "dice", timeouts={"sleeping": 2})
    started = time.monotonic()
    assert _run(tmp_path, suite) == 1
    assert time.monotonic() - started < 300  # not the plugin's 600 s sleep
    assert "run exceeded timeout_s = 2 s" in capsys.readouterr().err
    records = _records(tmp_path)
    error = records["sleeping"]["error"]
    assert error["type"] == "Timeout" and error["message"] == "run exceeded timeout_s = 2 s"
    assert "raise Timeout" in error["traceback"]  # the traceback shows where it hung
    assert 2 <= records["sleeping"]["wall_seconds"] < 60
    _assert_finished(records["ce"])
    _assert_finished(records["dice"])


def test_a_worker_stuck_past_its_timeout_is_killed_and_replaced(tmp_path, write_suite, capsys, monkeypatch):
    """The workers' runs have no alarm of their own here, so the driver kills the one past
    its run's timeout, KILL_GRACE_S later."""
    monkeypatch.setattr(process, "KILL_GRACE_S", 0.5)
    monkeypatch.setenv("DISARM_ALARM_IN_WORKERS", "1")
    suite = _suite(write_suite, "ce", "sleeping", "dice", timeouts={"sleeping": 2})
    started = time.monotonic()
    assert _run(tmp_path, suite, "--executor", "process", "--workers", "1") == 1
    assert time.monotonic() - started < 300
    records = _records(tmp_path)
    error = records["sleeping"]["error"]
    assert error["type"] == "Timeout"
    assert error["message"] == "run exceeded timeout_s = 2 s; its worker did not stop and was killed"
    assert 2.5 <= records["sleeping"]["wall_seconds"] < 60
    _assert_finished(records["ce"])
    _assert_finished(records["dice"])  # on the worker that replaced the killed one


def test_ctrl_c_in_a_run_stops_the_suite_and_keeps_the_finished_runs(tmp_path, write_suite, capsys):
    suite = _suite(write_suite, "ce", "interrupting", "dice")
    assert _run(tmp_path, suite) == 130
    assert "interrupted; finished runs are kept" in capsys.readouterr().err
    records = _records(tmp_path)
    assert set(records) == {"ce"}  # the interrupted run left no record, the next one did not start
    _assert_finished(records["ce"])


def test_timeout_s_is_not_part_of_the_variant_id(write_suite):
    """Adding or changing a timeout must not train finished runs again."""
    without = load_suite(_suite(write_suite, "ce", "dice"), load_catalogue)
    with_timeout = load_suite(_suite(write_suite, "ce", "dice", timeouts={"ce": 30, "dice": 5}), load_catalogue)
    assert [v.id for v in with_timeout.variants] == [v.id for v in without.variants]
    assert [v.config["train"]["timeout_s"] for v in with_timeout.variants] == [30.0, 5.0]
    assert {v.config["train"]["timeout_s"] for v in without.variants} == {None}


def test_time_limit_restores_an_outer_alarm_and_its_handler():
    import signal

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with time_limit(5):
            pass
        assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 0.5  # the outer alarm is pending again
        time.sleep(0.7)
        assert fired == [True]
        with pytest.raises(Timeout, match="run exceeded timeout_s = 0.1 s"), time_limit(0.1):
            time.sleep(5)
        assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("exitcode, message", [
    (3, "worker died: exit code 3"),
    (-9, "worker died: signal 9 (SIGKILL)"),
    (-11, "worker died: signal 11 (SIGSEGV)"),
])
def test_describe_death_names_the_signal_or_exit_code(exitcode, message):
    error = process.describe_death(exitcode)
    assert error["type"] == "WorkerDied" and error["message"] == message
    assert ("out-of-memory killer" in error.get("hint", "")) == (exitcode == -9)


def test_a_task_ray_could_not_finish_is_a_failed_record_of_its_run(write_suite):
    """Ray raises from ray.get when a task's worker died; that run fails, the suite goes on."""
    from segbench.executors.ray import RayExecutor, _Run
    from segbench.executors.ray_nodes import Dispatch, Node

    class WorkerCrashedError(Exception):
        pass

    class DeadWorkerRay:
        def get(self, ref):
            raise WorkerCrashedError("The worker died unexpectedly while executing this task.\nCheck its logs.")

    executor = RayExecutor.__new__(RayExecutor)  # no cluster: only how a lost task is recorded
    executor.ray = DeadWorkerRay()
    suite = load_suite(_suite(write_suite, "ce", "dice"), load_catalogue)
    node = Node("a" * 56, "host", slots=1, running=1)  # the only node: no other may take the run
    run = _Run(suite.variants[1], 0, time.perf_counter() - 2)
    record = executor._record("ref", suite, run, node, Dispatch([node], warn=lambda text: None))
    assert record["status"] == "failed" and record["variant_id"] == suite.variants[1].id and record["seed"] == 0
    assert record["error"]["type"] == "WorkerCrashedError"
    assert record["error"]["message"] == "Ray could not finish the run: The worker died unexpectedly while executing this task."
    assert record["error"]["hint"].startswith("Ray ran this task 4 times and its worker or node died each time")
    assert record["wall_seconds"] >= 2


def test_the_same_workers_serve_every_round_and_a_dead_one_is_replaced_in_its_slot(tmp_path, write_suite):
    """Adaptive seeds send rounds one after another: the workers stay up between them."""
    plugin = tmp_path / "misbehaving.py"
    plugin.write_text(PLUGIN)
    cache = resolve_cache_dir()  # the session's, where the other tests' data already is
    suite = load_suite(_suite(write_suite, "ce", "dying"), load_catalogue, extra_plugins=[str(plugin)])
    ce, dying = suite.variants
    executor = process.ProcessExecutor(1)
    try:
        first = list(executor.records(suite, [(ce, 0)], cache))
        worker_pid = executor._pool[0].process.pid
        second = list(executor.records(suite, [(ce, 1)], cache))
        assert executor._pool[0].process.pid == worker_pid
        third = list(executor.records(suite, [(dying, 0), (ce, 2)], cache))
        assert executor._pool[0].process.pid != worker_pid and executor._pool[0].process.is_alive()
    finally:
        executor.close()
    assert [r["status"] for r in first + second] == ["ok", "ok"]
    assert [(r["label"], r["status"]) for r in third] == [("dying", "failed"), ("ce", "ok")]
    assert not executor._pool
