"""The layout of a results folder: every file and folder name segbench writes there, in
one place, so that the runner that writes a folder and the readers that read it (store,
report, gate, compare, doctor, plan) cannot disagree::

    <root>/<suite>/runs/<variant-id>/seed-<n>/record.json   one run record each
    <root>/<suite>/suite.json                                the suite summary the report needs
    <root>/<suite>/suite.toml                                the suite file as run (its [gate] rules)
    <root>/<suite>/samples/<key>.json                        validation inputs, once per dataset
    <root>/<suite>/report/                                   index.html, summary.txt, runs.csv, ...
    <root>/<suite>/.lock                                     held by the `segbench run` writing it
    <root>/baselines/<suite>.json                            what `segbench baseline save` writes

Only names and the paths made of them live here (nothing is read or written): the store
(``segbench.store``) reads and writes through them, and ``segbench.records`` owns what the
files hold. It imports nothing of segbench, so any layer may use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RUNS_DIR = "runs"
REPORT_DIR = "report"
SAMPLES_DIR = "samples"
BASELINES_DIR = "baselines"  # beside the suite folders of an output root
SUMMARY_NAME = "suite.json"  # what the report needs besides the records (written by the runner)
SUITE_FILE = "suite.toml"  # the suite as run; its [gate] table holds the gate's default rules
RECORD_NAME = "record.json"
SEED_PREFIX = "seed-"  # a run's folder: seed-<n>
RECORD_TEMPLATE = f"{RUNS_DIR}/<variant-id>/{SEED_PREFIX}<n>/{RECORD_NAME}"  # where a record is, in words for messages
LOCK_NAME = ".lock"
SET_ASIDE_SUFFIX = ".corrupt"  # a damaged file moved aside: record.json.corrupt, .corrupt.1, ...
JSON_SUFFIX = ".json"
# The report folder's files that others than the report look at.
REPORT_INDEX = "index.html"
REPORT_TEXT = "summary.txt"  # the terminal summary, shown again when the report is reused
REPORT_TEXT_WIDE = "summary-wide.txt"  # the same with every column (`--wide`)
REPORT_STAMP = ".fingerprint"  # which records and suite the report was drawn from
RUNS_TABLE = "runs.csv"  # a row per run; `segbench plan --from` reads it


@dataclass(frozen=True)
class SuiteFolder:
    """The paths of one suite's results folder, ``<root>/<suite>/``."""

    path: Path

    @classmethod
    def of(cls, root, suite_name: str) -> SuiteFolder:
        return cls(Path(root) / suite_name)

    @property
    def runs(self) -> Path:
        return self.path / RUNS_DIR

    @property
    def report(self) -> Path:
        return self.path / REPORT_DIR

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY_NAME

    @property
    def suite_file(self) -> Path:
        return self.path / SUITE_FILE

    @property
    def lock(self) -> Path:
        return self.path / LOCK_NAME

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES_DIR

    def samples_file(self, key: str) -> Path:
        return self.samples / f"{key}{JSON_SUFFIX}"

    def samples_files(self) -> list[Path]:
        return sorted(self.samples.glob(f"*{JSON_SUFFIX}"))

    def record(self, variant_id: str, seed: int) -> Path:
        return self.runs / variant_id / seed_folder(seed) / RECORD_NAME

    def records(self) -> list[Path]:
        """Every record file under ``runs/``, in path order: a link that leads nowhere too
        (glob leaves those out), so that it is named as damage, not taken for no run."""
        return sorted(folder / RECORD_NAME for folder in self.runs.glob(f"*/{SEED_PREFIX}*/")
                      if os.path.lexists(folder / RECORD_NAME))

    def baseline(self, suite_name: str) -> Path:
        """Where ``segbench baseline save`` puts the suite's baseline by default."""
        return self.path.parent / BASELINES_DIR / f"{suite_name}{JSON_SUFFIX}"


def is_suite_folder(directory) -> bool:
    """Whether ``directory`` is a suite's results folder (it holds ``runs/``)."""
    return (Path(directory) / RUNS_DIR).is_dir()


def seed_folder(seed: int) -> str:
    return f"{SEED_PREFIX}{seed}"


def run_folders(record_path) -> tuple[str, str]:
    """``(variant folder, seed folder)`` a record file sits in: what its record must name."""
    record_path = Path(record_path)
    return record_path.parent.parent.name, record_path.parent.name


def seed_of(folder: str):
    """The seed a run's folder names (an int), or the folder's text when it names none."""
    text = folder.removeprefix(SEED_PREFIX)
    return int(text) if text.lstrip("-").isdigit() else text


def set_aside_name(name: str, count: int = 0) -> str:
    """The name a damaged file is moved aside under: ``<name>.corrupt``, then ``.corrupt.<count>``."""
    return f"{name}{SET_ASIDE_SUFFIX}" + (f".{count}" if count else "")
