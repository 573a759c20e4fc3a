"""A pool of worker processes on this machine.

Each worker is started fresh (``spawn``: CUDA cannot be forked) and pinned before torch
starts: with GPUs, worker i sees only GPU ``i % count`` (CUDA_VISIBLE_DEVICES); without,
the CPU threads are split evenly, so two workers do not fight over the same cores. The
same workers serve every round of a suite (adaptive seeds send several).

A failure stays in its run. A worker that dies (a segfault, the out-of-memory killer,
``os._exit``) becomes a failed record of the one run it was running ("worker died:
signal 9 (SIGKILL)"), and a fresh worker on the same GPU takes its place. So does a
worker still busy ``KILL_GRACE_S`` after its run's ``[train] timeout_s``: the run's own
alarm (segbench.execute.time_limit) normally ends it first, but not a hang inside one C
call. The pool is hand-made rather than concurrent.futures': there one dead worker
breaks the whole pool, fails every pending run, and does not say which run it was
running; nor can a single task be stopped there.

No worker outlives the driver. Each leads a process group of its own, with whatever it
starts (DataLoader workers): Ctrl-C, SIGTERM or SIGHUP of the driver (segbench.crash turns
the last two into the same clean stop) closes the pool, which kills each busy worker's
whole group. A driver killed outright (SIGKILL) runs nothing, so each worker watches a
"lifeline" pipe whose other end only the driver holds: the kernel closes it when the
driver dies, however it dies, and the worker then kills its own group.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from ..execute import describe_failure, execute, failed_record, timeout_message
from ..preflight_watch import awaited_problems, preflight_limit
from .task import find_run

KILL_GRACE_S = 10.0  # past a run's timeout_s, for its own alarm to end it before its worker is killed
STOP_WAIT_S = 10.0  # for an idle worker to exit when told to, before it is killed
PREFLIGHT = "preflight"  # a task that is the suite's preflight, not a run


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ProcessExecutor:
    name = "process"
    shows_epochs = False

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: list[_Worker] = []

    def records(self, suite, pending, cache_dir, on_epoch=None):
        """Each pending run's record, in the order they finish."""
        if not self._pool:  # one pool for every round of a suite
            self._pool = self._start()
        for index, worker in enumerate(self._pool):
            if worker.job is not None:  # left busy by a round nobody awaited to the end
                self._pool[index] = worker.replacement()
        queue = deque(pending)
        while queue or self._busy():
            self._hand_out(queue, suite, cache_dir)
            for worker in self._ready():
                record = self._collect(worker, suite)
                if record is not None:
                    yield record

    def preflight(self, suite, variant_ids, cache_dir) -> list:
        """The preflight of ``variant_ids`` in the first worker (``--preflight-on workers``),
        each step within the suite's timeout_s: a worker that hangs or dies there is named
        (exit 2) and killed (the next round starts a fresh one in its place)."""
        if not self._pool:
            self._pool = self._start()
        worker = self._pool[0]
        with contextlib.suppress(OSError):  # a worker dead already is named as any death
            worker.connection.send((PREFLIGHT, suite.source, sorted(variant_ids), str(cache_dir)))
        try:
            return awaited_problems(worker.connection, worker.process, preflight_limit(suite))
        except BaseException:
            worker.kill()  # still checking (past its time, Ctrl-C), or dead
            raise

    def close(self):
        """Stop every worker; one still running a run (Ctrl-C, --fail-fast) is killed."""
        for worker in self._pool:
            worker.stop()
        self._pool = []

    def _start(self):
        import torch  # heavy; and a worker imports this module before torch may start (see serve)

        context = multiprocessing.get_context("spawn")
        gpus = torch.cuda.device_count()
        threads = 1 if gpus else max(1, cpu_count() // self.workers)
        return [_Worker(context, index % gpus if gpus else None, threads) for index in range(self.workers)]

    def _busy(self):
        return [worker for worker in self._pool if worker.job is not None]

    def _hand_out(self, queue, suite, cache_dir):
        for index, worker in enumerate(self._pool):
            if not queue:
                return
            if worker.job is not None:
                continue
            if not worker.process.is_alive():  # died between runs: no run to blame
                worker = self._pool[index] = worker.replacement()
            variant, seed = queue.popleft()
            worker.assign(_Job(variant, seed), (suite.source, variant.id, seed, str(cache_dir)))

    def _ready(self):
        """The busy workers that have something to say, have died, or are overdue."""
        busy = self._busy()
        deadlines = [worker.job.deadline for worker in busy if worker.job.deadline is not None]
        wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        handles = [worker.connection for worker in busy] + [worker.process.sentinel for worker in busy]
        ready = set(multiprocessing.connection.wait(handles, wait_s))
        now = time.monotonic()
        return [worker for worker in busy if {worker.connection, worker.process.sentinel} & ready or worker.job.overdue(now)]

    def _collect(self, worker, suite):
        """Read one message of ``worker``: the record of its run, or None while it runs. A
        worker that died or went past its run's timeout is replaced, its run failed."""
        job = worker.job
        message = worker.receive()
        if message is not None:
            kind, payload = message
            if kind == "started":
                job.running(job.variant.config["train"].get("timeout_s"))
                return None
            worker.job = None
            if kind == "record":
                return payload
            return failed_record(suite, job.variant, job.seed, payload, job.started)  # failed outside the run
        if worker.process.is_alive() and job.overdue(time.monotonic()):
            timeout = job.variant.config["train"]["timeout_s"]
            error = {"type": "Timeout", "message": f"{timeout_message(timeout)}; its worker did not stop and was killed",
                     "hint": "the run hung inside a call that Python could not interrupt"}
        else:
            error = worker.death()
        self._pool[self._pool.index(worker)] = worker.replacement()
        return failed_record(suite, job.variant, job.seed, error, job.started)


@dataclass
class _Job:
    """One run handed to a worker."""

    variant: object
    seed: int
    started: float = field(default_factory=time.perf_counter)
    deadline: float | None = None  # monotonic time past which its worker is killed

    def running(self, timeout_s):
        """The worker has loaded the suite and started the run itself."""
        if timeout_s is not None:
            self.deadline = time.monotonic() + timeout_s + KILL_GRACE_S

    def overdue(self, now) -> bool:
        return self.deadline is not None and now >= self.deadline


class _Worker:
    """One process, its end of the pipe, and the run it is on (``job``, None when idle)."""

    def __init__(self, context, gpu, threads):
        self.context, self.gpu, self.threads = context, gpu, threads
        self.connection, child = context.Pipe()
        lifeline, self.lifeline = context.Pipe(duplex=False)  # never written: only its closing speaks
        self.process = context.Process(target=serve, args=(child, gpu, threads, lifeline), name="segbench-worker")
        self.process.start()
        child.close()  # so that the worker's ends read EOF once this process is gone
        lifeline.close()
        self.job = None

    def assign(self, job, task):
        self.job = job
        try:
            self.connection.send(task)
        except OSError:  # it died meanwhile: its sentinel tells the rest
            pass

    def receive(self):
        """The next message, or None when the worker has died (or has nothing to say)."""
        try:
            if self.connection.poll():
                return self.connection.recv()
        except (EOFError, OSError):
            pass
        return None

    def death(self) -> dict:
        self.process.join(STOP_WAIT_S)
        return describe_death(self.process.exitcode)

    def replacement(self):
        """Kill this worker; a fresh one on the same GPU."""
        self.kill()
        return _Worker(self.context, self.gpu, self.threads)

    def stop(self):
        if self.job is not None:
            self.kill()
            return
        try:
            self.connection.send(None)
        except OSError:
            pass
        self.process.join(STOP_WAIT_S)
        self.kill()

    def kill(self):
        """Kill the worker and every process it started (its process group, see serve)."""
        if hasattr(os, "killpg"):
            # the group that the worker leads: none until it has called setsid, and a pid
            # is not reused while its group lives, so this never reaches another process
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.is_alive():  # killed before it led a group of its own
            self.process.kill()
        self.process.join()
        self.connection.close()
        self.lifeline.close()


def describe_death(exitcode) -> dict:
    """The error of a run whose worker died: which signal or exit code ended it."""
    if exitcode is None:
        return {"type": "WorkerDied", "message": "worker died"}
    if exitcode >= 0:
        return {"type": "WorkerDied", "message": f"worker died: exit code {exitcode}"}
    try:
        name = f" ({signal.Signals(-exitcode).name})"
    except ValueError:
        name = ""
    error = {"type": "WorkerDied", "message": f"worker died: signal {-exitcode}{name}"}
    if -exitcode == signal.SIGKILL:
        error["hint"] = "killed from outside, often by the out-of-memory killer: lower train.batch_size, dataset.image_size or --workers"
    return error


def serve(connection, gpu, threads, lifeline):
    """A worker's life: take (source, variant id, seed, cache dir) tasks until told to stop
    (None) or the driver is gone; say "started" once the run begins, then send its record.
    A ``PREFLIGHT`` task is the suite's preflight (segbench.preflight_remote).
    Whenever the driver dies, ``lifeline`` reads EOF and the worker ends with all it started."""
    lead_own_group()
    die_with_the_driver(lifeline)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops the workers
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    import torch  # only now: CUDA reads CUDA_VISIBLE_DEVICES once, when torch starts it

    torch.set_num_threads(threads)
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        if task[0] == PREFLIGHT:
            from ..preflight_remote import serve_on_worker  # heavy: the preflight's checks

            serve_on_worker(connection, *task[1:])
            continue
        source, variant_id, seed, cache_dir = task
        try:
            suite, variant = find_run(source, variant_id)
            connection.send(("started", None))
            reply = ("record", execute(suite, variant, seed, cache_dir))
        except BaseException as exc:  # noqa: BLE001 - a failure around the run is still this run's
            reply = ("error", describe_failure(exc))
        try:
            connection.send(reply)
        except OSError:  # the driver has gone
            return


def lead_own_group():
    """Make this worker the leader of a new session and process group, which whatever it
    starts joins: the driver ends them all at once (``killpg``), and a Ctrl-C typed in the
    terminal reaches the driver alone."""
    if hasattr(os, "setsid"):
        os.setsid()


def die_with_the_driver(lifeline):
    """Kill this worker and its group once the driver is gone, even mid-run: a daemon thread
    blocks on ``lifeline``, which reads EOF when the driver's end closes (it exits or is
    killed). Not PR_SET_PDEATHSIG: that would kill the worker alone, leaving its own children."""

    def watch():
        with contextlib.suppress(EOFError, OSError):
            lifeline.recv_bytes()
        if hasattr(os, "killpg") and os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os._exit(1)

    threading.Thread(target=watch, name="segbench-lifeline", daemon=True).start()
