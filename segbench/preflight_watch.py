"""The preflight under watch: a plugin that hangs or dies while it is checked is named.

The preflight (segbench.preflight) calls plugin code before anything trains: dataset and
model factories, a forward and backward pass, each metric. It says what it is checking
with :func:`checking`, so that a fault there can be told by its step ("variant 'x': one
training step, building architecture unet() with upsampler slow()").

- **Time.** Each step of the preflight may take at most the suite's ``[train] timeout_s``
  (its largest over the variants; none when a variant sets none): a step that takes longer
  would take longer in every run too. Past it the preflight stops with exit 2 naming the
  step and the key.
- **Where it runs.** With the ``local`` executor it runs in this process, as the runs do,
  so that the datasets it builds serve them; a step that hangs in Python is interrupted by
  an alarm (SIGALRM, the main thread only), and one stuck inside a C call past
  ``timeout_s + HANG_GRACE_S`` ends segbench with exit 2 and the same message (nothing
  has trained yet). With any other executor, whose runs are in other processes anyway,
  the preflight runs in a child process of its own (``spawn``, loading the suite again from
  its source, as the process executor's workers do): a plugin that kills it there
  (``os._exit``, a signal, a segfault) is named with exit 2 instead of ending segbench.
  It is not the default for ``local`` because a fresh interpreter importing torch and the
  plugins added about as much again as ``segbench validate suites/smoke.toml`` takes
  (docs/guide/suites.md, "Preflight", gives the measurement).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback

from .errors import SegbenchError

HANG_GRACE_S = 10.0  # past timeout_s, for the alarm to interrupt a step before segbench gives up on it
STARTUP_S = 300.0  # for a child preflight to import torch and load the suite's plugins
UNLIMITED_ABOVE_S = 1e8  # about 3 years: longer is no limit (setitimer overflows from about 1e10 s)
RETRY_ALARM_S = 1.0  # after the alarm: again every second, should a plugin swallow it

_steps: list = []  # what the preflight is checking, outermost first
_listeners: list = []  # called with (steps, started a top-level step) at every change


@contextlib.contextmanager
def checking(what: str):
    """The preflight checks ``what`` within this block (nested blocks: a part of it)."""
    _steps.append(what)
    _tell(len(_steps) == 1)
    try:
        yield
    finally:
        _steps.pop()
        _tell(False)


def _tell(started: bool) -> None:
    for listener in _listeners:
        listener(list(_steps), started)


def step_text(steps: list) -> str:
    return ", ".join(steps) if steps else "between its steps"


class PreflightTimeout(BaseException):
    """A preflight step went past timeout_s. A BaseException, as segbench.execute.Timeout
    is, so that the preflight's own ``except Exception`` around plugin code lets it by."""


def preflight_limit(suite) -> float | None:
    """The suite's largest ``[train] timeout_s``; None (no limit) when a variant sets none,
    or one beyond ``UNLIMITED_ABOVE_S`` (no alarm holds it)."""
    limits = [variant.config["train"].get("timeout_s") for variant in suite.variants]
    return None if not limits or None in limits or max(limits) > UNLIMITED_ABOVE_S else max(limits)


def timeout_text(limit: float, steps: list) -> str:
    return (f"the preflight did not finish a step within train.timeout_s = {limit:g} s: it was still checking {step_text(steps)}; "
            "a plugin that hangs there would hang every run. Fix the plugin, or raise train.timeout_s if the step needs longer")


def death_text(exitcode, steps: list | None) -> str:
    """Why the preflight's process ended: ``steps`` None when it had not loaded the suite."""
    if steps is None:
        return (f"the preflight's process died ({_death(exitcode)}) before it checked any component: loading the suite's plugins "
                "there failed (its error is above), or something killed it")
    return (f"the preflight died ({_death(exitcode)}) while checking {step_text(steps)}: the plugin called there ended its "
            "process (os._exit, a signal, a crash in native code); segbench ran the preflight in a process of its own, so "
            "nothing else was lost")


def _death(exitcode) -> str:
    if exitcode is None or exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        return f"signal {-exitcode} ({signal.Signals(-exitcode).name})"
    except ValueError:
        return f"signal {-exitcode}"


def watched_problems(problems_of, suite, cache_dir, apart: bool = False, show_progress: bool = False) -> list:
    """``problems_of(suite, cache_dir)`` (segbench.preflight.suite_problems), each step
    limited to the suite's timeout_s; in a child process when ``apart``. A step past its
    time, or a child that dies, raises SegbenchError (exit 2) naming the step."""
    limit = preflight_limit(suite)
    if apart:
        return _in_child(problems_of, suite, cache_dir, limit, show_progress)
    if limit is None:
        return problems_of(suite, cache_dir)
    with _watched(limit) as expired:
        try:
            problems = problems_of(suite, cache_dir)
        except PreflightTimeout as timeout:
            raise SegbenchError(str(timeout)) from None
    if expired:  # a plugin caught the alarm, and the preflight went on
        raise SegbenchError(expired[0])
    return problems


# ----------------------------------------------------------------------------- in this process


