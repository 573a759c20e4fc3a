"""The results store: one JSON record per run, written atomically, under a lock."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import SegbenchError

RECORD_NAME = "record.json"


class ResultStore:
    """``<root>/<suite>/runs/<variant-id>/seed-<n>/record.json`` plus the report folder."""

    def __init__(self, root, suite_name: str):
        self.root = Path(root)
        self.suite_dir = self.root / suite_name
        self.runs_dir = self.suite_dir / "runs"
        self.report_dir = self.suite_dir / "report"

    def record_path(self, variant_id: str, seed: int) -> Path:
        return self.runs_dir / variant_id / f"seed-{seed}" / RECORD_NAME

    def load(self, variant_id: str, seed: int) -> dict | None:
        path = self.record_path(variant_id, seed)
        return read_json(path) if path.is_file() else None

    def finished(self, variant_id: str, seed: int) -> bool:
        record = self.load(variant_id, seed)
        return bool(record) and record.get("status") == "ok"

    def write(self, record: dict) -> Path:
        path = self.record_path(record["variant_id"], record["seed"])
        write_json_atomic(path, record)
        return path

    def write_record(self, record: dict) -> dict:
        """Write a run's record; the validation inputs its predictions refer to go once per
        dataset to ``samples/<key>.json`` (the same for every run on that dataset). Returns
        the record as stored (what ``load`` gives back)."""
        samples = record.get("samples")
        if samples and "inputs" in samples:
            record = {**record, "samples": {k: v for k, v in samples.items() if k != "inputs"}}
            key = samples_key(record["config"]["dataset"])
            record["samples"]["inputs_key"] = key
            path = self.samples_path(key)
            if not path.is_file():
                write_json_atomic(path, {"dataset": record["config"]["dataset"], "indices": samples["indices"], "inputs": samples["inputs"]})
        self.write(record)
        return to_json_safe(record)

    def samples_path(self, key: str) -> Path:
        return self.suite_dir / "samples" / f"{key}.json"

    def load_samples(self, key: str) -> dict | None:
        path = self.samples_path(key)
        return read_json(path) if path.is_file() else None

    def records(self) -> list[dict]:
        return [read_json(path) for path in sorted(self.runs_dir.glob(f"*/seed-*/{RECORD_NAME}"))]

    @contextlib.contextmanager
    def lock(self):
        """Exclusive lock on the suite's folder: a second ``segbench run`` waits for none,
        it stops with a clear message instead of interleaving writes."""
        self.suite_dir.mkdir(parents=True, exist_ok=True)
        with open(self.suite_dir / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SegbenchError(f"{self.suite_dir} is in use by another segbench run; wait for it or use --output") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def samples_key(dataset_ref: dict) -> str:
    text = json.dumps(dataset_ref, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_json_atomic(path: Path, payload) -> None:
    """Write to a temporary file in the same folder, then rename: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_json_safe(payload), indent=1, allow_nan=False)
    write_text_atomic(path, text)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; results are for sharing
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def encode_arrays(**arrays) -> str:
    """numpy arrays as one base64 text (a compressed .npz), so they fit in a JSON record."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_arrays(text: str) -> dict:
    with np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def to_json_safe(value):
    """NaN and infinities become null (JSON has no NaN); tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_safe(v) for v in value]
    return value
