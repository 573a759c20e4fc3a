"""A results folder read back for the gate: each variant's finished and failed runs.

The folder given may be the output root (``results/``, holding one suite folder) or a
suite folder (``results/<suite>/``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SegbenchError
from ..layout import RECORD_TEMPLATE, SuiteFolder
from ..store import ResultStore, find_suite_dir


@dataclass
class VariantRuns:
    id: str
    label: str
    is_baseline: bool = False
    ok: dict = field(default_factory=dict)  # seed -> record
    failed: dict = field(default_factory=dict)  # seed -> record

    def values(self, name: str) -> dict:
        """``{seed: value}`` of a metric or cost field over the finished runs (missing and
        non-finite values left out)."""
        values = {seed: field_value(record, name) for seed, record in self.ok.items()}
        return {seed: value for seed, value in sorted(values.items()) if value is not None}

    def fields(self) -> dict:
        """Every numeric metric and cost field of the finished runs: ``{"metrics": [...],
        "cost": [...]}`` in first-seen order."""
        found = {"metrics": [], "cost": []}
        for record in self.ok.values():
            for group, names in found.items():
                names += [k for k, v in (record.get(group) or {}).items() if _is_number(v) and k not in names]
        return found


@dataclass
class ResultSet:
    suite: str
    suite_dir: Path
    variants: list
    meta: dict = field(default_factory=dict)  # suite.json: name, order, stats settings, directions
    damaged: list = field(default_factory=list)  # segbench.store.Damage of each file left out

    def get(self, variant_id: str) -> VariantRuns | None:
        return next((v for v in self.variants if v.id == variant_id), None)

    @property
    def directions(self) -> dict:
        """name -> higher is better, for every metric and cost field the runs recorded:
        what the records say (the metrics that ran), else the suite summary."""
        directions = dict(self.meta.get("higher_is_better") or {})
        for variant in self.variants:
            for record in variant.ok.values():
                directions.update(record.get("higher_is_better") or {})
        return directions

    @property
    def suite_file(self) -> Path:
        return SuiteFolder(self.suite_dir).suite_file

    @property
    def summary_file(self) -> Path:
        return SuiteFolder(self.suite_dir).summary


def load_results(directory, quiet: bool = False) -> ResultSet:
    """Read every sound record of the one suite under ``directory`` (damaged files are
    left out, listed in ``damaged`` and, unless ``quiet``, named on stderr); exit 2 when
    there is none or several suites."""
    suite_dir = find_suite_dir(directory)
    store = ResultStore(suite_dir.parent, suite_dir.name, quiet=quiet)
    meta = store.load_summary(required=False)  # the name and order are niceties; the records are what counts
    records = store.records()
    if not records:
        if store.damaged:
            raise SegbenchError(f"{directory} holds no usable run records ({len(store.damaged)} damaged file(s) left out; "
                                f"`segbench doctor {directory}` lists them, `segbench run` redoes their runs)")
        raise SegbenchError(f"{directory} holds no run records (expected {suite_dir}/{RECORD_TEMPLATE})")
    return ResultSet(meta.get("name") or suite_dir.name, suite_dir, _group(records, meta.get("variant_order") or []), meta,
                     list(store.damaged))


def match_variants(saved, results: ResultSet) -> dict:
    """Each variant id of ``saved`` (a baseline, or the first of two result sets) -> its runs
    in ``results``: by id, else by label when exactly one unclaimed variant carries it. A
    variant keeps its label when a default of some component changes (which changes every
    id), and the two sides should still be compared."""
    matches = {old.id: results.get(old.id) for old in saved.variants}
    claimed = {runs.id for runs in matches.values() if runs is not None}
    for old in saved.variants:
        if matches[old.id] is None:
            same_label = [v for v in results.variants if v.label == old.label and v.id not in claimed and saved.get(v.id) is None]
            if len(same_label) == 1:
                matches[old.id] = same_label[0]
                claimed.add(same_label[0].id)
    return matches


def field_value(record: dict, name: str) -> float | None:
    """A metric, else a cost field, of one record; None when absent or not a finite number."""
    for group in ("metrics", "cost"):
        value = (record.get(group) or {}).get(name)
        if _is_number(value):
            return float(value) if math.isfinite(value) else None
    return None


def _group(records, order) -> list:
    """Records (checked by the store: each has a variant id, a seed and a status) by variant."""
    variants = {}
    for record in records:
        variant = variants.setdefault(record["variant_id"], VariantRuns(record["variant_id"], record["label"]))
        variant.is_baseline = variant.is_baseline or bool(record.get("is_baseline"))
        runs = variant.ok if record["status"] == "ok" else variant.failed
        runs[record["seed"]] = record
    rank = {variant_id: index for index, variant_id in enumerate(order)}
    return sorted(variants.values(), key=lambda v: (rank.get(v.id, len(rank)), v.label))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
