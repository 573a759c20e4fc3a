"""One Ray task per run on a Ray cluster.

Each task asks Ray for one GPU when the cluster has GPUs, otherwise for ``RUN_CPUS`` CPUs
and runs torch on that many threads, so Ray packs as many runs on a node as it has cores.
The suite file, its plugins and the data cache must be reachable at the same paths on
every node (a shared filesystem, or one machine). Records come back to the driver, which
writes them.
"""

from __future__ import annotations

import socket
import time

from ..errors import SegbenchError
from ..execute import failed_record
from .task import run_task

RUN_CPUS = 1
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


class RayExecutor:
    name = "ray"
    shows_epochs = False

    def __init__(self, address: str | None):
        self.ray = import_ray()
        self.address = address
        self._waiting = {}  # the tasks of the round being read: close() cancels those left
        self._connect()

    def _connect(self):
        if self.ray.is_initialized():
            return
        check_reachable(self.address)
        try:
            self.ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
        except Exception as error:  # noqa: BLE001 - ray raises several types for a bad address
            where = self.address or "a new local Ray instance"
            raise SegbenchError(
                f"--ray-address {where}: cannot connect to Ray ({type(error).__name__}: {error}); "
                "give 'auto' for the cluster this machine belongs to, or HOST:PORT of its head node"
            ) from None

    def records(self, suite, pending, cache_dir, on_epoch=None):
        gpus = self.ray.cluster_resources().get("GPU", 0)
        resources = {"num_gpus": 1} if gpus else {"num_cpus": RUN_CPUS}
        remote = self.ray.remote(**resources)(_run_with_threads)
        threads = 0 if gpus else RUN_CPUS
        waiting = self._waiting = {
            remote.remote(suite.source, variant.id, seed, str(cache_dir), threads): (variant, seed, time.perf_counter())
            for variant, seed in pending}
        while waiting:
            done, _ = self.ray.wait(list(waiting), num_returns=1)
            run = waiting.pop(done[0])
            yield self._record(done[0], suite, *run)

    def _record(self, ref, suite, variant, seed, started):
        """The task's record; a task that Ray could not finish (its worker died, the node
        was lost) is a failed run, not a crashed suite."""
        try:
            return self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - Ray raises several types for a lost task
            first_line = (str(exc).strip().splitlines() or [repr(exc)])[0]
            error = {"type": type(exc).__name__, "message": f"Ray could not finish the run: {first_line}"}
            return failed_record(suite, variant, seed, error, started)

    def close(self):
        """Cancel the runs not yet read (Ctrl-C, --fail-fast): their tasks would go on in
        the cluster. ``force`` kills a task's worker, which a hung run needs."""
        for ref in list(self._waiting):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - finished meanwhile, or Ray is gone: nothing left to stop
                pass
        self._waiting = {}


def _run_with_threads(source, variant_id, seed, cache_dir, threads):
    if threads:
        import torch  # heavy: only in the Ray worker, where the run needs it anyway

        torch.set_num_threads(threads)
    return run_task(source, variant_id, seed, cache_dir)
