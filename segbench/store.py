"""The results store: one JSON record per run, written atomically, under a lock.

It reads and writes a results folder laid out as ``segbench.layout`` says, and every file
read from one comes through it, read by ``segbench.records`` (which checks each against its
schema, and a record's version: one written by a newer segbench stops the command with
exit 2, naming it; an older one is migrated). A damaged file is named on stderr and
left out: a damaged record counts as not finished, so ``segbench run`` redoes that run,
and the new record's write first moves the damaged file aside as ``record.json.corrupt``,
so nothing is lost. Readers that only read (report, gate, compare, doctor) move nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import layout
from .crash import save_elsewhere
from .errors import RunNotRecorded, SegbenchError, WriteError
from .layout import RECORD_NAME, SUMMARY_NAME, SuiteFolder
from .records import DamagedFile, Record, decode_arrays, encode_arrays, read_json_file, read_record, read_samples, read_summary
from .text import one_line

__all__ = ["RECORD_NAME", "SUMMARY_NAME", "Damage", "ResultStore", "decode_arrays", "encode_arrays", "find_suite_dir", "read_json",
           "read_json_file", "samples_key", "to_json_safe", "write_json_atomic", "write_text_atomic"]

@dataclass(frozen=True)
class Damage:
    """A file of a results folder that cannot be used, and why."""

    path: Path
    problem: str

    def __str__(self):
        return f"{self.path}: {self.problem}"


class ResultStore:
    """``<root>/<suite>/runs/<variant-id>/seed-<n>/record.json`` plus the report folder."""

    def __init__(self, root, suite_name: str, quiet: bool = False):
        self.root = Path(root).absolute()  # once: a plugin's os.chdir must not move the results
        self.folder = SuiteFolder.of(self.root, suite_name)
        self.suite_dir = self.folder.path
        self.runs_dir = self.folder.runs
        self.report_dir = self.folder.report
        self.summary_path = self.folder.summary
        self.quiet = quiet  # collect damage in ``damaged`` without naming it on stderr
        self.damaged: list[Damage] = []  # every damaged file this store has met
        self._sound_samples: set = set()
        self._in_the_way: set = set()  # damaged files met here, not yet moved aside

    def record_path(self, variant_id: str, seed: int) -> Path:
        return self.folder.record(variant_id, seed)

    def load(self, variant_id: str, seed: int) -> Record | None:
        """The run's record; None when there is none or it is damaged."""
        path = self.record_path(variant_id, seed)
        return self._checked_record(path) if os.path.lexists(path) else None

    def finished(self, variant_id: str, seed: int) -> bool:
        record = self.load(variant_id, seed)
        return bool(record) and record.get("status") == "ok"

    def write(self, record: dict) -> Path:
        path = self.record_path(record["variant_id"], record["seed"])
        self._clear_way(path)
        write_json_atomic(path, record)
        return path

    def _clear_way(self, path: Path) -> None:
        """Move a damaged file (one this store met, or a directory in the way) aside
        before a new one is written in its place."""
        met = path in self._in_the_way
        self._in_the_way.discard(path)
        if met or (os.path.lexists(path) and not path.is_file()):
            moved = set_aside_file(path)
            if not self.quiet:
                _warn(f"moved damaged {one_line(path)} aside as {one_line(moved.name)}")

    def write_record(self, record: dict) -> dict:
        """Write a run's record; the validation inputs its predictions refer to go once per
        dataset to ``samples/<key>.json`` (the same for every run on that dataset). Returns
        the record as stored (what ``load`` gives back). A write that fails (disk full,
        read-only) raises RunNotRecorded naming the path and the run: the suite stops there."""
        try:
            return self._write_record(record)
        except WriteError as exc:
            saved = save_elsewhere(f"unwritten-{record['variant_id']}-seed-{record['seed']}-{os.getpid()}.json",
                                   json.dumps(to_json_safe(record), indent=1, allow_nan=False))
            raise RunNotRecorded(exc, f"{one_line(record.get('label'))} seed {record.get('seed')}", saved,
                                 self.record_path(record["variant_id"], record["seed"])) from None

    def _write_record(self, record: dict) -> dict:
        samples = record.get("samples")
        if samples and "inputs" in samples:
            record = {**record, "samples": {k: v for k, v in samples.items() if k != "inputs"}}
            key = samples_key(record["config"]["dataset"])
            record["samples"]["inputs_key"] = key
            path = self.samples_path(key)
            if not self._samples_sound(path):
                self._clear_way(path)
                write_json_atomic(path, {"dataset": record["config"]["dataset"], "indices": samples["indices"], "inputs": samples["inputs"]})
                self._sound_samples.add(path)
        self.write(record)
        return to_json_safe(record)

    def _samples_sound(self, path: Path) -> bool:
        """Whether ``path`` holds sound samples (checked once per store, not at every
        record); damaged ones are written again."""
        if path in self._sound_samples:
            return True
        if not os.path.lexists(path):
            return False
        sound = self._checked(path, read_samples, consequence="it is written again") is not None
        if sound:
            self._sound_samples.add(path)
        return sound

    def samples_path(self, key: str) -> Path:
        return self.folder.samples_file(key)

    def load_samples(self, key: str) -> dict | None:
        """A dataset's stored validation inputs; None when absent or damaged (the report
        is then drawn without its prediction grid)."""
        path = self.samples_path(key)
        if not os.path.lexists(path):
            return None
        return self._checked(path, read_samples, consequence="the report is drawn without its prediction grid")

    def records(self) -> list[Record]:
        """Every sound record under ``runs/``, in path order; damaged ones are named and
        left out."""
        records = (self._checked_record(path) for path in self.record_paths())
        return [record for record in records if record is not None]

    def record_paths(self) -> list[Path]:
        return self.folder.records()

    def samples_paths(self) -> list[Path]:
        return self.folder.samples_files()

    def load_summary(self, required: bool) -> dict:
        """``suite.json``. The report cannot be drawn without it (``required``: exit 2
        naming the file); the gate and compare only take names and order from it ({})."""
        if not os.path.lexists(self.summary_path):
            if required:
                raise SegbenchError(f"{self.suite_dir} has no {SUMMARY_NAME} (written by `segbench run`); run the suite once to create it")
            return {}
        consequence = "the report cannot be drawn without it" if required else "variant names and order come from the records"
        summary = self._checked(self.summary_path, read_summary, consequence=consequence, warn=not required)
        if summary is None and required:
            damage = next(d for d in self.damaged if d.path == self.summary_path)
            raise SegbenchError(f"{damage}; {consequence}: `segbench run` the suite "
                                "with the same -o to write it again (finished runs are kept)")
        return summary or {}

    def _checked_record(self, path: Path) -> Record | None:
        """The record at ``path`` (see ``segbench.records.read_record``); one written by a
        newer segbench raises NewerSchemaError (exit 2)."""
        return self._checked(path, read_record, consequence="left out; `segbench run` redoes that run")

    def _checked(self, path: Path, read, consequence: str, warn: bool = True):
        """The file as ``read`` gives it, or None when it is damaged: then recorded in
        ``damaged`` and named on stderr."""
        try:
            return read(path)
        except DamagedFile as exc:
            damage = Damage(path, str(exc))
        self._in_the_way.add(path)
        if damage not in self.damaged:  # each named once per store
            self.damaged.append(damage)
            if warn and not self.quiet:
                _warn(f"{one_line(damage)}; {consequence}")
        return None

    @contextlib.contextmanager
    def lock(self):
        """Exclusive lock on the suite's folder: a second ``segbench run`` waits for none,
        it stops with a clear message instead of interleaving writes."""
        self._make_suite_dir()
        with open(self.folder.lock, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SegbenchError(f"{self.suite_dir} is in use by another segbench run; wait for it or use --output") from None
            remove_stale_temporaries(self.suite_dir)  # a killed run's (kill -9): none is being written now
            self._clear_summary()  # the holder writes suite.json again
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _make_suite_dir(self):
        """Create the suite's folder and try a write in it and in ``runs/``: a folder that
        cannot be written (read-only, full, a file in the way) is bad input now (exit 2),
        before anything trains."""
        self._created = [folder for folder in (self.suite_dir, *self.suite_dir.parents) if not os.path.lexists(folder)]
        for folder in (self.suite_dir, self.runs_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe_write(folder)
            except OSError as exc:
                reason = "a file is in the way, not a folder" if os.path.lexists(folder) and not folder.is_dir() else exc.strerror or exc
                self.remove_if_new()
                raise SegbenchError(f"cannot write results to {folder}: {reason}; give -o/--output a folder you can write to") from None

    def remove_if_new(self) -> None:
        """Undo the folders the lock created, when the run stops before writing anything
        (bad input found by the preflight leaves no empty results folder behind)."""
        with contextlib.suppress(OSError):
            self.folder.lock.unlink()
        for folder in [self.runs_dir, *getattr(self, "_created", [])]:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only empty ones: anything written stays

    def _clear_summary(self) -> None:
        if os.path.lexists(self.summary_path):
            self._checked(self.summary_path, read_summary, consequence="it is written again")
            self._clear_way(self.summary_path)


def find_suite_dir(directory) -> Path:
    """The suite folder of a results folder given as the output root (``results/``,
    holding one suite) or as the suite folder itself (``results/<suite>/``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SegbenchError(f"results folder {directory} does not exist")
    if layout.is_suite_folder(directory):
        return directory
    suites = sorted(child for child in directory.iterdir() if layout.is_suite_folder(child))
    if not suites:
        raise SegbenchError(f"{directory} holds no run records: give a results folder written by "
                            "`segbench run` (results/ or results/<suite>/)")
    if len(suites) > 1:
        names = ", ".join(str(s) for s in suites)
        raise SegbenchError(f"{directory} holds several suites ({names}); give one of them")
    return suites[0]


def set_aside_file(path: Path) -> Path:
    """Rename a damaged file (or directory) to ``<name>.corrupt`` (``.corrupt.1``, ... when
    that is taken), so that it is kept for a look but never read again."""
    count = 0
    target = path.with_name(layout.set_aside_name(path.name))
    while os.path.lexists(target):
        count += 1
        target = path.with_name(layout.set_aside_name(path.name, count))
    try:
        os.replace(path, target)
    except OSError as exc:
        raise SegbenchError(f"{path} is damaged and cannot be moved aside ({exc.strerror}); delete it, and its run is redone") from None
    return target


def samples_key(dataset_ref: dict) -> str:
    text = json.dumps(dataset_ref, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


TEMPORARY_SUFFIX = ".tmp"


def write_json_atomic(path: Path, payload) -> None:
    """Write to a temporary file in the same folder, then rename: never a half file."""
    text = json.dumps(to_json_safe(payload), indent=1, allow_nan=False)
    write_text_atomic(path, text)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in its folder, then rename (see
    ``atomic_file``)."""
    with atomic_file(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())


@contextlib.contextmanager
def atomic_file(path):
    """A temporary path in ``path``'s folder to write; renamed to ``path`` when the block
    ends well. A failed write (disk full, read-only, a file where a folder should be) raises
    WriteError naming ``path``; the temporary file is removed whatever stops the write (an
    exception, Ctrl-C, SIGTERM); only a kill -9 can leave one, which the next `segbench run`
    removes."""
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
        os.close(handle)
        yield Path(temporary)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; results are for sharing
        os.replace(temporary, path)
    except BaseException as exc:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        if isinstance(exc, OSError):
            raise WriteError(path, exc) from None
        raise


def probe_write(folder: Path) -> None:
    """Write and remove a small file in ``folder``: raises OSError when it cannot be written."""
    handle, probe = tempfile.mkstemp(dir=folder, prefix=".segbench-probe.", suffix=TEMPORARY_SUFFIX)
    try:
        os.write(handle, b"segbench")
        os.fsync(handle)
    finally:
        os.close(handle)
        os.unlink(probe)


def remove_stale_temporaries(folder: Path) -> list:
    """Remove the temporary files an atomic write left when its process was killed outright
    (``.<name>.<random>.tmp``); call it only while holding the folder's lock."""
    removed = []
    for temporary in Path(folder).rglob(f".*{TEMPORARY_SUFFIX}"):
        if temporary.is_file() and not temporary.is_symlink():
            with contextlib.suppress(OSError):
                temporary.unlink()
                removed.append(temporary)
    return removed


def read_json(path: Path):
    """A JSON file as is; it raises on any damage (for files segbench itself just wrote;
    read a results folder with ``read_json_file``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _warn(text: str) -> None:
    print(f"segbench: warning: {text}", file=sys.stderr)


def to_json_safe(value):
    """NaN and infinities become null (JSON has no NaN); tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_safe(v) for v in value]
    return value
