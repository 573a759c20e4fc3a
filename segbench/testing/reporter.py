"""The reporter contract: subclass ``ReporterContract`` and set ``name`` (and ``options``,
by option name, as ``segbench export NAME --flag VALUE`` would give them).

    class TestLeaderboard(ReporterContract):
        name = "leaderboard"

The reporter is given what ``segbench report`` gives it: the records of a tiny suite run
for real (shapes at 32 px, two variants x two seeds of a one-epoch U-Net; run once per
test session), stored in a results folder and read back, in the ReportContext that
segbench.report.report_context builds. It runs in a sandbox: a temporary folder holding
the results folder and the working directory (the check changes into it), whose files
are compared before and after. The checks:

- **writes only inside its output folder** (``context.report_dir``), and inside the
  places its ``destination`` options name (the contract points each into the sandbox): a
  file created, changed or removed anywhere else in the sandbox (the working directory,
  the results folder, the records, two levels up) or beside the sandbox fails the check;
- **survives an empty result set** (a suite folder without records) and **a damaged one**
  (failed runs, a run whose metrics and curves are NaN, a variant without any finite
  value), writing only inside its folder there too;
- **is deterministic**: run twice on the same records at the same path, it writes the
  same files, byte for byte, and returns the same sections.

What it cannot check: a write outside the sandbox and its parent folder (an absolute
path, the home folder), what an exporter sends over the network, and what it writes to
its destinations (not compared for determinism: a tracker stamps its own ids and times).
At run time segbench cannot check either where a reporter writes: only this contract does.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import math
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from ..api import stored_context
from ..engine.device import single_torch_thread
from ..execute import failed_record
from ..executors.task import run_in_process
from ..plugins import load_catalogue
from ..report import report_context
from ..runner import suite_summary
from ..store import ResultStore, write_json_atomic, write_text_atomic
from ..suite import load_suite
from ._extension import TINY_SUITE, ExtensionContract

SUITE_NAME = "reporter-contract"
ABLATE = '''
[ablate]
"model.upsampler" = ["nearest", "bilinear"]
'''
SHOWN = 12  # paths named in a failure, at most


class ReporterContract(ExtensionContract):
    kind = "reporter"
    input_name = "the records of a finished tiny suite"  # what the check gives the reporter, for its messages

    # --- helpers --------------------------------------------------------------------

    @pytest.fixture
    def sandbox(self, tmp_path, monkeypatch):
        """``tmp_path/box``: ``work/`` (the working directory while the reporter runs),
        ``results/`` (the results folder) and ``exports/`` (the destinations)."""
        reason = self.registered().ready()
        if reason:
            pytest.skip(f"{self.who()} cannot run here: {reason}")
        box = tmp_path / "box"
        return SimpleNamespace(root=tmp_path, box=box, work=box / "work", results=box / "results", exports=box / "exports")

    def given_options(self, sandbox) -> dict:
        """``options`` with every destination the test does not set pointed into the sandbox."""
        options = dict(self.options)
        for option in self.registered().options:
            if option.destination and option.name not in options:
                options[option.name] = str(sandbox.exports / option.name)
        return options

    def store(self, sandbox, records) -> ResultStore:
        """A results folder of ``records`` in the sandbox, as ``segbench run`` leaves one."""
        suite, _ = finished_runs()
        for folder in (sandbox.work, sandbox.exports):
            folder.mkdir(parents=True, exist_ok=True)
        store = ResultStore(sandbox.results, suite.name, quiet=True)
        write_text_atomic(store.folder.suite_file, suite.text)
        write_json_atomic(store.summary_path, suite_summary(suite))
        for record in records:
            store.write_record(dict(record))
        return store

    def write(self, sandbox, context):
        """Run the reporter on ``context`` in the sandbox; returns what ``write`` returned.
        Fails naming every file it created, changed or removed outside its folders."""
        options = self.given_options(sandbox)
        allowed = [context.report_dir, *(Path(options[o.name]) for o in self.registered().options if o.destination)]
        before = snapshot(sandbox.root)
        with working_directory(sandbox.work):
            try:
                returned = self.registered().write(replace(context, options=self.registered().option_values(options)))
            except Exception as exc:  # noqa: BLE001 - named with the reporter and the input, then shown with its traceback
                raise ReporterContractFailure(f"{self.who()} raised {type(exc).__name__}: {exc}, on {self.input_name}") from exc
        outside = [change for change in changes(before, snapshot(sandbox.root)) if not _inside(sandbox.root / change[0], allowed)]
        self.expect(not outside, lambda: f"{self.who()} wrote outside its output folder {context.report_dir.relative_to(sandbox.root)}"
            f"{' and its destinations' if len(allowed) > 1 else ''} ({self.input_name}; the working directory was "
            f"{sandbox.work.relative_to(sandbox.root)}; paths relative to {sandbox.root}):\n  "
            + "\n  ".join(f"{path} ({what})" for path, what in outside[:SHOWN]))
        return returned

    # --- contract -------------------------------------------------------------------

    def test_writes_only_inside_its_output_folder(self, sandbox):
        self.store(sandbox, finished_runs()[1])
        self.write(sandbox, stored_context(sandbox.results))

    def test_survives_an_empty_result_set(self, sandbox):
        self.input_name = "an empty result set (a suite folder without records)"
        store = self.store(sandbox, [])
        meta = store.load_summary(required=True)
        self.write(sandbox, report_context([], meta, store.report_dir, store.load_samples, store.suite_dir))

    def test_survives_a_damaged_result_set(self, sandbox):
        self.input_name = "a damaged result set (failed runs, NaN metrics and curves, a variant without a finite value)"
        suite, records = finished_runs()
        store = self.store(sandbox, records)
        meta = store.load_summary(required=True)
        damaged = damaged_records(suite, records)
        self.write(sandbox, report_context(damaged, meta, store.report_dir, store.load_samples, store.suite_dir))

    def test_is_deterministic(self, sandbox):
        """Twice at the same path, on the same records: the same files, the same sections.
        The results folder is made anew; the destinations stay, as a tracker's would."""
        outputs = []
        for _ in range(2):
            shutil.rmtree(sandbox.results, ignore_errors=True)
            self.store(sandbox, finished_runs()[1])
            context = stored_context(sandbox.results)
            returned = self.write(sandbox, context)
            outputs.append((files_of(context.report_dir), _sections(returned)))
        (first, first_sections), (second, second_sections) = outputs
        differ = sorted(path for path in set(first) | set(second) if first.get(path) != second.get(path))
        self.expect(not differ, lambda: f"{self.who()} is not deterministic: run twice on the same records at the same path, these "
                            f"files of its output folder differ (or exist once): {', '.join(differ[:SHOWN])}")
        self.expect(first_sections == second_sections, lambda: f"{self.who()} is not deterministic: run twice on the same records, it "
                                                   f"returned different sections: {first_sections!r} then {second_sections!r}")


