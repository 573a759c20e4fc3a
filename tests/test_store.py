"""The results store: atomic records, NaN-free JSON, the lock."""

import json
import os

import numpy as np
import pytest

from segbench.errors import SegbenchError
from segbench.records import RECORD_SCHEMA, decode_arrays, encode_arrays, read_record
from segbench.store import ResultStore, write_json_atomic


def record(variant_id="abc", seed=0, status="ok", **extra):
    return {"variant_id": variant_id, "seed": seed, "status": status, **extra}


def test_records_round_trip_and_only_ok_counts_as_finished(tmp_path):
    store = ResultStore(tmp_path, "s")
    store.write(record(seed=0, metrics={"miou": 0.5}))
    store.write(record(seed=1, status="failed"))
    assert store.load("abc", 0)["metrics"] == {"miou": 0.5}
    assert store.finished("abc", 0) and not store.finished("abc", 1) and not store.finished("abc", 2)
    assert store.record_path("abc", 1) == tmp_path / "s" / "runs" / "abc" / "seed-1" / "record.json"
    assert [r["seed"] for r in store.records()] == [0, 1]


def test_nan_becomes_null_so_the_file_is_strict_json(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"iou": [float("nan"), 1.0], "x": float("inf")})
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}")) == {"iou": [None, 1.0], "x": None}


def test_a_failed_write_leaves_the_previous_record_and_no_temporary(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"v": object()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["r.json"]


def test_a_second_holder_of_the_lock_is_refused(tmp_path):
    first, second = ResultStore(tmp_path, "s"), ResultStore(tmp_path, "s")
    with first.lock():
        with pytest.raises(SegbenchError, match="in use by another segbench run"):
            with second.lock():
                pass
    with second.lock():
        pass


def test_a_record_round_trips_through_write_and_read(tmp_path):
    """What ``write_record`` stores is what every reader gets back: the record with its
    NaN as null, the validation inputs moved to samples/<key>.json, the version stamped."""
    images, masks = np.zeros((1, 3, 4, 4), np.float32), np.ones((1, 4, 4), np.uint8)
    written = record(schema=RECORD_SCHEMA, label="upsampler=nearest", factors={"model.upsampler": "nearest"}, config={"dataset": {"name": "d"}},
                     metrics={"miou": 0.5}, cost={"params": 10, "peak_memory_mb": float("nan")}, curves={"epoch": [1], "miou": [0.5]},
                     samples={"indices": [0], "predictions": encode_arrays(predictions=masks), "inputs": encode_arrays(images=images, masks=masks)})
    store = ResultStore(tmp_path, "s")
    stored = store.write_record(written)
    path = store.record_path("abc", 0)
    assert store.load("abc", 0) == stored == read_record(path) == read_record(json.loads(path.read_text()))
    assert stored["cost"] == {"params": 10, "peak_memory_mb": None} and "inputs" not in stored["samples"]
    assert {k: v for k, v in stored.items() if k not in ("cost", "samples")} == {k: v for k, v in written.items() if k not in ("cost", "samples")}
    inputs = decode_arrays(store.load_samples(stored["samples"]["inputs_key"])["inputs"])
    assert (inputs["masks"] == masks).all() and decode_arrays(stored["samples"]["predictions"])["predictions"].shape == (1, 4, 4)
