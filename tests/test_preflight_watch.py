"""segbench.preflight_watch: each preflight step within the suite's timeout_s, named when
it hangs; the alarm of whoever called segbench is put back. (A plugin that hangs or dies
in a real preflight: tests/battery/test_plan_and_preflight_faults.py.)"""

import signal
import time
from types import SimpleNamespace

import pytest

from segbench.errors import SegbenchError
from segbench.preflight_watch import checking, death_text, preflight_limit, watched_problems


def suite_with(*timeouts):
    return SimpleNamespace(variants=[SimpleNamespace(config={"train": {"timeout_s": t}}) for t in timeouts])


def test_the_limit_is_the_largest_timeout_and_none_when_a_variant_has_none():
    assert preflight_limit(suite_with(2.0, 5.0)) == 5.0
    assert preflight_limit(suite_with(2.0, None)) is None
    assert preflight_limit(suite_with(1e10)) is None, "beyond what an alarm can hold: no limit, not an OverflowError"
    assert watched_problems(lambda suite, cache: ["found"], suite_with(1e10), "cache") == ["found"]


def hangs_at(*steps, seconds=60.0):
    def problems_of(suite, cache_dir):
        with checking(steps[0]), checking(steps[1]):
            time.sleep(seconds)
        return []
    return problems_of


def test_a_step_past_timeout_s_is_named_with_the_key():
    started = time.monotonic()
    with pytest.raises(SegbenchError) as caught:
        watched_problems(hangs_at("variant 'v': one training step", "building upsampler slow()"), suite_with(0.5), "cache")
    assert time.monotonic() - started < 10
    assert str(caught.value).startswith("the preflight did not finish a step within train.timeout_s = 0.5 s: it was still "
                                        "checking variant 'v': one training step, building upsampler slow()")


def test_each_top_level_step_has_its_own_time():
    def problems_of(suite, cache_dir):
        for index in range(4):
            with checking(f"step {index}"):
                time.sleep(0.3)
        return ["found"]
    assert watched_problems(problems_of, suite_with(0.5), "cache") == ["found"]


def test_a_callers_own_alarm_is_put_back():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.5)
        assert watched_problems(lambda suite, cache: [], suite_with(30.0), "cache") == []
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0, "the caller's alarm is still pending"
        time.sleep(2)
        assert fired == [True]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_death_before_the_suite_was_loaded_blames_no_component():
    assert "before it checked any component" in death_text(1, None)
    assert death_text(-9, ["variant 'v': metric 'm'"]).startswith("the preflight died (signal 9 (SIGKILL)) while checking variant 'v'")


def test_a_run_whose_preflight_ran_apart_ends_without_a_leaked_semaphore_warning(tmp_path):
    """The preflight's child answers, then exits by itself: killed, it left the semaphore
    tqdm made there to multiprocessing's resource tracker, which warned at the end of every
    run under a non-local executor."""
    import os
    import subprocess
    import sys

    from tests.battery.harness import tiny

    pytest.importorskip("ray")
    suite = tmp_path / "tiny.toml"
    suite.write_text(tiny())
    # a local Ray, with its files in the test's HOME; not -q: the child's progress bar makes the lock
    done = subprocess.run([sys.executable, "-m", "segbench", "run", str(suite), "-o", str(tmp_path / "out"), "--executor", "ray"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "leaked semaphore" not in done.stderr and "resource_tracker" not in done.stderr, done.stderr[-3000:]
