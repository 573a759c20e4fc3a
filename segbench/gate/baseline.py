"""Baselines: the per-seed values of every metric and cost field of a result set, saved
to one JSON file that later result sets are gated against.

The file holds a schema version, the suite's name, when it was made, segbench's version
and, per variant (id and label), the values by seed with their n, mean and std.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import SegbenchError
from ..layout import SuiteFolder
from ..records import json_type, upgraded
from ..store import read_json_file, write_json_atomic
from ..text import clipped
from .results import ResultSet, load_results

FORMAT = "segbench-baseline"
SCHEMA = 1  # the version of the baseline file's layout; checked on read as a record's is
MIGRATIONS: dict = {}  # version v -> a function turning a baseline of version v into one of v + 1 (none yet)
GROUPS = ("metrics", "cost")


@dataclass
class BaselineVariant:
    id: str
    label: str
    seeds: list
    fields: dict  # name -> {seed: value}

    def values(self, name: str) -> dict:
        return self.fields.get(name, {})


@dataclass
class Baseline:
    path: Path
    suite: str
    created: str
    segbench_version: str
    variants: list
    directions: dict = field(default_factory=dict)  # name -> higher is better (absent in older files)

    def get(self, variant_id: str) -> BaselineVariant | None:
        return next((v for v in self.variants if v.id == variant_id), None)

    def field_names(self) -> list:
        names = []
        for variant in self.variants:
            names += [name for name in variant.fields if name not in names]
        return names


@dataclass
class SavedBaseline:
    path: Path
    suite: str
    variants: int
    runs: int
    unsaved: list = field(default_factory=list)  # labels of variants without a finished run


def save_baseline(results_dir, output=None) -> SavedBaseline:
    """Write the baseline of the result set in ``results_dir`` to ``output`` (default:
    ``baselines/<suite>.json`` beside the suite folder), atomically."""
    results = load_results(results_dir)
    payload = baseline_payload(results)
    if not payload["variants"]:
        raise SegbenchError(f"{results.suite_dir} has no finished run (every run failed): nothing to save as a baseline")
    path = Path(output) if output else default_baseline_path(results)
    write_json_atomic(path, payload)
    unsaved = [v.label for v in results.variants if not v.ok]
    runs = sum(len(v["seeds"]) for v in payload["variants"])
    return SavedBaseline(path, results.suite, len(payload["variants"]), runs, unsaved)


def default_baseline_path(results: ResultSet) -> Path:
    return SuiteFolder(results.suite_dir).baseline(results.suite)


def baseline_payload(results: ResultSet) -> dict:
    return {
        "format": FORMAT,
        "schema": SCHEMA,
        "suite": results.suite,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "segbench_version": __version__,
        "source": str(results.suite_dir),
        "higher_is_better": results.directions,
        "variants": [_variant_entry(variant) for variant in results.variants if variant.ok],
    }


def _variant_entry(variant) -> dict:
    entry = {"id": variant.id, "label": variant.label, "is_baseline": variant.is_baseline, "seeds": sorted(variant.ok)}
    fields = variant.fields()
    for group in GROUPS:
        entry[group] = {name: summarize(variant.values(name)) for name in fields[group]}
    return entry


def summarize(values: dict) -> dict:
    """Per-seed values (JSON keys are strings) with n, mean and sample std (None below 2)."""
    array = np.array(list(values.values()), dtype=float)
    return {
        "values": {str(seed): value for seed, value in values.items()},
        "n": len(array),
        "mean": float(array.mean()) if len(array) else None,
        "std": float(array.std(ddof=1)) if len(array) >= 2 else None,
    }


def load_baseline(path) -> Baseline:
    """Read a baseline file; exit 2 with a message when it is missing or not a baseline."""
    path = Path(path)
    if not path.exists():
        raise SegbenchError(f"baseline file {path} does not exist; save one with: segbench baseline save RESULTS_DIR -o {path}")
    payload, problem = read_json_file(path)
    if problem:
        raise SegbenchError(f"baseline file {path}: {problem}; save it again with: segbench baseline save RESULTS_DIR -o {path}")
    payload = _check_format(path, payload)
    variants = [_read_variant(path, index, entry) for index, entry in enumerate(payload["variants"])]
    directions = payload.get("higher_is_better")
    directions = {str(k): v for k, v in directions.items() if isinstance(v, bool)} if isinstance(directions, dict) else {}
    return Baseline(path, str(payload.get("suite", "")), str(payload.get("created", "")), str(payload.get("segbench_version", "")), variants,
                    directions)


def _check_format(path, payload) -> dict:
    """The baseline of version SCHEMA (an older one migrated); a newer one: exit 2, upgrade segbench."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SegbenchError(f"{path} is not a segbench baseline (write one with `segbench baseline save`)")
    if not isinstance(payload.get("variants"), list):
        raise SegbenchError(f"baseline file {path} is damaged: field 'variants' is a JSON {json_type(payload.get('variants'))}, expected "
                            f"a list; save it again with: segbench baseline save RESULTS_DIR -o {path}")
    payload = upgraded(payload, f"baseline file {path}", SCHEMA, MIGRATIONS, unversioned=None)
    if payload.get("schema") != SCHEMA:
        raise SegbenchError(f"baseline file {path} has schema {payload.get('schema')!r}; this segbench reads schema {SCHEMA}: save the baseline again")
    return payload


