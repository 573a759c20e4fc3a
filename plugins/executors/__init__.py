"""The standard executors: ``local``, ``process`` and ``ray``, registered through the
``segbench_executors`` hook exactly as a third-party executor is. Their code is segbench's
library (segbench.executors); each is imported only when chosen, so that loading this
plugin costs nothing."""

from segbench import ExecutorOption, hookimpl

WORKERS = ExecutorOption("workers", int, 1, "worker processes (default 1): one GPU each, or a share of the CPU threads",
                         metavar="N")
RAY_ADDRESS = ExecutorOption("ray_address", str, None, "the Ray cluster to run on (default: start a local one)",
                             metavar="auto|HOST:PORT")

ENV = ExecutorOption("env", str, None, "another environment variable the Ray tasks get, as set here (SEGBENCH_* always go); "
                     "repeat it or separate names by commas", metavar="NAME", repeat=True)


def local():
    """One run after another in this process (the default); shows each epoch."""
    from segbench.executors.local import LocalExecutor

    return LocalExecutor()


def process(*, workers: int = 1):
    """A pool of worker processes on this machine: one GPU each, or a share of the CPU threads."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be an integer >= 1, got {workers!r}")
    from segbench.executors.process import ProcessExecutor

    return ProcessExecutor(workers)


def ray(*, ray_address: str | None = None, env=None):
    """One Ray task per run on a Ray cluster; needs pip install 'segbench[ray]'."""
    from segbench.executors.ray import RayExecutor

    return RayExecutor(ray_address, env)


@hookimpl
def segbench_executors(register):
    register.add_executor("local", local)
    register.add_executor("process", process, options=[WORKERS])
    register.add_executor("ray", ray, options=[RAY_ADDRESS, ENV])
