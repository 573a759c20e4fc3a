"""Synthetic results folders for the report at scale (tests/test_report_scale.py and
benchmarks/test_report_scale.py): many variants x seeds, each record a copy of a real one
(docs/examples/upsampling, so every field a report reads has its real size: curves, per-class
and per-image values, bootstrap replicates, predictions) with its own id, label, factors and
metrics, written by the real record writer (segbench.store.ResultStore.write_record)."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from segbench.store import ResultStore, write_json_atomic

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "upsampling"
PRIMARY = "miou"
HEAVY = ("per_image", "bootstrap", "samples")  # what ``light`` records leave out
COLUMNS = 25  # factor b's values: variant i is (a = i // 25, b = i % 25)


def template() -> dict:
    """A real finished record of the demo suite."""
    path = sorted(EXAMPLE.glob("runs/*/seed-0/record.json"))[0]
    return json.loads(path.read_text())


def variant_id(index: int) -> str:
    return hashlib.sha256(f"variant {index}".encode()).hexdigest()[:12]


def quality(index: int, variants: int) -> float:
    """Each variant's true mean mIoU: distinct, in a shuffled order (the best is not the first)."""
    rank = (index * 7919) % variants  # a permutation of 0..variants-1 when variants is not a multiple of 7919
    return 0.6 + 0.3 * rank / max(variants - 1, 1)


def synthetic_records(variants: int, seeds: int, light: bool = False) -> list:
    """``variants`` x ``seeds`` records; ``light`` drops the per-image values, bootstrap
    replicates and predictions (fast tests that only draw)."""
    base = template()
    if light:
        base = {k: v for k, v in base.items() if k not in HEAVY}
    rng = np.random.default_rng(0)
    records = []
    for index in range(variants):
        for seed in range(seeds):
            records.append(_record(base, index, variants, seed, float(rng.normal(0, 0.005))))
    return records


def _record(base, index, variants, seed, noise):
    record = copy.deepcopy(base)
    miou = quality(index, variants) + noise
    shift = miou - base["metrics"][PRIMARY]
    record.update(variant_id=variant_id(index), label=f"variant {index:04d}", seed=seed, is_baseline=index == 0,
                  factors={"a": f"a{index // COLUMNS}", "b": f"b{index % COLUMNS}"})
    record["metrics"] = {name: min(value + shift, 1.0) for name, value in base["metrics"].items()}
    record["per_class"] = {name: {cls: min(max(v + shift, 0.0), 1.0) for cls, v in values.items()}
                           for name, values in base["per_class"].items()}
    record["curves"] = {name: ([e for e in values] if name == "epoch" else [None if v is None else v + shift for v in values])
                        for name, values in base["curves"].items()}
    record["cost"] = {**base["cost"], "latency_ms": 1.0 + (index % 37) * 0.25 + 0.01 * seed, "params": 100_000 + 997 * (index % 101)}
    return record


def meta_of(records: list) -> dict:
    """The suite summary (suite.json) of ``records``: the demo's, with their variants."""
    meta = json.loads((EXAMPLE / "suite.json").read_text())
    order = list(dict.fromkeys(r["variant_id"] for r in records))
    labels = {r["variant_id"]: r["label"] for r in records}
    return {**meta, "name": "scale", "baseline_id": order[0], "variant_order": order, "labels": labels,
            "design": {"kind": "fixed", "seeds": sorted({r["seed"] for r in records})}}


def write_results(root: Path, variants: int, seeds: int, light: bool = False) -> Path:
    """A results folder (``root/scale``) holding the records and their suite summary, as
    ``segbench run`` leaves it; returns the suite folder."""
    store = ResultStore(root, "scale")
    records = synthetic_records(variants, seeds, light)
    for record in records:
        store.write_record(record)
    write_json_atomic(store.summary_path, meta_of(records))
    if not light:
        for samples in (EXAMPLE / "samples").glob("*.json"):
            target = store.samples_path(samples.stem)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(samples, target)
    return store.suite_dir