class ReporterContractFailure(AssertionError):
    """The reporter raised: the message names it and the input; its traceback follows."""


@functools.cache
def finished_runs():
    """The tiny suite and its records, run for real once per process (a few seconds)."""
    folder = Path(tempfile.mkdtemp(prefix="segbench-reporter-contract-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    (folder / "contract_suite.toml").write_text(TINY_SUITE.format(name=SUITE_NAME, seeds="[0, 1]", body=ABLATE))
    suite = load_suite(folder / "contract_suite.toml", load_catalogue)
    with single_torch_thread():
        records = [run_in_process(suite, variant, seed, folder / "cache") for variant, seed in suite.runs()]
    failed = [f"{r['label']} seed {r['seed']}: {r['error']['message']}" for r in records if r["status"] != "ok"]
    if failed:
        raise RuntimeError(f"the reporter contract's tiny suite failed to run, so no reporter can be checked: {failed}")
    return suite, records


def damaged_records(suite, records) -> list:
    """The first variant: one run kept, one failed; the second: its metrics, curves and
    per-class values NaN in one run, the other failed."""
    (keep, fail_a), (nan, fail_b) = [[r for r in records if r["variant_id"] == v.id] for v in suite.variants]
    error = {"type": "RuntimeError", "message": "failed on purpose by the reporter contract", "traceback": "Traceback (planted)"}
    failed = [failed_record(suite, suite.variant(r["variant_id"]), r["seed"], error, time.perf_counter()) for r in (fail_a, fail_b)]
    nan_record = {**nan, "metrics": {name: math.nan for name in nan["metrics"]},
                  "curves": {name: [math.nan] * len(values) if name != "epoch" else values for name, values in nan["curves"].items()},
                  "per_class": {name: {cls: math.nan for cls in table} for name, table in (nan.get("per_class") or {}).items()}}
    return [keep, failed[0], nan_record, failed[1]]


@contextlib.contextmanager
def working_directory(path: Path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def snapshot(root: Path) -> dict:
    """Relative path -> what it is (a folder, a link and its target, a file's hash) of
    everything under ``root``, and of what lies beside ``root`` (not below it)."""
    seen = {f"../{entry.name}": _stamp(entry) for entry in root.parent.iterdir() if entry != root}
    for folder, names, files in os.walk(root):
        for name in names + files:
            path = Path(folder, name)
            relative = str(path.relative_to(root))
            if path.is_symlink():
                seen[relative] = f"link to {os.readlink(path)}"
            elif path.is_dir():
                seen[relative] = "folder"
            else:
                with contextlib.suppress(OSError):
                    seen[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


def _stamp(path: Path):
    """Size and modification time: what lies beside the sandbox is not read, only listed."""
    with contextlib.suppress(OSError):
        status = path.lstat()
        return (status.st_size, status.st_mtime_ns)
    return None


def changes(before: dict, after: dict) -> list:
    """(path, "created" | "changed" | "removed") between two snapshots."""
    found = [(path, "created" if path not in before else "changed") for path in after if before.get(path) != after[path]]
    return sorted(found + [(path, "removed") for path in before if path not in after])


def files_of(folder: Path) -> dict:
    """Relative path -> bytes of every file under ``folder``."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _inside(path: Path, folders) -> bool:
    path = Path(os.path.normpath(path))
    return any(path == Path(folder) or Path(folder) in path.parents for folder in folders)


def _sections(returned):
    """The sections ``write`` returned, comparable (anything else an exporter returns is its own)."""
    if isinstance(returned, (list, tuple)):
        return [(getattr(s, "title", None), getattr(s, "html", None)) for s in returned]
    return None
