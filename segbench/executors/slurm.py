"""One Slurm array task per run, submitted through submitit.

The pending runs of a round go out as one job array (``--slurm-array-parallelism`` of
them at a time). Each task gets the suite's text and absolute path (``suite.source``),
segbench's environment variables (``SEGBENCH_*``) and those named with ``--env``, and
runs exactly as the local executor would, ``[train] threads`` included. Its record comes
back through the shared filesystem: submitit's job folder ``<results>/<suite>/slurm/``
holds each task's pickled record and its logs (``<job>_<task>_0_log.out``/``.err``); the
driver yields each record as its task finishes and writes it as usual.

A task that ends without a record (timed out, preempted and not requeued, cancelled, out
of memory, its node lost, or raising outside the run) becomes a failed record naming the
job, its Slurm state and its log, which the next ``segbench run`` redoes. ``close()``
(Ctrl-C, SIGTERM, SIGHUP, ``--fail-fast``) cancels the tasks not read yet.

``--slurm-cluster local`` runs the same tasks as processes on this machine through
submitit's local executor (the tests use it); ``auto`` (the default) is Slurm wherever
``srun`` exists, else local.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import SegbenchError
from ..execute import failed_record
from ..text import terminal
from .forwarding import env_names, forwarded_env  # the same --env as the Ray tasks
from .task import run_task

INSTALL_HINT = "install the extra: pip install 'segbench[slurm]'"
CLUSTERS = ("auto", "slurm", "local")
DEFAULT_TIME = "4:00:00"
FOLDER_NAME = "slurm"  # under the suite's results folder
POLL_S = 0.5  # how often the driver looks for finished tasks (a file each, no Slurm command)
STATE_POLL_S = 10.0  # how often it asks Slurm (squeue) about tasks that left no record
LOG_TAIL_LINES = 30
TEST_ONLY_TIMEOUT_S = 30
# Slurm's time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
TIME_FORMATS = (
    (re.compile(r"(?P<m>\d+)"), ("m",)),
    (re.compile(r"(?P<m>\d+):(?P<s>\d+)"), ("m", "s")),
    (re.compile(r"(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)"), ("h", "m", "s")),
    (re.compile(r"(?P<d>\d+)-(?P<h>\d+)"), ("d", "h")),
    (re.compile(r"(?P<d>\d+)-(?P<h>\d+):(?P<m>\d+)"), ("d", "h", "m")),
    (re.compile(r"(?P<d>\d+)-(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)"), ("d", "h", "m", "s")),
)
MINUTES = {"d": 1440.0, "h": 60.0, "m": 1.0, "s": 1 / 60}
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT"}


def import_submitit():
    try:
        import submitit
    except ImportError:
        raise SegbenchError(f"--executor slurm needs submitit, which is not installed; {INSTALL_HINT}") from None
    return submitit


def time_minutes(text) -> int:
    """``--slurm-time`` in whole minutes (seconds round up): minutes, or one of Slurm's formats."""
    given = str(text).strip()
    for pattern, parts in TIME_FORMATS:
        match = pattern.fullmatch(given)
        if match:
            minutes = math.ceil(sum(int(match[part]) * MINUTES[part] for part in parts) - 1e-9)
            if minutes > 0:
                return minutes
    raise SegbenchError(f"--slurm-time {given!r}: expected minutes (90) or Slurm's time format "
                        "(MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS), more than zero")


def counted(flag, value, least):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
        raise SegbenchError(f"{flag}: expected an integer >= {least}, got {value!r}")
    return value


def job_name(suite) -> str:
    """What ``squeue`` shows for a round's array; each task's log starts with its run."""
    return f"segbench-{re.sub(r'[^A-Za-z0-9_.-]+', '_', suite.name)}"


def run_label(variant, seed) -> str:
    return f"{terminal(variant.label)} seed={seed}"


