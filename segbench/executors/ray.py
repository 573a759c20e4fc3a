"""One Ray task per run on a Ray cluster.

Each task asks Ray for one GPU when the cluster has GPUs, otherwise for ``RUN_CPUS`` CPUs
and runs torch on that many threads.

A task needs nothing of the driver's files: it gets the suite's text and its absolute path
(``suite.source``), and the suite's local plugin files by content. The installed packages
and the data must be there on every node. segbench's own environment variables
(``SEGBENCH_*``: the data folders, the cache) and those named with ``--env`` reach the
tasks through Ray's ``runtime_env``. Records come back to the driver, which writes them.

Before the runs go out, each node is checked once (:mod:`.ray_nodes`); each run is then
pinned to a good node with a free slot. A node whose tasks fail twice in a row outside
the run is drained, and its runs go to other nodes.

Retries: Ray runs a task again when its worker or node died (``MAX_RETRIES`` times), never
when the run raised in Python; a record says how many attempts its run took
(``environment.attempts``)."""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from tqdm import tqdm

from ..errors import SegbenchError
from ..execute import failed_record
from ..text import one_line, terminal
from .ray_nodes import Dispatch, checked_nodes, last_line, nodes_for_runs
from .forwarding import env_names, forwarded_env
from .task import run_task

