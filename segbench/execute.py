"""One run (variant x seed) into its record, isolated: what every executor calls.

It sits below the runner and the executors: the runner hands pending runs to an executor,
and the executor calls :func:`execute` here (in this process or in a worker), so neither
reaches back into the other. Whatever ends a run (an exception, a plugin's ``sys.exit()``,
its ``[train] timeout_s``) ends in that run's failed record, never in the suite.

Importing this module does not import torch: an executor's module imports it when the
executor is registered (``segbench --help``), and a process worker imports it before it
is pinned to its GPU (torch must not start before CUDA_VISIBLE_DEVICES is set).
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import signal
import sys
import threading
import time
import traceback
import warnings

from .crash import is_interrupt
from .environment import ran_on, run_environment
from .records import RECORD_SCHEMA
from .schema import TRAIN

DEFAULT_THREADS = TRAIN["threads"].default  # a configuration resolved before the key existed


def execute(suite, variant, seed, cache_dir, on_epoch=None) -> dict:
    """Train one run. Any exception, a plugin's ``sys.exit()`` or other BaseException and
    going past ``[train] timeout_s`` become a failed record, never a crashed suite; only
    KeyboardInterrupt (Ctrl-C, SIGTERM) stops the suite (the finished runs are kept)."""
    from .engine import run_one  # heavy: torch; see the module docstring
    from .engine.device import torch_threads

    started = time.perf_counter()
    record = new_record(suite, variant, seed)
    gc.freeze()  # what exists now is not the run's: the collection after it need not scan it
    train = variant.config["train"]
    try:
        with time_limit(train.get("timeout_s")), torch_threads(train.get("threads", DEFAULT_THREADS)) as threads:
            record["environment"]["torch_threads"] = threads
            measured = run_one(variant, seed, suite.catalogue, cache_dir, on_epoch=on_epoch)
        record.update(measured)
        record["status"] = "ok"
    except BaseException as exc:  # noqa: BLE001 - isolation is the point: a plugin's BaseException fails its run
        if is_interrupt(exc):
            raise
        record["status"] = "failed"
        record["error"] = describe_failure(exc)
    finally:
        release_memory()
    record["ran_on"] = ran_on(record.get("device"))
    return finish_record(record, started)


def new_record(suite, variant, seed, started_at=None) -> dict:
    """What a record says before its run has measured anything."""
    return {
        "schema": RECORD_SCHEMA,
        "suite": suite.name,
        "variant_id": variant.id,
        "label": variant.label,
        "factors": variant.factors,
        "seed": seed,
        "config": variant.config,
        "versions": variant.versions,
        "is_baseline": variant.id == suite.baseline_id,
        "started_at": started_at or _now(),
        "environment": run_environment(suite.path),
    }


def finish_record(record, started) -> dict:
    record["wall_seconds"] = time.perf_counter() - started
    record["finished_at"] = _now()
    return record


def failed_record(suite, variant, seed, error: dict, started) -> dict:
    """The record of a run that could not write its own: its worker died or was killed.
    ``started`` is the time.perf_counter() at which the run was handed out."""
    sent = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=time.perf_counter() - started)
    record = new_record(suite, variant, seed, sent.isoformat(timespec="seconds"))
    record["status"] = "failed"
    record["error"] = {"traceback": "", **error}
    return finish_record(record, started)


def describe_failure(exc: BaseException) -> dict:
    error = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    if isinstance(exc, SystemExit):  # sys.exit() in plugin code ends its run, not the suite
        error["message"] = f"plugin called sys.exit({exc.code!r})" if exc.code is not None else "plugin called sys.exit()"
    if isinstance(exc, MemoryError) or _is_torch_out_of_memory(exc):
        error["hint"] = "out of memory: lower train.batch_size or dataset.image_size, or pick a smaller encoder"
    if isinstance(exc, Timeout):
        error["hint"] = "raise [train] timeout_s if the run is slow rather than stuck"
    return error


def _is_torch_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")  # a torch error means torch is loaded; this never loads it
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)


class Timeout(BaseException):
    """A run went past its ``[train] timeout_s``. A BaseException, like KeyboardInterrupt,
    so that a plugin's ``except Exception`` does not swallow it."""


def timeout_message(seconds: float) -> str:
    return f"run exceeded timeout_s = {seconds:g} s"


@contextlib.contextmanager
def time_limit(seconds):
    """Raise Timeout in this thread once ``seconds`` have passed (None: no limit).

    It uses SIGALRM, so it works on the main thread of a Unix process: Python code is
    interrupted at once, a hang inside one C call when that call returns. Elsewhere nothing
    is enforced here; the process executor also kills a worker stuck past the limit."""
    if seconds is None or not _can_alarm():
        if seconds is not None:
            warnings.warn(f"timeout_s = {seconds:g} s is not enforced: there is no SIGALRM here, or the run is not on the main thread",
                          RuntimeWarning, stacklevel=3)
        yield
        return

    def expire(signum, frame):
        raise Timeout(timeout_message(seconds))

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)  # None: not set from Python
        if outer:  # someone else's alarm (e.g. a test timeout) was pending: put it back
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def release_memory():
    """Give a failed (or finished) run's memory back before the next run starts: collect
    the run's own reference cycles (an exception's traceback holding its tensors, say).
    Objects older than the run were frozen when it started, so the collection scans only
    what the run made (a full collection over torch's, pandas' and matplotlib's objects
    took 0.7 s per run); they are unfrozen after it, to be collected as usual."""
    gc.collect()
    gc.unfreeze()
    torch = sys.modules.get("torch")  # a run has loaded it; nothing to give back otherwise
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