class _Damaged(Exception):
    """What is wrong with one entry of a baseline file."""


def _read_variant(path, index: int, entry) -> BaselineVariant:
    """The ``index``-th variant of the baseline at ``path``; exit 2 naming the entry and
    the field that is not as ``save_baseline`` writes it."""
    where = f"variants[{index}]"
    try:
        if not isinstance(entry, dict):
            raise _Damaged(f"is a JSON {json_type(entry)}, expected an object")
        where += f" (id {entry.get('id')!r})"
        return _variant_of(entry)
    except _Damaged as problem:
        raise SegbenchError(f"baseline file {path} is damaged: {where} {problem}; save it again with: "
                            f"segbench baseline save RESULTS_DIR -o {path}") from None


def _variant_of(entry: dict) -> BaselineVariant:
    variant_id, label, seeds = entry.get("id"), entry.get("label", entry.get("id")), entry.get("seeds", [])
    if not isinstance(variant_id, str) or not variant_id:
        raise _Damaged(f"has no variant id: 'id' is a JSON {json_type(variant_id)}, expected a string")
    if not isinstance(label, str):
        raise _Damaged(f"has a label that is a JSON {json_type(label)}, expected a string")
    if not isinstance(seeds, list) or not all(_is_seed(seed) for seed in seeds):
        raise _Damaged(f"field 'seeds' is {_shown(seeds)}, expected a list of integer seeds")
    fields = {}
    for group in GROUPS:
        table = entry.get(group)
        table = {} if table is None else table
        if not isinstance(table, dict):
            raise _Damaged(f"field {group!r} is a JSON {json_type(table)}, expected an object of field summaries")
        for name, summary in table.items():
            fields.setdefault(name, _values_of(f"{group}.{name}", summary))
    return BaselineVariant(variant_id, label, list(seeds), fields)


def _values_of(where: str, summary) -> dict:
    """``{seed: value}`` of one field's summary; a null value (not measured) is left out."""
    values = summary.get("values") if isinstance(summary, dict) else None
    if not isinstance(values, dict):
        raise _Damaged(f"field {where!r} has no 'values' object (seed -> number)")
    read = {}
    for seed, value in values.items():
        if not str(seed).lstrip("-").isdigit():
            raise _Damaged(f"field {where!r} has a value for seed {seed!r}, expected an integer seed")
        if value is not None and not _finite(value):
            raise _Damaged(f"field {where!r} value of seed {seed} is {_shown(value)}, expected a finite number (or null)")
        if value is not None:
            read[int(seed)] = float(value)
    return read


def _is_seed(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value) -> str:
    return clipped(repr(value), 60) if isinstance(value, str) else f"a JSON {json_type(value)}"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
