"""A pool of worker processes on this machine.

Each worker is started fresh (``spawn``: CUDA cannot be forked) and pinned before torch
starts: with GPUs, worker i sees only GPU ``i % count`` (CUDA_VISIBLE_DEVICES); without,
the CPU threads are split evenly, so two workers do not fight over the same cores.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os

from .task import run_task


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _setup_worker(slots, threads):
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    import torch

    torch.set_num_threads(threads)


class ProcessExecutor:
    name = "process"
    shows_epochs = False

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None

    def records(self, suite, pending, cache_dir, on_epoch=None):
        if self.pool is None:  # one pool for every round of a suite
            self.pool = self._start()
        futures = [self.pool.submit(run_task, suite.source, variant.id, seed, str(cache_dir)) for variant, seed in pending]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()

    def _start(self):
        import torch

        context = multiprocessing.get_context("spawn")
        slots = context.Queue()
        gpus = torch.cuda.device_count()
        for index in range(self.workers):
            slots.put(index % gpus if gpus else None)
        threads = 1 if gpus else max(1, cpu_count() // self.workers)
        return concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context, initializer=_setup_worker, initargs=(slots, threads))

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
