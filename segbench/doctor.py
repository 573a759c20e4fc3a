"""``segbench doctor RESULTS_DIR``: what is damaged or missing in a results folder (a record
that is not a regular file, such as a named pipe or a link that leads nowhere, is damaged;
so is a ``suite.json`` that is missing or whose fields are out of bounds), which runs
``segbench run`` would redo, and which are finished. It only reads: nothing is moved or
written (``segbench run`` moves damaged records aside as it redoes their runs). A record
written by a newer segbench is not damage: like every reader, doctor stops with exit 2,
naming it (``segbench.records.NewerSchemaError``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .layout import RECORD_NAME, run_folders, seed_of
from .store import Damage, ResultStore, find_suite_dir
from .text import one_line


@dataclass
class Diagnosis:
    suite_dir: Path
    damaged: list  # Damage: path and problem
    redo: list  # (variant label, seed, why)
    finished: dict = field(default_factory=dict)  # variant label -> seeds

    @property
    def exit_code(self) -> int:
        """0 when nothing is damaged, 1 otherwise."""
        return 1 if self.damaged else 0


def diagnose(results_dir) -> Diagnosis:
    suite_dir = find_suite_dir(results_dir)
    store = ResultStore(suite_dir.parent, suite_dir.name, quiet=True)
    summary = store.load_summary(required=False)
    records = store.records()
    for path in store.samples_paths():
        store.load_samples(path.stem)
    labels = {r["variant_id"]: r["label"] for r in records}
    redo = [_damaged_run(path, labels) for path in (d.path for d in store.damaged) if path.name == RECORD_NAME]
    redo += [(r["label"], r["seed"], f"failed: {r['error'].get('type')}: {r['error'].get('message')}") for r in records if r["status"] != "ok"]
    redo += [(labels.get(variant_id, variant_id), seed, "no record") for variant_id, seed in _missing(summary, store)]
    finished = {}
    rank = {variant_id: index for index, variant_id in enumerate(summary.get("variant_order", []))}
    for record in sorted(records, key=lambda r: (rank.get(r["variant_id"], len(rank)), r["variant_id"])):
        if record["status"] == "ok":
            finished.setdefault(record["label"], []).append(record["seed"])
    return Diagnosis(suite_dir, _summary_missing(store) + store.damaged, redo, finished)


def _summary_missing(store: ResultStore) -> list:
    """``suite.json`` absent: the records are there, but the report cannot be drawn."""
    if os.path.lexists(store.summary_path):
        return []
    return [Damage(store.summary_path, f"is missing (`segbench run` writes it): the report cannot be drawn without it; "
                                       f"run the suite again with the same -o to write it (finished runs are kept)")]


def _missing(summary: dict, store: ResultStore) -> list:
    """Runs of a fixed seed list that have no record at all (an adaptive design decides
    its seeds as it goes, so only its recorded runs are known)."""
    design = summary.get("design") or {}
    if design.get("kind") != "fixed" or not isinstance(design.get("seeds"), list):
        return []
    return [(variant_id, seed) for variant_id in summary.get("variant_order", []) for seed in design["seeds"]
            if not os.path.lexists(store.record_path(variant_id, seed))]


def _damaged_run(path, labels: dict) -> tuple:
    """(variant label, seed, why) of the run whose record file at ``path`` is damaged."""
    variant_folder, seed_folder = run_folders(path)
    return labels.get(variant_folder, variant_folder), seed_of(seed_folder), "damaged record"


def format_diagnosis(diagnosis: Diagnosis) -> str:
    runs = sum(len(seeds) for seeds in diagnosis.finished.values())
    counts = f"{runs} finished run(s), {len(diagnosis.damaged)} damaged file(s), {len(diagnosis.redo)} run(s) to redo"
    lines = [f"{one_line(diagnosis.suite_dir)}: {counts}"]
    if diagnosis.damaged:
        lines += ["", "damaged or missing (report and compare leave these out; gate refuses to judge them):"]
        lines += [f"  {one_line(damage)}" for damage in diagnosis.damaged]
    if diagnosis.redo:
        lines += ["", "`segbench run` would redo (moving damaged records aside as *.corrupt):"]
        lines += [f"  {one_line(label)} seed {seed}: {one_line(why)}" for label, seed, why in diagnosis.redo]
    if diagnosis.finished:
        lines += ["", "finished:"]
        lines += [f"  {one_line(label)}: seed(s) {', '.join(str(s) for s in sorted(seeds))}" for label, seeds in diagnosis.finished.items()]
    return "\n".join(lines)
