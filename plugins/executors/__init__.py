"""The standard executors: ``local``, ``process``, ``ray`` and ``slurm``, registered through the
``segbench_executors`` hook exactly as a third-party executor is. Their code is segbench's
library (segbench.executors); each is imported only when chosen, so that loading this
plugin costs nothing."""

from segbench import ExecutorOption, hookimpl

WORKERS = ExecutorOption("workers", int, 1, "worker processes (default 1): one GPU each, or a share of the CPU threads",
                         metavar="N")
RAY_ADDRESS = ExecutorOption("ray_address", str, None, "the Ray cluster to run on (default: start a local one)",
                             metavar="auto|HOST:PORT")

ENV = ExecutorOption("env", str, None, "another environment variable the Ray or Slurm tasks get, as set here (SEGBENCH_* "
                     "always go); repeat it or separate names by commas", metavar="NAME", repeat=True)
SLURM_OPTIONS = [
    ExecutorOption("slurm_partition", str, None, "the Slurm partition the tasks run in (default: the cluster's)", metavar="NAME"),
    ExecutorOption("slurm_time", str, "4:00:00", "each task's time limit: minutes or Slurm's format, e.g. 90 or 1-12:00:00 "
                   "(default 4:00:00)", metavar="TIME"),
    ExecutorOption("slurm_gpus", int, 0, "GPUs per task (default 0)", metavar="N"),
    ExecutorOption("slurm_account", str, None, "the Slurm account charged (default: yours)", metavar="NAME"),
    ExecutorOption("slurm_array_parallelism", int, None, "how many tasks of the array run at once (default: submitit's, 256)",
                   metavar="N"),
    ExecutorOption("slurm_cluster", str, "auto", "slurm, or local to run the tasks as processes on this machine through "
                   "submitit (default auto: slurm where srun exists)", metavar="auto|slurm|local"),
]


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


def slurm(*, slurm_partition=None, slurm_time="4:00:00", slurm_gpus=0, slurm_account=None, slurm_array_parallelism=None,
          slurm_cluster="auto", env=None):
    """One Slurm array task per run, through submitit; needs pip install 'segbench[slurm]'."""
    from segbench.executors.slurm import SlurmExecutor

    return SlurmExecutor(slurm_partition, slurm_time, slurm_gpus, slurm_account, slurm_array_parallelism, slurm_cluster, env)


@hookimpl
def segbench_executors(register):
    register.add_executor("local", local)
    register.add_executor("process", process, options=[WORKERS])
    register.add_executor("ray", ray, options=[RAY_ADDRESS, ENV])
    register.add_executor("slurm", slurm, options=[*SLURM_OPTIONS, ENV])
