"""The executor contract: subclass ``ExecutorContract`` and set ``name`` (and ``options``,
by option name, as ``--executor NAME --flag VALUE`` would give them).

    class TestSubprocess(ExecutorContract):
        name = "subprocess"
        options = {"log_dir": "logs"}

It runs a tiny suite (shapes at 32 px, a one-epoch U-Net) through the executor as the
runner does: ``records(suite, pending, cache_dir)``, then ``close()``. A loss the contract
plants (a local plugin file, loaded the way ``-p FILE`` loads one, in every process that
loads the suite) fails a run at once, or hangs it. Each check runs under a deadline, so an
executor that hangs fails it instead of hanging the tests. The checks:

- **one record per run**: every run given comes back exactly once, as that run's record
  (its variant and seed), sound when written and read back by the store; a failing run
  is a failed record naming its error, never a missing one;
- **fail-fast**: ``segbench run --fail-fast`` stops reading at the first failed record and
  calls ``close()``: it returns promptly and leaves no process of the executor running;
- **timeout**: a run past ``[train] timeout_s`` is a failed record (a Timeout), not a hang;
- **interrupt**: ``close()`` after the first record, with a run still hanging in a worker,
  releases the executor (returns promptly, no process left).

What it cannot check here: work an executor runs elsewhere (a cluster's tasks, processes
that are not children of this one) after ``close()``, and threads it leaves behind; that
results do not depend on the executor (compare the records of one suite through it and
through ``local``). At run time the runner checks each round against what it sent (a run
missing, returned twice or not sent is named, and a run missing twice fails):
segbench.runner.RoundCheck, which this contract's first check uses too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ..engine.device import single_torch_thread
from ..errors import SegbenchError
from ..plugins import load_catalogue
from ..runner import RoundCheck, run_names
from ..store import ResultStore
from ..suite import load_suite
from ._extension import TINY_SUITE, ExtensionContract, deadline

PLANTED_MESSAGE = "planted by the executor contract"
# A loss that fails a run at its first step, or hangs it; "ce" otherwise.
PLANTED_PLUGIN = f'''
"""Written by segbench's executor contract: a loss that fails or hangs a run on purpose."""
import time

import torch.nn.functional as F

from segbench import hookimpl


class Planted:
    def __init__(self, action):
        self.action = action

    def __call__(self, logits, target):
        if self.action == "raise":
            raise RuntimeError("{PLANTED_MESSAGE}")
        while True:  # "hang": in Python, so the run's timeout alarm can end it
            time.sleep(0.05)


def planted(mode, num_classes, ignore_index, *, action: str = "raise"):
    return Planted(action)


@hookimpl
def segbench_losses(register):
    register.add_loss("contract_planted", planted)