class SlurmExecutor:
    name = "slurm"
    shows_epochs = False

    def __init__(self, partition=None, time_limit=DEFAULT_TIME, gpus=0, account=None, array_parallelism=None,
                 cluster="auto", env=()):
        self.submitit = import_submitit()
        if cluster not in CLUSTERS:
            raise SegbenchError(f"--slurm-cluster {cluster!r}: expected one of {', '.join(CLUSTERS)}")
        self.cluster = self.submitit.AutoExecutor.which() if cluster == "auto" else cluster
        self.time_limit = time_limit
        self.minutes = time_minutes(time_limit)
        self.gpus = counted("--slurm-gpus", gpus, 0)
        self.partition, self.account = partition, account
        self.array_parallelism = counted("--slurm-array-parallelism", array_parallelism, 1)
        self.env = forwarded_env(env_names(env))  # an unknown --env is bad input before anything is submitted
        self.folder = None  # the runner gives the results folder (use_results_folder); else a temporary one
        self._waiting = {}  # the tasks not read yet: close() cancels them
        if self.cluster == "slurm":
            check_with_slurm(self.sbatch_options(), {"--slurm-time": time_limit})

    # --- what Slurm is asked for -------------------------------------------------------

    def sbatch_options(self) -> dict:
        """segbench's flag -> (sbatch's flag, value) for each option given: what each array
        task asks Slurm for, and what ``sbatch --test-only`` checks."""
        options = {"--slurm-time": ("--time", self.minutes),
                   "--slurm-partition": ("--partition", self.partition), "--slurm-account": ("--account", self.account),
                   "--slurm-gpus": ("--gpus-per-node", self.gpus or None)}
        return {flag: asked for flag, asked in options.items() if asked[1] is not None}

    def parameters(self, suite) -> dict:
        """submitit's parameters for a round of ``suite``'s runs."""
        parameters = {"name": job_name(suite), "timeout_min": self.minutes,
                      "gpus_per_node": self.gpus, "tasks_per_node": 1, "nodes": 1, "cpus_per_task": cpus_per_task(suite)}
        slurm = {"slurm_partition": self.partition, "slurm_account": self.account, "slurm_array_parallelism": self.array_parallelism,
                 "slurm_signal_delay_s": signal_delay_s(self.minutes)}
        return {**parameters, **{key: value for key, value in slurm.items() if value is not None}}

    # --- the executor protocol ----------------------------------------------------------

    def use_results_folder(self, suite_folder):
        """Called by the runner: the job folder goes under the suite's results folder, which
        the driver and the nodes share."""
        self.folder = Path(suite_folder).absolute() / FOLDER_NAME

    def records(self, suite, pending, cache_dir, on_epoch=None):
        executor = self.submitit.AutoExecutor(folder=self._job_folder(), cluster=self.cluster)
        executor.update_parameters(**self.parameters(suite))
        runs = list(pending)
        jobs = executor.map_array(run_job, [suite.source] * len(runs), [v.id for v, _ in runs], [s for _, s in runs],
                                  [str(cache_dir)] * len(runs), [run_label(v, s) for v, s in runs], [self.env] * len(runs))
        started = time.perf_counter()
        waiting = self._waiting = {job: (variant, seed, started) for job, (variant, seed) in zip(jobs, runs)}
        states = SlurmStates(self.cluster == "slurm")
        while waiting:
            finished = [job for job in waiting if self._done(job, states)]
            for job in finished:
                yield self._record(job, suite, *waiting.pop(job), states)
            if not finished:
                time.sleep(POLL_S)

    def _done(self, job, states) -> bool:
        """Its record is in the job folder, or it ended without one. On Slurm, squeue says
        which ended (submitit's own check asks sacct, which needs accounting)."""
        if self.cluster != "slurm":
            return job.done()
        return has_result(job) or states.ended(job)

    def _job_folder(self) -> Path:
        if self.folder is None:  # records() called without the runner (the executor contract): a private folder
            self.folder = Path(tempfile.mkdtemp(prefix="segbench-slurm-"))
        return self.folder

    def _record(self, job, suite, variant, seed, started, states):
        """The task's record; a task that ended without one is a failed record of its run,
        naming the job, its state and its log, so that the next ``segbench run`` redoes it."""
        try:
            record = self._result(job)
        except Exception as exc:  # noqa: BLE001 - submitit raises UncompletedJobError, FailedJobError, or a pickling error
            record = failed_record(suite, variant, seed, self._failure(job, exc, states), started)
            if self.cluster == "slurm":
                record["ran_on"] = {**record.get("ran_on", {}), "slurm_job_id": str(job.job_id)}
            return record
        for done in (job.paths.result_pickle, job.paths.submitted_pickle):  # the record is written by the runner; logs stay
            done.unlink(missing_ok=True)
        if isinstance(record, dict) and isinstance(record.get("error"), dict):  # failed in the run: say where to look
            error = record["error"]
            if error.get("type") == "UncompletedJobError":  # submitit ended the run on Slurm's warning signal
                error["message"] = (f"{self._who(job)} reached its time limit (--slurm-time {self.time_limit}) or was "
                                    f"preempted: {error.get('message')}")
            error["hint"] = f"{error.get('hint', '')} ({self._who(job)}; log: {job.paths.stderr})".strip()
        return record

    def _result(self, job):
        """What the task returned. On Slurm its result file decides: submitit would ask
        ``sacct`` for a task that left none, which a cluster without accounting lacks."""
        if self.cluster == "slurm" and not has_result(job):
            raise self.submitit.core.utils.UncompletedJobError(f"job {job.job_id} left no result")
        return job.result()

    def _who(self, job) -> str:
        return f"{'Slurm' if self.cluster == 'slurm' else 'submitit local'} job {job.job_id}"

    def _failure(self, job, exc, states) -> dict:
        state = states.state(job) or ("no longer listed by squeue" if self.cluster == "slurm" else job_state(job))
        who = self._who(job)
        log = job.paths.stderr
        if type(exc).__name__ == "FailedJobError":  # the task raised outside the run (loading the suite, say)
            cause = raised_cause(terminal(exc))
            return {"type": "SlurmTaskRaised", "message": f"{who} raised outside the run: {cause} (state {state}; log: {log})",
                    "traceback": terminal(exc).strip(), "hint": "the next `segbench run` runs it again"}
        return {"type": "SlurmJobEnded", "message": f"{who} ended without a record (state {state}; log: {log})",
                "traceback": log_tail(job), "hint": self._hint(state)}

    def _hint(self, state):
        if "TIMEOUT" in state or "timed-out" in state:
            return f"it ran past --slurm-time {self.time_limit}: give it more time; the next `segbench run` redoes it"
        return (f"timed out (--slurm-time {self.time_limit}), preempted, cancelled, out of memory or its node lost: "
                "its log says which; the next `segbench run` redoes it")

    def preflight(self, suite, variant_ids, cache_dir) -> list:
        """The preflight of ``variant_ids`` as one job asking what a run's task asks
        (``--preflight-on workers``: the login node may lack the GPU, the data or the
        memory). Its problems are reported as the driver's; a job that ends without an
        answer is bad input naming it and its log."""
        from ..preflight_remote import preflight_problems

        executor = self.submitit.AutoExecutor(folder=self._job_folder(), cluster=self.cluster)
        executor.update_parameters(**{**self.parameters(suite), "name": f"{job_name(suite)}-preflight"})
        job = executor.submit(preflight_job, suite.source, sorted(variant_ids), str(cache_dir), self.env)
        self._waiting = {job: None}  # Ctrl-C meanwhile: the runner closes this executor, which cancels it
        states = SlurmStates(self.cluster == "slurm")
        while not self._done(job, states):
            time.sleep(POLL_S)
        self._waiting = {}
        try:
            reply = self._result(job)
        except Exception as exc:  # noqa: BLE001 - submitit raises UncompletedJobError, FailedJobError, or a pickling error
            cause = raised_cause(terminal(exc))
            raise SegbenchError(f"--preflight-on workers: {self._who(job)} did not finish the preflight: {cause} "
                                f"(log: {job.paths.stderr}); --preflight-on driver runs it on this machine") from None
        return preflight_problems(reply)

    def close(self):
        """Cancel the tasks not read yet (Ctrl-C, SIGTERM, SIGHUP, --fail-fast): they would
        go on in the cluster, holding its GPUs."""
        jobs, self._waiting = list(self._waiting), {}
        if not jobs:
            return
        if self.cluster == "slurm":
            scancel([job.job_id for job in jobs])
        else:
            for job in jobs:
                job.cancel(check=False)
            wait_ended(jobs)


