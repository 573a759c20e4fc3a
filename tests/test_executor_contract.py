"""segbench.testing.ExecutorContract catches each planted mistake of an executor, naming the
executor and the runs: a run dropped, a record returned twice, a timeout not enforced (a
hang, ended by the contract's deadline), a process left running after close(). The
standard local executor passes every check. The contract classes run in a nested pytest
session in this process; each planted executor runs only the check it fails."""

import sys

import pytest

from tests.planted_contracts import failure, run_planted

PLANTED = '''
import contextlib
import subprocess
from unittest import mock

import segbench.execute
from segbench.testing import ExecutorContract

LEAKED = []  # the processes the leaking executor left behind, for the test to end


class Planted:
    shows_epochs = False

    def __init__(self, fault):
        self.fault = fault

    def records(self, suite, pending, cache_dir, on_epoch=None):
        if self.fault == "leaks":
            LEAKED.append(subprocess.Popen(["sleep", "60"]))
        for index, (variant, seed) in enumerate(pending):
            if self.fault == "drops" and index == len(pending) - 1:
                continue
            if self.fault == "ignores_timeouts":
                with mock.patch.object(segbench.execute, "time_limit", lambda seconds: contextlib.nullcontext()):
                    record = segbench.execute.execute(suite, variant, seed, cache_dir)
            else:
                record = segbench.execute.execute(suite, variant, seed, cache_dir)
            yield record
            if self.fault == "twice" and index == 0:
                yield record

    def close(self):
        pass


def executors(register):
    for fault in ("drops", "twice", "ignores_timeouts", "leaks"):
        register.add_executor(fault, lambda fault=fault: Planted(fault))


def contract(name, **settings):
    return type(f"Test_{name}", (ExecutorContract,), {"name": name, "hook": executors, **settings})


Test_drops = contract("drops")
Test_twice = contract("twice")
Test_ignores_timeouts = contract("ignores_timeouts", deadline_s=5.0)
Test_leaks = contract("leaks", close_s=1.0)


class Test_local(ExecutorContract):
    name = "local"
'''

ONE_PER_RUN = "test_returns_exactly_one_record_per_run_it_is_given"
FAIL_FAST = "test_stops_when_the_runner_stops_at_a_failed_run"
TIMEOUT = "test_a_run_past_its_timeout_is_a_failed_record"
INTERRUPT = "test_close_after_a_partial_iteration_releases_it"
CHOSEN = (f"(Test_drops and {ONE_PER_RUN}) or (Test_twice and {ONE_PER_RUN}) or (Test_ignores_timeouts and {TIMEOUT}) "
          f"or (Test_leaks and ({FAIL_FAST} or {INTERRUPT})) or Test_local")
WORKS, FAILS = "loss=ce", "loss=contract_planted(action=raise)"  # the labels of the contract's suite


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    try:
        return run_planted(tmp_path_factory.mktemp("planted-executors"), "test_planted_executors", PLANTED, "-k", CHOSEN)
    finally:
        for process in getattr(sys.modules.get("test_planted_executors"), "LEAKED", []):
            process.kill()
            process.wait()


def test_a_dropped_run_is_named(outcomes):
    text = failure(outcomes, "drops", ONE_PER_RUN)
    assert f'executor "drops" of "contract-test" was given {WORKS} seed=0, {FAILS} seed=1' in text
    assert f'executor "drops" of "contract-test" did not return run {FAILS} seed=1' in text


def test_a_record_returned_twice_is_named(outcomes):
    text = failure(outcomes, "twice", ONE_PER_RUN)
    assert f'executor "twice" returned run {WORKS} seed=0 twice; the first record is kept' in text


def test_a_timeout_not_enforced_is_a_hang_the_deadline_ends(outcomes):
    text = failure(outcomes, "ignores_timeouts", TIMEOUT)
    assert ('executor "ignores_timeouts" of "contract-test" running loss=contract_planted(action=hang) seed=0 (timeout_s = 2) '
            "did not end within 7 s") in text


@pytest.mark.parametrize("check, when", [(FAIL_FAST, "stopped at the first failed record (--fail-fast)"),
                                         (INTERRUPT, "closed after its first record, a run hanging")])
def test_a_process_left_running_after_close_is_named(outcomes, check, when):
    text = failure(outcomes, "leaks", check)
    assert f'executor "leaks" of "contract-test" {when}: close() returned, but its process(es) [' in text and "] still run" in text


def test_the_local_executor_passes_every_check(outcomes):
    checks = (ONE_PER_RUN, FAIL_FAST, TIMEOUT, INTERRUPT)
    assert {check: outcomes[f"Test_local::{check}"][0] for check in checks} == dict.fromkeys(checks, "passed"), outcomes