@contextlib.contextmanager
def _watched(limit: float):
    """Within this block, each top-level step has ``limit`` seconds: the alarm raises
    PreflightTimeout (a hang in Python); a watchdog thread ends the process with exit 2 if
    the step is still not over ``HANG_GRACE_S`` later (a hang inside one C call). Yields a
    list that holds the timeout's text once the alarm went off."""
    expired, progress = [], {"at": time.monotonic()}
    alarm = _Alarm(limit, expired) if _can_alarm() else None

    def listener(steps, started):
        progress["at"] = time.monotonic()
        if started and alarm is not None:
            alarm.arm()

    stop = threading.Event()
    watchdog = threading.Thread(target=_watchdog, args=(limit, progress, stop), name="segbench-preflight-watchdog", daemon=True)
    _listeners.append(listener)
    watchdog.start()
    try:
        if alarm is not None:
            alarm.start()
        yield expired
    finally:
        stop.set()
        _listeners.remove(listener)
        if alarm is not None:
            alarm.stop()


def _watchdog(limit, progress, stop):
    while not stop.wait(1.0):
        if time.monotonic() - progress["at"] > limit + HANG_GRACE_S and _steps:
            print(f"segbench: error: {timeout_text(limit, _steps)} (it did not return even to be interrupted)", file=sys.stderr,
                  flush=True)
            os._exit(SegbenchError.exit_code)


class _Alarm:
    """SIGALRM after ``limit`` seconds, re-armed at each top-level step; the previous
    handler and any alarm pending outside (a test's timeout) are put back at the end."""

    def __init__(self, limit, expired):
        self.limit, self.expired = limit, expired

    def start(self):
        self.previous = signal.signal(signal.SIGALRM, self._expire)
        self.outer, _ = signal.setitimer(signal.ITIMER_REAL, self.limit)
        self.started = time.monotonic()

    def arm(self):
        signal.setitimer(signal.ITIMER_REAL, self.limit)

    def stop(self):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if self.previous is None else self.previous)
        if self.outer:
            signal.setitimer(signal.ITIMER_REAL, max(self.outer - (time.monotonic() - self.started), 1e-3))

    def _expire(self, signum, frame):
        text = timeout_text(self.limit, _steps)
        if not self.expired:
            self.expired.append(text)
        signal.setitimer(signal.ITIMER_REAL, RETRY_ALARM_S)
        raise PreflightTimeout(self.expired[0])


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


# ----------------------------------------------------------------------------- in a child process

EXIT_WAIT_S = 10.0  # for the child to exit by itself once it has answered


def _in_child(problems_of, suite, cache_dir, limit, show_progress) -> list:
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked; the process executor's workers spawn too
    connection, child_end = context.Pipe()
    # problems_of goes by reference (pickled as its module and name), so this module imports no preflight
    process = context.Process(target=serve_checks, args=(child_end, problems_of, suite.source, str(cache_dir), show_progress),
                              name="segbench-preflight", daemon=True)
    process.start()
    child_end.close()  # so that this end reads EOF once the child is gone
    try:
        problems = awaited_problems(connection, process, limit)
        # let it exit on its own: killed, it leaves the semaphores it made (tqdm's lock) to
        # multiprocessing's resource tracker, which then warns at exit
        process.join(EXIT_WAIT_S)
        return problems
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        connection.close()


def awaited_problems(connection, process, limit) -> list:
    """The problems ``process`` sends on ``connection`` (:func:`serve_checks`); its steps
    followed, each within ``limit`` seconds, its death named. Raises SegbenchError for a
    step past its time or a process that died (the caller then kills it)."""
    steps, deadline, loaded = [], time.monotonic() + STARTUP_S, False
    while True:
        wait_s = None if deadline is None else min(max(0.0, deadline - time.monotonic()), 3600.0)  # selectors overflow far out
        ready = multiprocessing.connection.wait([connection, process.sentinel], wait_s)
        message = _receive(connection) if connection in ready or process.sentinel in ready else None
        if message is None and ready:
            process.join()
            raise SegbenchError(death_text(process.exitcode, steps if loaded else None))
        if message is None and time.monotonic() < deadline:
            continue
        if message is None:
            raise SegbenchError(timeout_text(limit, steps) if loaded else f"the preflight's process did not load the suite within "
                                f"{STARTUP_S:g} s (importing torch and the suite's plugins)")
        kind, *payload = message
        if kind == "steps":
            (steps, started), loaded = payload, True
            if limit is None:
                deadline = None
            elif started or not steps:
                deadline = time.monotonic() + limit
        elif kind == "done":
            return payload[0]
        elif kind == "bad input":
            raise SegbenchError(payload[0])
        else:  # "crash": a bug of segbench's, with the child's traceback
            raise RuntimeError(f"the preflight's process failed:\n{payload[0]}")


def _receive(connection):
    try:
        return connection.recv() if connection.poll() else None
    except (EOFError, OSError):
        return None


def serve_checks(connection, problems_of, source: dict, cache_dir: str, show_progress: bool) -> None:
    """The child (or an executor's worker): load the suite from its source, run the
    preflight, send its problems (and every change of step on the way) for
    :func:`awaited_problems`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it kills this process
    from .data.cache import showing_progress
    from .plugins import load_catalogue
    from .suite import load_suite_source

    def listener(steps, started):
        connection.send(("steps", steps, started))

    _listeners.append(listener)
    try:
        suite = load_suite_source(source, load_catalogue)  # as the driver read it: a worker may not see the driver's files
        connection.send(("steps", [], True))  # loaded: the steps' clock starts
        with showing_progress(show_progress):
            reply = ("done", problems_of(suite, cache_dir))
    except SegbenchError as exc:
        reply = ("bad input", str(exc))
    except BaseException:  # noqa: BLE001 - sent to the driver, which reports it as an internal error
        reply = ("crash", traceback.format_exc())
    finally:
        _listeners.remove(listener)  # a worker goes on to run runs
    connection.send(reply)