def run_job(source, variant_id, seed, cache_dir, label, env):
    """What each array task runs: one run, in the environment the driver forwards."""
    import os

    os.environ.update(env)
    print(f"segbench: {label} of suite file {source['path']}", flush=True)  # the log says which run it is
    return run_task(source, variant_id, seed, cache_dir)


def preflight_job(source, variant_ids, cache_dir, env):
    """What the preflight's job runs (segbench.preflight_remote.check_on_worker)."""
    import os

    from ..preflight_remote import check_on_worker

    os.environ.update(env)
    print(f"segbench: the preflight of suite file {source['path']}", flush=True)
    return check_on_worker(source, variant_ids, cache_dir)


def cpus_per_task(suite) -> int:
    """The CPUs a task asks for: the suite's ``[train] threads`` (1 by default); "auto"
    (as many threads as the node has) asks for 1, and Slurm decides."""
    counts = [variant.config["train"].get("threads", 1) for variant in suite.variants]
    return max([count for count in counts if isinstance(count, int) and not isinstance(count, bool)] or [1])


def signal_delay_s(minutes) -> int:
    """How long before the time limit Slurm warns a task (submitit then ends the run as
    timed out): 90 s, less for short limits, so that a 5-minute job is not warned at once."""
    return int(min(90, max(10, minutes * 60 * 0.1)))


def has_result(job) -> bool:
    folder = job.paths.folder
    try:
        folder.chmod(folder.stat().st_mode)  # as submitit does: NFS then lists files written on other nodes
    except OSError:
        pass
    return job.paths.result_pickle.exists()


CAUSE_LINE = re.compile(r"[A-Za-z_][\w.]*: ")  # "segbench.errors.PluginError: ..." ends a Python traceback


