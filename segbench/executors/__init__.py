"""Executors run the pending (variant, seed) pairs of a suite and yield their records as
they finish; the runner writes each record and draws the progress.

- ``local`` (default): one after another in this process.
- ``process``: a pool of ``--workers`` processes on this machine; each worker gets one GPU
  (CUDA_VISIBLE_DEVICES) when there are GPUs, otherwise an equal share of the CPU threads.
- ``ray``: one Ray task per run on a Ray cluster (``--ray-address``), each asking for one
  GPU, or CPUs when the cluster has no GPU; needs ``pip install 'segbench[ray]'``.

Workers load the suite again from its file (with the same plugins and overrides), find the
variant by its id and run it exactly as the local executor would, so results do not depend
on the executor. Whatever ends a run (an exception, ``sys.exit()``, its ``timeout_s``, a
worker that dies, a task Ray loses) ends in that run's failed record, never in the suite.
"""

from __future__ import annotations

from ..components import unknown_name_message
from ..errors import SegbenchError

EXECUTORS = ("local", "process", "ray")


def make_executor(name: str, workers: int = 1, ray_address: str | None = None):
    """The executor called ``name``; bad settings are bad input (exit 2), found before training."""
    if name not in EXECUTORS:
        raise SegbenchError(unknown_name_message("executor", name, list(EXECUTORS)))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SegbenchError(f"--workers must be an integer >= 1, got {workers!r}")
    if name == "local":
        from .local import LocalExecutor

        return LocalExecutor()
    if name == "process":
        from .process import ProcessExecutor

        return ProcessExecutor(workers)
    from .ray import RayExecutor

    return RayExecutor(ray_address)
