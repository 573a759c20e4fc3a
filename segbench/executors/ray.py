"""One Ray task per run on a Ray cluster.

Each task asks Ray for one GPU when the cluster has GPUs, otherwise for ``RUN_CPUS`` CPUs
and runs torch on that many threads, so Ray packs as many runs on a node as it has cores.

A task needs nothing of the driver's working directory: it gets the suite's text and its
absolute path (``suite.source``), and the suite's local plugins by absolute path. The
plugins, the installed packages and the data must be reachable on every node (a shared
filesystem, or one machine). segbench's own environment variables (``SEGBENCH_*``: the
data folders, the cache) and those named with ``--env`` reach the tasks through Ray's
``runtime_env``. Records come back to the driver, which writes them.

Retries: Ray runs a task again when its worker or node died (``MAX_RETRIES`` times), never
when the run raised in Python; a record says how many attempts its run took
(``environment.attempts``).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time

from ..errors import SegbenchError
from ..execute import failed_record
from ..text import terminal
from .task import run_task

RUN_CPUS = 1
MAX_RETRIES = 3  # Ray's default for a task whose worker or node died; a Python error is never retried
RETRIED_DEATHS = ("WorkerCrashedError", "NodeDiedError")  # what Ray raises once those retries are spent
INSTALL_HINT = "install the extra: pip install 'segbench[ray]'"
FORWARDED_PREFIX = "SEGBENCH_"  # segbench's own variables: the data folders, the cache
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


REACH_TIMEOUT_S = 5


def check_reachable(address: str | None) -> None:
    """A HOST:PORT that answers no TCP connection is bad input at once (Ray itself would
    retry for minutes)."""
    if not address or address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SegbenchError(f"--ray-address {address!r}: expected 'auto' or HOST:PORT of the Ray head node")
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S).close()
    except OSError as error:
        raise SegbenchError(
            f"--ray-address {address}: nothing answers there ({error}); start the head with "
            "'ray start --head' and pass the address it prints, or use 'auto' on a cluster node"
        ) from None


def import_ray():
    try:
        import ray
    except ImportError:
        raise SegbenchError(f"--executor ray needs Ray, which is not installed; {INSTALL_HINT}") from None
    return ray


def env_names(given) -> list[str]:
    """The names ``--env`` gives: one text or a list of them (the flag repeated, or from
    the Python API), each maybe comma-separated."""
    texts = [given] if isinstance(given, str) else list(given or ())
    return [name.strip() for text in texts for name in str(text).split(",") if name.strip()]


def forwarded_env(names=(), environ=None) -> dict:
    """The variables the tasks get: every ``SEGBENCH_*`` set here, and each of ``names``,
    which must be set here (a typo would otherwise reach the workers as nothing)."""
    environ = os.environ if environ is None else environ
    bad = [name for name in names if not ENV_NAME.fullmatch(name)]
    if bad:
        raise SegbenchError(f"--env {', '.join(map(repr, bad))}: not a variable name; give NAME or NAME1,NAME2")
    unset = [name for name in names if name not in environ]
    if unset:
        raise SegbenchError(f"--env {', '.join(unset)}: not set in this environment, so there is nothing to forward; "
                            "export it before 'segbench run', or drop it from --env")
    forwarded = {name: value for name, value in environ.items() if name.startswith(FORWARDED_PREFIX)}
    return {**forwarded, **{name: environ[name] for name in names}}


def task_name(variant, seed) -> str:
    """What Ray (``ray list tasks``, the dashboard) calls the task of one run."""
    return f"segbench {terminal(variant.label)} seed={seed}"


class RayExecutor:
    name = "ray"
    shows_epochs = False

    def __init__(self, address: str | None, env=()):
        self.ray = import_ray()
        self.address = address
        self.env = forwarded_env(env_names(env))  # bad --env is bad input before Ray starts
        self._waiting = {}  # the tasks of the round being read: close() cancels those left
        self._connect()

    def _connect(self):
        if self.ray.is_initialized():
            return
        check_reachable(self.address)
        try:
            # Ray's own log lines (and the workers' output) stay out of segbench's output.
            self.ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False,
                          logging_level=logging.ERROR)
        except Exception as error:  # noqa: BLE001 - ray raises several types for a bad address
            where = self.address or "a new local Ray instance"
            raise SegbenchError(
                f"--ray-address {where}: cannot connect to Ray ({type(error).__name__}: {terminal(error)}); "
                "give 'auto' for the cluster this machine belongs to, or HOST:PORT of its head node"
            ) from None

    def records(self, suite, pending, cache_dir, on_epoch=None):
        gpus = self.ray.cluster_resources().get("GPU", 0)
        resources = {"num_gpus": 1} if gpus else {"num_cpus": RUN_CPUS}
        remote = self.ray.remote(**resources)(_run_with_threads)
        threads = 0 if gpus else RUN_CPUS
        source = self.ray.put(suite.source)  # the suite's text goes into the object store once, not once per task
        waiting = self._waiting = {
            self._task(remote, variant, seed).remote(source, variant.id, seed, str(cache_dir), threads):
                (variant, seed, time.perf_counter())
            for variant, seed in pending}
        while waiting:
            done, _ = self.ray.wait(list(waiting), num_returns=1)
            run = waiting.pop(done[0])
            yield self._record(done[0], suite, *run)

    def _task(self, remote, variant, seed):
        """The remote function as one run's task: named after it, retried only when its
        worker or node died, with segbench's environment variables."""
        options = {"name": task_name(variant, seed), "max_retries": MAX_RETRIES, "retry_exceptions": False}
        if self.env:
            options["runtime_env"] = {"env_vars": dict(self.env)}
        return remote.options(**options)

    def _record(self, ref, suite, variant, seed, started):
        """The task's record; a task that Ray could not finish (its worker died, the node
        was lost, it raised outside the run) is a failed run, not a crashed suite."""
        try:
            return self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - Ray raises several types for a lost task
            return failed_record(suite, variant, seed, task_failure(exc), started)

    def close(self):
        """Cancel the runs not yet read (Ctrl-C, --fail-fast): their tasks would go on in
        the cluster. ``force`` kills a task's worker, which a hung run needs."""
        for ref in list(self._waiting):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - finished meanwhile, or Ray is gone: nothing left to stop
                pass
        self._waiting = {}