def raised_cause(text: str) -> str:
    """The exception a task's traceback ends with, out of submitit's FailedJobError text
    (which goes on with the paths of the logs)."""
    lines = [line for line in text.splitlines() if CAUSE_LINE.match(line)]
    return lines[-1] if lines else (text.strip().splitlines() or ["(no message)"])[0]


def job_state(job) -> str:
    try:
        return str(job.state)
    except Exception:  # noqa: BLE001 - sacct missing or failing: the state is unknown, not an error
        return "UNKNOWN"


def log_tail(job) -> str:
    """The last lines of the task's stderr log (where Slurm and submitit say why it ended)."""
    try:
        lines = Path(job.paths.stderr).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return terminal("\n".join(lines[-LOG_TAIL_LINES:]))


class SlurmStates:
    """Which tasks ended without a record, from ``squeue`` (asked every ``STATE_POLL_S``):
    submitit asks ``sacct``, which a cluster without accounting lacks. A task gone from
    squeue, or in a final state, counts as ended after ``GRACE_S`` more without its
    result file (which a shared filesystem may show late)."""

    GRACE_S = 2 * STATE_POLL_S

    def __init__(self, asks_slurm: bool):
        self.asks_slurm = asks_slurm and shutil.which("squeue") is not None
        self.known = {}
        self.asked_at = float("-inf")
        self.since = {}  # task id -> when it was first seen ended or gone

    def ended(self, job) -> bool:
        if not self.asks_slurm:
            return False
        if time.monotonic() - self.asked_at > STATE_POLL_S:
            listing = squeue_states()
            self.asked_at = time.monotonic()
            if listing is None:  # squeue failed this time: judge nothing on it
                return False
            self.known = listing
        state = self.known.get(str(job.job_id))
        if state is not None and state.split()[0] not in ENDED:
            self.since.pop(job.job_id, None)
            return False
        first = self.since.setdefault(job.job_id, time.monotonic())
        return time.monotonic() - first > self.GRACE_S and not job.paths.result_pickle.exists()

    def state(self, job) -> str | None:
        """squeue's last word on the task; None where squeue was not asked or forgot it."""
        return self.known.get(str(job.job_id))


def squeue_states() -> dict | None:
    """Task id (``123_4``) -> state, for every job squeue still knows (recently finished ones
    included); None when squeue fails."""
    try:
        listing = subprocess.run(["squeue", "--states=all", "--array", "--noheader", "--format=%i|%T"], capture_output=True,
                                 text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return dict(line.strip().split("|", 1) for line in listing.splitlines() if "|" in line)


def scancel(job_ids):
    """Cancel the tasks with one command (hundreds of them on Ctrl-C)."""
    try:
        subprocess.run(["scancel", *map(str, job_ids)], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        pass  # Slurm is gone: nothing left to stop from here


def wait_ended(jobs, limit_s=10.0):
    """Local tasks stop within a second or two of cancel(); wait so none outlives close()."""
    give_up = time.monotonic() + limit_s
    for job in jobs:
        process = getattr(job, "_process", None)
        if process is not None:
            try:
                process.wait(max(0.1, give_up - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def check_with_slurm(options: dict, given: dict) -> None:
    """Ask Slurm, without submitting (``sbatch --test-only``), whether it takes these
    options (``given``: segbench's flag -> the text typed, for the message): a partition,
    account or time it refuses is bad input now, not a failed array."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise SegbenchError("--slurm-cluster slurm: sbatch is not on PATH here; run segbench on a Slurm login node, "
                            "or give --slurm-cluster local to run the tasks on this machine")
    command = [sbatch, "--test-only", *(f"{flag}={value}" for flag, value in options.values()), "--wrap=true"]
    try:
        answer = subprocess.run(command, capture_output=True, text=True, timeout=TEST_ONLY_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise SegbenchError(f"--executor slurm: sbatch --test-only did not answer within {TEST_ONLY_TIMEOUT_S} s; "
                            "is slurmctld up (sinfo)?") from None
    if answer.returncode != 0:
        said = "; ".join(line.strip() for line in terminal(answer.stderr or answer.stdout).splitlines() if line.strip())
        if "contact slurm controller" in said.lower():  # not the options: Slurm itself does not answer
            raise SegbenchError(f"--executor slurm: sbatch cannot reach the Slurm controller ({said}); is slurmctld up "
                                "(sinfo)? Or give --slurm-cluster local to run the tasks on this machine")
        asked = ", ".join(f"{flag} {given.get(flag, value)} (sbatch {sbatch_flag}={value})"
                          for flag, (sbatch_flag, value) in options.items())
        raise SegbenchError(f"--executor slurm: Slurm refuses the job options {asked}: {said or f'exit {answer.returncode}'}; "
                            "check them against sinfo and sacctmgr show assoc")