'''
RUNS = '''
[ablate]
"train.loss" = ["ce", { name = "contract_planted", action = "raise" }]
'''
HANGS = '''
[ablate]
"train.loss" = [{ name = "contract_planted", action = "raise" }, { name = "contract_planted", action = "hang" }]
'''


class ExecutorContract(ExtensionContract):
    kind = "executor"
    timeout_s = 2.0  # the [train] timeout_s of the timeout check
    deadline_s = 120.0  # a check still going after this long hangs (it may start processes, and trains tiny runs)
    close_s = 30.0  # close() must return within this, a run still hanging

    # --- helpers --------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def planted(cls, tmp_path_factory):
        """The suites (their files and the planted loss) and a data cache, once per class."""
        folder = tmp_path_factory.mktemp("executor-contract")
        plugin = folder / "contract_planted_loss.py"
        plugin.write_text(PLANTED_PLUGIN)
        (folder / "runs.toml").write_text(TINY_SUITE.format(name="executor-contract", seeds="[0, 1]", body=RUNS))
        (folder / "hangs.toml").write_text(TINY_SUITE.format(name="executor-contract-hangs", seeds="[0]", body=HANGS))
        return SimpleNamespace(folder=folder, plugin=plugin, cache=folder / "cache")

    def suite(self, planted, name, **overrides):
        return load_suite(planted.folder / f"{name}.toml", load_catalogue, extra_plugins=[str(planted.plugin)], overrides=overrides)

    def build(self):
        """The executor with ``options``; one whose factory fails for a package that is not
        installed (ray without ``segbench[ray]``) is skipped, saying so."""
        try:
            return self.registered().build(self.options)
        except SegbenchError as exc:
            if isinstance(exc.__cause__ or exc.__context__, ImportError):
                pytest.skip(f"{self.who()} needs a package that is not installed: {exc}")
            raise

    def records(self, executor, suite, pending, planted, stop=None) -> list:
        """The records the executor yields for ``pending``, read as the runner reads them;
        ``stop(record)`` true ends the reading there. ``close()`` is called either way."""
        returned = []
        try:
            generator = executor.records(suite, pending, planted.cache, None)
            for record in generator:
                returned.append(record)
                if stop and stop(record):
                    break
            generator.close()
        finally:
            executor.close()
        return returned

    def sent(self, pending) -> str:
        return run_names(pending)

    # --- contract -------------------------------------------------------------------

    def test_returns_exactly_one_record_per_run_it_is_given(self, planted):
        suite = self.suite(planted, "runs")
        works, fails = suite.variants
        pending = [(works, 0), (fails, 1)]  # two variants, two seeds
        with deadline(self.deadline_s, f"{self.who()} running {self.sent(pending)}"), single_torch_thread():
            returned = self.records(self.build(), suite, pending, planted)
        check = RoundCheck(pending, self.registered().name)
        problems = [problem for problem in map(check.problem, returned) if problem]
        problems += [f"{self.who()} did not return run {self.sent([run])}" for run in check.missing()]
        self.expect(not problems, lambda: f"{self.who()} was given {self.sent(pending)}; what came back:\n  " + "\n  ".join(problems))
        store = ResultStore(planted.folder / "results", suite.name, quiet=True)
        for record in returned:
            run = f"{record['label']} seed={record['seed']}"
            store.write_record(record)
            self.expect(store.load(record["variant_id"], record["seed"]) is not None, lambda: f"{self.who()} returned a record of {run} that the store reads back as damaged: {store.damaged[-1].problem}")
        self.check_statuses(returned, works.id)

    def check_statuses(self, returned, works_id):
        for record in returned:
            run = f"{record['label']} seed={record['seed']}"
            error = record.get("error") or {}
            if record["variant_id"] == works_id:
                self.expect(record["status"] == "ok", lambda: f"{self.who()}: run {run} (loss ce) works in this process, but came back "
                                                  f"{record['status']!r}: {error.get('type')}: {error.get('message')}")
            else:
                self.expect(record["status"] == "failed" and PLANTED_MESSAGE in str(error.get("message")), lambda: f"{self.who()}: run {run} raises RuntimeError({PLANTED_MESSAGE!r}) at its first step; expected a failed "
                    f"record with that message, got status {record['status']!r}, error {error!r}")

    def test_stops_when_the_runner_stops_at_a_failed_run(self, planted):
        """``--fail-fast``: the runner reads up to the first failed record, then calls
        ``close()``, which must return promptly and leave none of its processes running."""
        suite = self.suite(planted, "runs")
        works, fails = suite.variants
        pending = [(fails, 0), (works, 0), (works, 1)]
        executor = self.build()
        before = child_processes()
        with deadline(self.deadline_s, f"{self.who()} running {self.sent(pending)} until the first failed record"), \
                single_torch_thread():
            returned = self.records(executor, suite, pending, planted, stop=lambda record: record.get("status") != "ok")
        self.expect(returned and returned[-1].get("status") == "failed", lambda: f"{self.who()} was given {self.sent(pending)}, the first failing at once; it returned no failed record: "
            f"{[(r.get('label'), r.get('seed'), r.get('status')) for r in returned]}")
        self.check_released(before, "stopped at the first failed record (--fail-fast)")

    def test_a_run_past_its_timeout_is_a_failed_record(self, planted):
        suite = self.suite(planted, "hangs", **{"train.timeout_s": self.timeout_s})
        hangs = suite.variants[1]
        pending = [(hangs, 0)]
        with deadline(self.timeout_s + self.deadline_s, f"{self.who()} running {self.sent(pending)} (timeout_s = {self.timeout_s:g})"):
            returned = self.records(self.build(), suite, pending, planted)
        self.expect(len(returned) == 1, lambda: f"{self.who()} was given one run, {self.sent(pending)}; it returned {len(returned)} records")
        error = returned[0].get("error") or {}
        said = f"{error.get('type')}: {error.get('message')}"
        self.expect(returned[0].get("status") == "failed" and "timeout" in said.lower(), lambda: f"{self.who()}: run {self.sent(pending)} hangs, [train] timeout_s = {self.timeout_s:g}; expected a failed record "
            f"saying it timed out, got status {returned[0].get('status')!r}, error {said}")

    def test_close_after_a_partial_iteration_releases_it(self, planted):
        """The runner stops reading (Ctrl-C, ``--fail-fast``) and calls ``close()`` with a
        run still going (here one that hangs, without a timeout)."""
        suite = self.suite(planted, "hangs")
        fails, hangs = suite.variants
        pending = [(fails, 0), (hangs, 0)]
        executor = self.build()
        before = child_processes()
        with deadline(self.deadline_s, f"{self.who()}: reading one record of {self.sent(pending)}, then close()"):
            self.records(executor, suite, pending, planted, stop=lambda record: True)
        self.check_released(before, "closed after its first record, a run hanging")

    def check_released(self, before, when):
        """No process this one started since ``before`` is still running (zombies aside)."""
        give_up = time.monotonic() + self.close_s
        while (left := child_processes() - before) and time.monotonic() < give_up:
            time.sleep(0.1)
        self.expect(not left, lambda: f"{self.who()} {when}: close() returned, but its process(es) {sorted(left)} still run")


def child_processes() -> set:
    """The running children of this process (Linux: /proc); empty where that cannot be read."""
    children = set()
    for task in Path(f"/proc/{os.getpid()}/task").glob("*"):
        try:
            children.update(int(pid) for pid in (task / "children").read_text().split())
        except OSError:
            continue
    return {pid for pid in children if _running(pid)}


def _running(pid) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