RUN_CPUS = 1
MAX_RETRIES = 3  # Ray's default for a task whose worker or node died; a Python error is never retried
RETRIED_DEATHS = ("WorkerCrashedError", "NodeDiedError")  # what Ray raises once those retries are spent
INSTALL_HINT = "install the extra: pip install 'segbench[ray]'"


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
        self.notes = []  # nodes left out or drained: the runner keeps these in the suite's outcome
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
        resources = self._run_resources()
        remote = self.ray.remote(**resources)(_run_with_threads)
        threads = 0 if "num_gpus" in resources else RUN_CPUS
        source = self.ray.put(suite.source)  # the suite's text goes into the object store once, not once per task
        variant_ids = list(dict.fromkeys(variant.id for variant, _ in pending))
        nodes = checked_nodes(self.ray, nodes_for_runs(self.ray, resources), resources, source, variant_ids, str(cache_dir), self._warn)
        dispatch = Dispatch(nodes, self._warn)
        queue = deque(_Run(variant, seed, time.perf_counter()) for variant, seed in pending)
        waiting = self._waiting = {}
        while queue or waiting:
            self._send(queue, dispatch, waiting, remote, source, str(cache_dir), threads)
            if not waiting:  # runs left, and no node may take them
                while queue:
                    run = queue.popleft()
                    yield failed_record(suite, run.variant, run.seed, run.no_node_error(dispatch.none_left()), run.started)
                break
            done, _ = self.ray.wait(list(waiting), num_returns=1)
            run, node = waiting.pop(done[0])
            record = self._record(done[0], suite, run, node, dispatch)
            if record is None:
                queue.appendleft(run)  # sent again, to another node
            else:
                yield record

    def _send(self, queue, dispatch, waiting, remote, source, cache_dir, threads):
        """Send each queued run that a node has a free slot for; a run no node may take any
        more stays queued (the caller fails it once nothing is running)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        kept = deque()
        while queue:
            run = queue.popleft()
            node = dispatch.node_for(run.tried)
            if node is None:
                kept.append(run)
                continue
            task = self._task(remote, run.variant, run.seed, scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=False))
            waiting[task.remote(source, run.variant.id, run.seed, cache_dir, threads)] = (run, node)
            dispatch.sent(node)
        queue.extend(kept)

    def _record(self, ref, suite, run, node, dispatch):
        """The run's record; None when its task failed outside the run on ``node`` and
        another node may take it. A task that Ray could not finish on any node it was sent
        to (its worker died, the node was lost, it raised outside the run) is a failed run,
        not a crashed suite."""
        try:
            record = self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - Ray raises several types for a lost task
            cause = last_line(exc)
            dispatch.failed(node, cause)
            run.tried.append(node)
            run.causes.append(f"{node.name}: {cause}")
            if dispatch.could_take(run.tried):
                return None
            error = task_failure(exc)
            if len(run.tried) > 1:
                error["hint"] = "its task failed outside the run on each node it was sent to: " + "; ".join(run.causes)
            return failed_record(suite, run.variant, run.seed, error, run.started)
        dispatch.returned(node)
        return run.annotated(record)

    def _run_resources(self) -> dict:
        """What one run's task asks Ray for: a GPU when the cluster has any, else ``RUN_CPUS``."""
        return {"num_gpus": 1} if self.ray.cluster_resources().get("GPU", 0) else {"num_cpus": RUN_CPUS}

    def _task(self, remote, variant, seed, **placed):
        """The remote function as one run's task (named after it); ``placed``: where it runs."""
        return self._named(remote, task_name(variant, seed), **placed)

    def _named(self, remote, name, **placed):
        """The remote function as a task named ``name``, retried only when its worker or node
        died, with segbench's environment variables."""
        options = {"name": name, "max_retries": MAX_RETRIES, "retry_exceptions": False, **placed}
        if self.env:
            options["runtime_env"] = {"env_vars": dict(self.env)}
        return remote.options(**options)

    def _warn(self, text):
        """A problem with a node: on stderr even with -q, and kept in the suite's notes."""
        self.notes.append(text)
        tqdm.write(one_line(f"segbench: warning: {text}"), file=sys.stderr)

    def close(self):
        """Cancel the runs not yet read (Ctrl-C, --fail-fast): their tasks would go on in
        the cluster. ``force`` kills a task's worker, which a hung run needs."""
        for ref in list(self._waiting):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - finished meanwhile, or Ray is gone: nothing left to stop
                pass
        self._waiting = {}

    def preflight(self, suite, variant_ids, cache_dir) -> list:
        """The preflight of ``variant_ids`` as one Ray task, placed and given the environment
        as a run's task is (``--preflight-on workers``; segbench.preflight_remote)."""
        from ..preflight_remote import check_on_worker, preflight_problems

        remote = self.ray.remote(**self._run_resources())(check_on_worker)
        ref = self._named(remote, "segbench preflight").remote(suite.source, sorted(variant_ids), str(cache_dir))
        try:
            reply = self.ray.get(ref)
        except KeyboardInterrupt:
            self.ray.cancel(ref, force=True)
            raise
        except Exception as exc:  # noqa: BLE001 - Ray raises several types for a lost task
            cause = task_failure(exc)["message"].removeprefix("Ray could not finish the run: ")
            raise SegbenchError(f"--preflight-on workers: Ray could not finish the preflight's task: {cause}; "
                                "--preflight-on driver runs it on this machine") from None
        return preflight_problems(reply)


@dataclass(eq=False)
class _Run:
    """One run on its way through the cluster: the nodes whose task failed it so far."""

    variant: object
    seed: int
    started: float
    tried: list = field(default_factory=list)
    causes: list = field(default_factory=list)

    def no_node_error(self, why: str) -> dict:
        tried = f"; it failed outside the run on {'; '.join(self.causes)}" if self.causes else ""
        return {"type": "NoRayNode", "message": f"Ray could not finish the run: {why}{tried}",
                "hint": "the nodes named on stderr (and in the suite's notes) lack what the runs need; fix them and run again"}

    def annotated(self, record):
        """The record, saying on which nodes its task failed before (the attempts there count)."""
        environment = record.get("environment") if isinstance(record, dict) else None
        if self.causes and isinstance(environment, dict):
            environment["attempts"] = environment.get("attempts", 1) + len(self.causes)
            environment["retried_because"] = "its task failed outside the run on " + "; ".join(self.causes)
        return record


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
