"""An example segbench executor, ``subprocess``: each run in a fresh Python process, one
after another. Whatever a run does to its process (a crash in native code, a leak, a
global setting) ends with it; the suite goes on. ``--log-dir DIR`` keeps each run's output
in ``DIR/<variant id>-seed-<n>.log``.

The child loads the suite again from ``suite.source`` and runs one (variant, seed) with
``segbench.run_task``, exactly as segbench's own process executor does, so
the records do not depend on the executor."""

import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from segbench import ExecutorOption, failed_run, hookimpl

# What the child runs: argv is the suite's source (a repr), the variant id, the seed, the
# data cache and the file to write the record to.
CHILD = """
import ast, os, pickle, sys
from segbench import run_task
source, variant_id, seed, cache_dir, out = sys.argv[1:]
print(f"segbench-example-executor: pid {os.getpid()} runs {variant_id} seed {seed}", flush=True)
record = run_task(ast.literal_eval(source), variant_id, int(seed), cache_dir)
with open(out, "wb") as f:
    pickle.dump(record, f)
"""


class SubprocessExecutor:
    shows_epochs = False  # the epochs happen in another process

    def __init__(self, log_dir=None):
        self.log_dir = Path(log_dir) if log_dir else None

    def records(self, suite, pending, cache_dir, on_epoch=None):
        """The record of each pending run, each run in its own process."""
        for variant, seed in pending:
            yield self.run(suite, variant, seed, cache_dir)

    def run(self, suite, variant, seed, cache_dir):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "record.pickle"
            argv = [sys.executable, "-c", CHILD, repr(suite.source), variant.id, str(seed), str(cache_dir), str(out)]
            with self.log(variant, seed) as log:
                code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
            if out.exists():
                return pickle.loads(out.read_bytes())
        error = {"type": "SubprocessDied", "message": f"the run's process ended with exit code {code} before writing its record"}
        return failed_run(suite, variant, seed, error, started)

    def log(self, variant, seed):
        if self.log_dir is None:
            return open(os.devnull, "w")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{variant.id}-seed-{seed}.log", "w")

    def close(self):
        pass  # each process has ended with its run


def subprocess_executor(*, log_dir: str | None = None):
    """Each run in a fresh Python process, one after another (--log-dir keeps their output)."""
    return SubprocessExecutor(log_dir)


LOG_DIR = ExecutorOption("log_dir", str, None, "keep each run's output in DIR/<variant id>-seed-<n>.log", metavar="DIR")


@hookimpl
def segbench_executors(register):
    register.add_executor("subprocess", subprocess_executor, options=[LOG_DIR])