def task_failure(exc: BaseException) -> dict:
    """The ``error`` of a record whose task Ray could not finish. A task that raised (a
    RayTaskError) is described by the last exception of its chain, the real cause, with
    the task's traceback; anything else (a dead worker, a lost node) by Ray's own first
    line. Terminal escapes (Ray colours its messages) are removed: they would reach the
    CSV and the report."""
    cause, traceback_text = exc, ""
    while _is_task_error(cause):  # nested when a task's task raised
        traceback_text = str(cause)  # Ray's text: where the task raised, ending with the cause
        inner = vars(cause).get("cause")  # not getattr: Ray's error passes unknown names on to the cause
        if not isinstance(inner, BaseException):
            break
        cause = inner
    text = terminal(cause).strip() if cause is not exc else (terminal(exc).strip().splitlines() or [repr(exc)])[0]
    error = {"type": type(cause).__name__, "message": f"Ray could not finish the run: {text}",
             "traceback": terminal(traceback_text).strip()}
    if type(exc).__name__ in RETRIED_DEATHS:
        error["hint"] = (f"Ray ran this task {MAX_RETRIES + 1} times and its worker or node died each time: "
                         "look for the out-of-memory killer or a lost node in Ray's logs")
    return error


def _is_task_error(exc) -> bool:
    try:
        from ray.exceptions import RayTaskError
    except ImportError:
        return False
    return isinstance(exc, RayTaskError)


def _run_with_threads(source, variant_id, seed, cache_dir, threads):
    if threads:
        import torch  # heavy: only in the Ray worker, where the run needs it anyway

        torch.set_num_threads(threads)
    record = run_task(source, variant_id, seed, cache_dir)
    attempt = _attempt_number()
    if attempt is not None and isinstance(record.get("environment"), dict):
        record["environment"]["attempts"] = attempt + 1
        if attempt:  # Ray retries a task only when its worker or node died (retry_exceptions=False)
            record["environment"]["retried_because"] = "the worker or node of an earlier attempt died"
    return record


def _attempt_number():
    """Which attempt of its task this is (0: the first); None when this Ray does not say.
    Ray keeps it in its core worker only (no public API in Ray 2.x)."""
    try:
        import ray

        return int(ray._private.worker.global_worker.core_worker.get_current_task_attempt_number())
    except Exception:  # noqa: BLE001 - an internal that another Ray version may lack
        return None
