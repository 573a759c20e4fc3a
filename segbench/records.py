"""The files of a results folder as stored: the run record (``runs/<variant-id>/seed-<n>/
record.json``), the suite summary (``suite.json``) and the shared validation samples
(``samples/<key>.json``). This module owns what they hold; ``segbench.layout`` owns where
they are.

Each is declared once here, as a ``TypedDict`` whose every field carries a one-line doc
(``Annotated[type, "doc"]``; ``schema_rows`` lists them, for a generated reference). The
JSON types checked on read are derived from these declarations. Records stay plain dicts,
on disk and in memory: JSON in, dict out.

Every reader reads a record through ``read_record`` (the store does, for report, gate,
compare, plan and doctor). It checks, in this order:

- the file: one that is not a regular file (a named pipe, a device, a link that leads
  nowhere) is damaged, and never opened for reading (a named pipe would block the reader);
- the schema version: a record written by a newer segbench stops the command (exit 2,
  naming the file: upgrade segbench) rather than being guessed at or redone; an older one
  is migrated, version by version (``MIGRATIONS``), to the current layout;
- the layout: a file that is truncated, foreign or wrong raises ``DamagedFile`` saying
  what is wrong in a few words, so the store names it and leaves it out instead of
  trusting it as a finished run or crashing a reader far from the cause;
- then it fills in the optional fields readers index (``with_defaults``).

``RECORD_SCHEMA`` has been 1 since segbench's first release; the fields added since
(``versions``, ``higher_is_better``, ``bootstrap``, ``samples``, ``determinism``, ...) are
optional, so the records written before them read as they are. A change that readers
cannot take as it comes (a field renamed, moved or given a new meaning) raises
``RECORD_SCHEMA`` and adds the migration from the previous version to ``MIGRATIONS``.
"""

import base64
import binascii
import io
import json
import math
import os
import stat
import sys
import types
import typing
import zipfile
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, NotRequired, Required, TypedDict

from . import layout
from .errors import SegbenchError

RECORD_SCHEMA = 1  # the version of the record layout this segbench writes and reads
UNVERSIONED = 1  # a record without "schema" (hand-made; segbench always wrote it) reads as this version
# version v -> a function turning a record of version v into one of version v + 1. It is
# given any dict of that version (damaged ones too: the layout is checked after it), so it
# reads with .get and never raises.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}


# The run record. A field's doc is the string in its Annotated[...]; a doc written
# here is what `schema_rows` gives a generated reference.

class Versions(TypedDict):
    """What the variant id hashes besides the resolved configuration."""

    segbench: Annotated[str, "segbench's version"]
    components: Annotated[dict[str, str], '"<kind>:<name>" -> its provider and version (a local plugin: module and content hash)']


class Environment(TypedDict, total=False):
    """Where the run ran (``segbench.environment``)."""

    python: Annotated[str, "Python version"]
    platform: Annotated[str, "platform.platform()"]
    cpu_count: Annotated[int | None, "os.cpu_count()"]
    torch_threads: Annotated[int, "torch threads the run computed with ([train] threads); a CPU run's last bits depend on it"]
    cuda: Annotated[str | None, "CUDA version torch was built with; null without a GPU"]
    gpu: Annotated[str | None, "name of GPU 0; null without one"]
    packages: Annotated[dict[str, str | None], "version of each package that changes results; null: not installed"]
    segbench_commit: Annotated[str | None, "git commit of segbench's source; null for an installed release"]
    suite_commit: Annotated[str | None, "git commit of the repository holding the suite file; null outside one"]
    git_commit: Annotated[str | None, "records before segbench_commit and suite_commit: the working directory's commit"]
    attempts: Annotated[int, "Ray only: the attempt of its task that gave this record; above 1 when Ray ran it again"]
    retried_because: Annotated[str, "Ray only, when attempts is above 1: why Ray ran the task again"]


class RanOn(TypedDict, total=False):
    """Which machine and device ran the run (``segbench.environment.ran_on``); the cost figures are this device's."""

    hostname: Annotated[str, "the host the run ran on"]
    executor: Annotated[str, 'the executor that ran it ("local", "process", "ray", ...)']
    device_name: Annotated[str | None, "the GPU's name, or the CPU's model for a CPU run; null when the run failed before choosing"]
    ray_node_id: Annotated[str, "the Ray node that ran it; only under Ray"]
    slurm_job_id: Annotated[str, 'the Slurm job ("<array job>_<task>" for an array task); only under Slurm']


class RunError(TypedDict, total=False):
    """Why a run failed (``status`` "failed")."""

    type: Required[Annotated[str, 'the exception\'s class name ("Timeout", "WorkerDied", "OutOfMemoryError", ...)']]
    message: Required[Annotated[str, "the exception's message"]]
    traceback: Annotated[str, "where it was raised; empty when the worker died"]
    hint: Annotated[str, "what to try (out of memory, a timeout, a killed worker)"]


class Determinism(TypedDict, total=False):
    """The reproducibility flags the run trained under (``[train] deterministic``)."""

    deterministic_algorithms: Annotated[bool, "torch.use_deterministic_algorithms was on"]
    warn_only: Annotated[bool, 'in "warn" mode: nondeterministic ops ran, and are listed']
    cudnn_benchmark: Annotated[bool | None, "cudnn.benchmark; null off CUDA"]
    cudnn_deterministic: Annotated[bool | None, "cudnn.deterministic; null off CUDA"]
    cublas_workspace_config: Annotated[str | None, "CUBLAS_WORKSPACE_CONFIG as the run saw it"]
    nondeterministic_ops: Annotated[list[str], 'in "warn" mode: the ops torch warned about, once each']


class CostMeasuredWith(TypedDict, total=False):
    """What the latency, throughput and peak memory mean here, in words: they differ by device."""

    latency_ms: Annotated[str, "repeats, batch, precision and memory layout of the latency"]
    inference_images_per_s: Annotated[str, "batch, repeats, precision and layout of the throughput"]
    peak_memory_mb: Annotated[str, "which peak: CUDA allocated, or the process's resident set"]


class Cost(TypedDict, total=False):
    """What the model costs (``segbench.costs`` owns the list and the directions)."""

    params: Annotated[int, "trainable and frozen parameters"]
    flops_per_image: Annotated[int, "forward FLOPs of one validation image (torch's FlopCounterMode)"]
    latency_ms: Annotated[float, "median forward time at batch 1, in ms"]
    inference_images_per_s: Annotated[float, "forward throughput at the training batch size"]
    peak_memory_mb: Annotated[float | None, "peak memory during the run, in MiB (see cost_measured_with)"]
    image_size: Annotated[list[int], "[height, width] the cost was measured at: the input one evaluation forward receives"]
    input: Annotated[str, "how image_size was derived from the first validation image under eval.inference, e.g. "
                          "'whole: first validation image (375x500) rescaled to fit [2048, 512] -> 512x683'"]
    train_seconds: Annotated[float, "time spent in training steps (validation excluded)"]
    train_images_per_s: Annotated[float | None, "training images per second"]


class DataLoading(TypedDict, total=False):
    """How the run's samples reached training (``[train] data_loading``; ``segbench.data.loading``)."""

    path: Annotated[Literal["memory", "streaming"], '"memory": decoded once into the sample cache and held; '
                                                     '"streaming": read from their files while training']
    feed: Annotated[Literal["indexed", "loader"], '"indexed": batches gathered from memory by index; "loader": each sample read '
                                                   'and transformed by DataLoader workers']
    workers: Annotated[int, "loader worker processes that fed training and validation (0: the run's own process)"]
    wait_share: Annotated[float | None, "share of the training time spent waiting for batches: the loader's share of a step"]


class Bootstrap(TypedDict):
    """Each metric's dataset value on the same image resamples in every run, for the report's image bootstrap."""

    resamples: Annotated[int, "number of resamples"]
    seed: Annotated[int, "seed of the resample weights (the same in every run)"]
    images: Annotated[int, "number of validation images resampled"]
    replicates: Annotated[dict[str, str], "metric -> encode_arrays(values=float32 array of one value per resample)"]


class Samples(TypedDict, total=False):
    """The predictions of the first validation images, for the report's grid."""

    indices: Annotated[list[int], "indices of the validation images predicted"]
    predictions: Annotated[str, "encode_arrays(predictions=uint8 label maps, shape (n, H, W))"]
    inputs_key: Annotated[str, "the samples/<key>.json holding these images and true masks"]
    inputs: Annotated[str, "in memory only: encoded images and masks, moved to samples/<key>.json on write"]


class Record(TypedDict, total=False):
    """One run: a variant trained with one seed, as ``runs/<variant-id>/seed-<n>/record.json``."""

    schema: Annotated[int, "version of this layout (RECORD_SCHEMA); a newer one is refused, an older one migrated"]
    suite: Annotated[str, "the suite's name"]
    variant_id: Required[Annotated[str, "the variant's id: a hash of its resolved configuration and versions"]]
    label: Annotated[str, "the variant's label when it ran (the report shows the suite's current one)"]
    factors: Annotated[dict[str, Any], "ablated key -> the value this variant sets"]
    seed: Required[Annotated[int, "the seed of the run"]]
    config: Annotated[dict[str, Any], "the resolved configuration trained: dataset, model, train, eval"]
    versions: Annotated[Versions, "the versions the variant id hashes"]
    is_baseline: Annotated[bool, "the variant is the suite's baseline"]
    status: Required[Annotated[Literal["ok", "failed"], '"ok": finished and measured; anything else failed']]
    error: Annotated[RunError, "why the run failed; only when status is not ok"]
    started_at: Annotated[str, "when the run started (ISO 8601, UTC)"]
    finished_at: Annotated[str, "when it ended (ISO 8601, UTC)"]
    wall_seconds: Annotated[float, "wall time of the whole run: build, train, evaluate, measure"]
    environment: Annotated[Environment, "where it ran"]
    ran_on: Annotated[RanOn, "which host, executor and device ran it; absent in records before segbench recorded it"]
    device: Annotated[str, 'the torch device it trained on ("cpu", "cuda:0")']
    precision: Annotated[str, 'the autocast precision: "fp32", "bf16" or "fp16"']
    skipped_steps: Annotated[int, "fp16 steps the GradScaler skipped on inf/NaN gradients"]
    determinism: Annotated[Determinism, "the reproducibility flags"]
    cost_measured_with: Annotated[CostMeasuredWith, "how the costs were measured, in words"]
    data_placement: Annotated[str, '"host" or "device": where the dataset lived while training']
    data_loading: Annotated[DataLoading, "which data path fed the run, and with how many loader workers"]
    classes: Annotated[list[str], "the dataset's class names, in label order"]
    ignore_index: Annotated[int | None, "the mask label never scored or learned"]
    curves: Annotated[dict[str, list[float | None]], '"epoch", "train_loss", "val_loss" and each metric -> one value per epoch (null: not validated)']
    metrics: Annotated[dict[str, float], "each metric's final value on the validation set"]
    per_class: Annotated[dict[str, dict[str, float | None]], "metric -> class -> its value (null: undefined for that class)"]
    per_image: Annotated[dict[str, list[float | None]], "metric -> its value on each validation image"]
    higher_is_better: Annotated[dict[str, bool], "metric or cost field -> whether a larger value is better"]
    bootstrap: Annotated[Bootstrap, "image-bootstrap replicates of each metric"]
    cost: Annotated[Cost, "what the model costs"]
    samples: Annotated[Samples, "predictions for the report's grid"]


class SuiteSummary(TypedDict, total=False):
    """``suite.json``: what the report needs to know about the suite besides the records."""

    name: Required[Annotated[str, "the suite's name"]]
    description: Annotated[str, "its description"]
    path: Annotated[str, "the suite file it was run from"]
    text: Annotated[str, "the suite file's text as run"]
    primary: Required[Annotated[str, "the primary metric"]]
    metrics: Required[Annotated[list[str], "the metrics evaluated, in order"]]
    baseline_id: Required[Annotated[str, "id of the baseline variant"]]
    variant_order: Required[Annotated[list[str], "variant ids in the suite's order"]]
    labels: Annotated[dict[str, str], "variant id -> its label as the suite now says"]
    higher_is_better: Annotated[dict[str, bool], "metric -> whether a larger value is better"]
    stats: Annotated[dict[str, Any], "the [stats] settings (segbench.design.StatsSettings)"]
    design: Annotated[dict[str, Any], "the seed design (segbench.design.SeedDesign): fixed or adaptive seeds"]
    gate_rules: Annotated[list[str], "the [gate] rules as run, --set included"]
    overrides: Annotated[list[str], "the --set overrides the run applied, as KEY=VALUE (VALUE as JSON)"]


class StoredSamples(TypedDict):
    """``samples/<key>.json``: the validation images the predictions of every run on one dataset refer to."""

    dataset: Annotated[dict[str, Any], "the dataset reference (name and parameters) the key hashes"]
    indices: Annotated[list[int], "indices of the validation images"]
    inputs: Annotated[str, "encode_arrays(images=..., masks=...) of those images, as stored"]


REQUIRED_FIELDS = tuple(name for name in Record.__annotations__ if name in Record.__required_keys__)


class DamagedFile(ValueError):
    """A file of a results folder that cannot be used; its text says why in a few words."""


class NewerSchemaError(SegbenchError):
    """A file written by a newer segbench than this one (exit 2): its fields may mean
    what this segbench cannot know, so it is neither guessed at nor redone."""

    def __init__(self, what: str, version: int, known: int):
        self.version, self.known = version, known
        super().__init__(f"{what} was written by a newer segbench (schema {version} > {known}); upgrade segbench to read it")


# Reading: every record read goes through read_record.

def read_record(source, variant_folder: str | None = None, seed_folder: str | None = None) -> Record:
    """The run record at ``source``: a path to a ``record.json`` (which must then name the
    variant and seed of the folders it sits in), or a record already parsed.

    Its version is checked (newer: ``NewerSchemaError``) and migrated to the current one,
    its layout checked (damaged: ``DamagedFile``), and its optional fields filled in."""
    if isinstance(source, (str, os.PathLike)):
        payload = shared_strings(_parsed(source))
        variant_folder, seed_folder = layout.run_folders(source)
        what = f"record {source}"
    else:
        payload, what = source, "record " + (_run_name(source) if isinstance(source, dict) else "")
    if isinstance(payload, dict):
        payload = upgraded(payload, what, RECORD_SCHEMA, MIGRATIONS, UNVERSIONED)
    problem = record_problem(payload, variant_folder, seed_folder)
    if problem:
        raise DamagedFile(problem)
    return with_defaults(payload)


SHARED_TEXT = 64  # strings up to this long (keys, names, labels) are shared between the records read


def shared_strings(value):
    """``value`` (parsed JSON) with its keys and short strings interned: every record repeats
    the same few hundred keys and names, and thousands of records held for a report
    otherwise keep a copy each (about 40 MB at 3,000 records). Lists of numbers are kept as
    they are, unwalked."""
    if isinstance(value, dict):
        return {sys.intern(key) if isinstance(key, str) else key: shared_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        if value and isinstance(value[0], (int, float)):
            return value
        return [shared_strings(item) for item in value]
    if isinstance(value, str) and len(value) <= SHARED_TEXT:
        return sys.intern(value)
    return value


def read_summary(path) -> SuiteSummary:
    """The suite summary at ``path``; ``DamagedFile`` when it is not one."""
    return _checked(_parsed(path), summary_problem)


def read_samples(path) -> StoredSamples:
    """Stored validation samples at ``path``; ``DamagedFile`` when they are not readable."""
    return _checked(_parsed(path), samples_problem)


def _parsed(path):
    """A results file parsed; ``DamagedFile`` saying why when it cannot be."""
    payload, problem = read_json_file(path)
    if problem:
        raise DamagedFile(problem)
    return payload


def upgraded(payload: dict, what: str, current: int, migrations: dict, unversioned: int | None) -> dict:
    """``payload`` (a record, a baseline) at version ``current``: one written by a newer
    segbench raises ``NewerSchemaError`` naming ``what``; an older one goes through
    ``migrations[v]`` (version v to v + 1) in turn and is stamped with ``current``. A
    version that is not an integer, or that no migration leads on from, is returned as it
    is, for the layout check to name."""
    version = payload.get("schema", unversioned)
    if not _is_a(version, int) or version == current:
        return payload
    if version > current:
        raise NewerSchemaError(what, version, current)
    if not all(step in migrations for step in range(version, current)):
        return payload
    for step in range(version, current):
        payload = migrations[step](dict(payload))
    return {**payload, "schema": current}


def oldest_readable(current: int, migrations: dict) -> int:
    """The oldest version from which ``migrations`` lead to ``current``."""
    oldest = current
    while oldest - 1 in migrations:
        oldest -= 1
    return oldest


def _checked(payload, problem_of):
    problem = problem_of(payload)
    if problem:
        raise DamagedFile(problem)
    return payload


def _run_name(record: dict) -> str:
    return f"of variant {record.get('variant_id')!r} seed {record.get('seed')!r}"


# Checks: each returns what is wrong as one short phrase, or None when the payload is sound.

def record_problem(record, variant_folder: str | None = None, seed_folder: str | None = None) -> str | None:
    """What is wrong with a run record read from ``runs/<variant_folder>/<seed_folder>/``,
    or None."""
    if not isinstance(record, dict):
        return f"holds a JSON {json_type(record)}, not a run record (an object)"
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        return f"is not a run record: no {', '.join(missing)}"
    return (_type_problem(record, RECORD_FIELDS) or _schema_problem(record.get("schema", UNVERSIONED))
            or _folder_problem(record, variant_folder, seed_folder) or _finished_problem(record) or _numbers_problem(record)
            or _arrays_problem(record))


def summary_problem(summary) -> str | None:
    """What is wrong with a suite summary (``suite.json``), or None."""
    if not isinstance(summary, dict):
        return f"holds a JSON {json_type(summary)}, not a suite summary (an object)"
    missing = [name for name in SUMMARY_REQUIRED if name not in summary]
    if missing:
        return f"is not a suite summary: no {', '.join(missing)}"
    problem = _type_problem(summary, SUMMARY_FIELDS)
    for name in ("metrics", "variant_order", "gate_rules", "overrides"):
        strange = [item for item in summary.get(name) or [] if not isinstance(item, str)] if problem is None else []
        if strange:
            return f"field {name!r} holds a JSON {json_type(strange[0])}, expected only strings"
    return problem or _summary_contents_problem(summary)


def _summary_contents_problem(summary: dict) -> str | None:
    """What the report and the gate compute with: each table's entries, the settings
    within the suite file's own bounds (segbench.schema), the primary metric among the
    metrics and the baseline among the variants."""
    from . import schema  # pure Python, but only needed here

    if summary["primary"] not in summary["metrics"]:
        return f"field 'primary' is {summary['primary']!r}, which is not one of its 'metrics' {summary['metrics']}"
    if summary["baseline_id"] not in summary["variant_order"]:
        return f"field 'baseline_id' is {summary['baseline_id']!r}, which is not one of its 'variant_order' {summary['variant_order']}"
    for name, kind in (("labels", str), ("higher_is_better", bool)):
        strange = {key: value for key, value in (summary.get(name) or {}).items() if not _is_a(value, kind)}
        if strange:
            key, value = next(iter(strange.items()))
            return f"field {name!r} maps {key!r} to a JSON {json_type(value)}, expected {_json_name(kind)}"
    problem = _stats_problem(summary.get("stats") or {}, schema)
    if problem:
        return f"field 'stats' key {problem}"
    return _design_problem(summary.get("design"), schema)


def _stats_problem(stats: dict, schema) -> str | None:
    """``[stats]`` as StatsSettings.to_dict stores it: the schema's ``margin`` in its two
    forms apart, ``margin`` a number and ``margins`` the table by metric."""
    keys = {**{key.name: key for key in schema.STATS.keys}, "margins": schema.STATS["margin"]}
    shapes = {"margin": (float, "a number"), "margins": (dict, "a table of metric names to margins")}
    for name, value in stats.items():
        problem = keys[name].problem(value) if name in keys else None
        kind, shape = shapes.get(name, (object, ""))
        if problem is None and not _is_a(value, kind):
            problem = f"expected {shape}, got a JSON {json_type(value)}"
        if problem:
            return f"{name!r}: {problem}"
    return None


def _design_problem(design, schema) -> str | None:
    if design is None:
        return None
    kind = design.get("kind")
    if kind == "fixed":
        problem = schema.SEEDS.options[0].problem(design.get("seeds"), "seeds")
    elif kind == "adaptive":
        table = schema.ADAPTIVE_SEEDS
        missing = [name for name in table.required if name not in design]
        problem = f"no {', '.join(missing)}" if missing else next(
            (f"{key.name!r}: {p}" for key in table.keys if key.name in design for p in [key.problem(design[key.name])] if p), None)
    else:
        return f"field 'design' has kind {kind!r}; valid: 'fixed' or 'adaptive'"
    return f"field 'design' ({kind} seeds): {problem}" if problem else None


def samples_problem(samples) -> str | None:
    """What is wrong with stored validation samples (``samples/<key>.json``), or None."""
    if not isinstance(samples, dict) or not isinstance(samples.get("inputs"), str):
        return "holds no validation inputs (an object with an \"inputs\" text)"
    try:
        arrays = decode_arrays(samples["inputs"])
    except ValueError as exc:
        return f"its inputs {exc}"
    if not {"images", "masks"} <= set(arrays):
        return "its inputs lack the images or the masks"
    return None


def with_defaults(record: dict) -> Record:
    """A sound record with the optional fields readers index filled in."""
    record = {"label": record["variant_id"], "factors": {}, "metrics": {}, "cost": {}, **record}
    if record["status"] != "ok":
        record["error"] = {"type": "unknown", "message": "(no error recorded)", **record.get("error", {})}
    return record


def _type_problem(payload: dict, fields: dict) -> str | None:
    for name, (kind, nullable) in fields.items():
        value = payload.get(name)
        if name in payload and not (value is None and nullable) and not _is_a(value, kind):
            return f"field {name!r} is a JSON {json_type(value)}, expected {_json_name(kind)}"
    return None


def _schema_problem(schema: int) -> str | None:
    if schema > RECORD_SCHEMA:
        return f"has record schema {schema}, written by a newer segbench; this one reads up to {RECORD_SCHEMA}"
    oldest = oldest_readable(RECORD_SCHEMA, MIGRATIONS)
    if schema < oldest:
        valid = f"{oldest} to {RECORD_SCHEMA}" if oldest < RECORD_SCHEMA else f"{RECORD_SCHEMA}"
        return f"has record schema {schema}; valid: {valid}"
    return None


def _folder_problem(record: dict, variant_folder, seed_folder) -> str | None:
    """A record must sit in its own run's folder: a copied or edited one would otherwise
    stand in for another run."""
    if variant_folder is not None and record["variant_id"] != variant_folder:
        return f"names variant {record['variant_id']!r} but sits in the folder of variant {variant_folder!r}"
    if seed_folder is not None and seed_folder != layout.seed_folder(record["seed"]):
        return f"names seed {record['seed']} but sits in folder {seed_folder!r}"
    return None


def _finished_problem(record: dict) -> str | None:
    """A record that says "ok" must hold what a finished run measured; a failed one's
    error, when there, says what happened in text."""
    if record["status"] != "ok":
        strange = [key for key in ("type", "message", "traceback") if not isinstance((record.get("error") or {}).get(key, ""), str)]
        return f"its error {strange[0]!r} is not a text" if strange else None
    metrics = record.get("metrics")
    if not metrics:
        return "says status ok but holds no metrics"
    for name, value in metrics.items():
        if not _is_a(value, float) or not math.isfinite(value):
            return f"says status ok but metric {name!r} is {_shown(value)}, not a finite number"
    return None


def _numbers_problem(record: dict) -> str | None:
    """The numbers the report computes with: a curve is a list of numbers (null where an
    epoch was not validated), a per-class table maps classes to numbers (null: undefined)."""
    for name, values in (record.get("curves") or {}).items():
        if not isinstance(values, list) or not all(value is None or _is_a(value, float) for value in values):
            return f"curve {name!r} is not a list of numbers"
    for name, table in (record.get("per_class") or {}).items():
        if not isinstance(table, dict) or not all(value is None or _is_a(value, float) for value in table.values()):
            return f"per-class {name!r} is not an object of numbers"
    for name, value in (record.get("cost") or {}).items():
        if name in TEXT_COSTS:
            if not isinstance(value, str):
                return f"cost {name!r} is a JSON {json_type(value)}, expected a string"
        elif not (value is None or _is_a(value, float) or isinstance(value, list)):
            return f"cost {name!r} is a JSON {json_type(value)}, expected a number"
    return None


def _arrays_problem(record: dict) -> str | None:
    """The encoded arrays readers decode (the report's bootstrap and prediction grid)."""
    replicates = (record.get("bootstrap") or {}).get("replicates") or {}
    if not isinstance(replicates, dict):
        return f"its bootstrap replicates are a JSON {json_type(replicates)}, expected an object"
    encoded = {f"bootstrap replicates of {name!r}": text for name, text in replicates.items()}
    if "predictions" in (record.get("samples") or {}):
        encoded["sample predictions"] = record["samples"]["predictions"]
    for what, text in encoded.items():
        try:
            decode_arrays(text)
        except ValueError as exc:
            return f"its {what} {exc}"
    return None


def encode_arrays(**arrays) -> str:
    """numpy arrays as one base64 text (a compressed .npz), so they fit in a JSON record."""
    import numpy as np  # here, not at the top: importing the record declarations stays light

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_arrays(text) -> dict:
    """The arrays of ``encode_arrays``; ValueError (saying what is wrong) for a damaged text."""
    if not isinstance(text, str):
        raise ValueError(f"are a JSON {json_type(text)}, not encoded arrays (a text)")  # noqa: TRY004 - one error for any damage
    import numpy as np

    try:
        with np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (binascii.Error, ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, AttributeError) as exc:
        raise ValueError(f"are not readable encoded arrays ({type(exc).__name__}: {exc})") from None


def read_json_file(path) -> tuple:
    """``(payload, None)``, or ``(None, problem)`` saying in a few words why the file at
    ``path`` cannot be read as JSON."""
    path = Path(path)
    try:
        text = _regular_file_text(path)
    except IsADirectoryError:
        return None, "is a directory, not a file"
    except UnicodeDecodeError:
        return None, "is not UTF-8 text (binary garbage?)"
    except FileNotFoundError as exc:
        return None, _dangling(path) or f"cannot be read ({exc.strerror or exc})"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    except _NotRegular as exc:
        return None, str(exc)
    if not text.strip():
        return None, "is empty"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        return None, f"is not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno}){'; it looks truncated' if cut else ''}"
    except RecursionError:
        return None, "is not valid JSON: nested too deeply"


class _NotRegular(Exception):
    """A path that is not a regular file (a named pipe, a socket, a device)."""


def _regular_file_text(path: Path) -> str:
    """The text of the regular file at ``path``. It is opened without blocking and checked
    before it is read: a named pipe in a record's place would otherwise block the reader
    for ever, a device feed it without end."""
    handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(handle).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(mode):
            raise _NotRegular(f"is {_file_kind(mode)}, not a regular file")
        with os.fdopen(handle, "rb") as file:
            handle = None
            return file.read().decode("utf-8")
    finally:
        if handle is not None:
            os.close(handle)


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))
    return next((word for test, word in kinds if test(mode)), "not a file")


def _dangling(path: Path) -> str | None:
    """What a symbolic link that leads nowhere is, or None when ``path`` is not one."""
    if not path.is_symlink():
        return None
    return f"is a symbolic link to {os.readlink(path)!r}, which does not exist (a dangling link)"


def json_type(value) -> str:
    """The JSON name of a parsed value's type."""
    if value is None:
        return "null"
    for kind in (bool, int, float, str, list, dict):
        if isinstance(value, kind):
            return _json_name(kind)
    return type(value).__name__


def _is_a(value, kind) -> bool:
    """JSON typing: a bool is not a number; an integer is a float."""
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _json_name(kind) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}[kind]


def _shown(value) -> str:
    if isinstance(value, float):
        return str(value)  # nan, inf
    return "null" if value is None else f"a JSON {json_type(value)}"


# The declarations read back: the JSON type of each field, and its doc.

def _unwrapped(annotation):
    """``(type, doc)`` of a field's annotation: Required/NotRequired and Annotated removed."""
    doc = ""
    while typing.get_origin(annotation) in (Required, NotRequired, Annotated):
        if typing.get_origin(annotation) is Annotated:
            doc = next((extra for extra in annotation.__metadata__ if isinstance(extra, str)), doc)
        annotation = typing.get_args(annotation)[0]
    return annotation, doc


def _json_kind(annotation) -> tuple:
    """``(the JSON kind a field must have as a Python type, whether null is allowed)``;
    kind None: any value."""
    kind, _ = _unwrapped(annotation)
    nullable = False
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        others = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        nullable, kind = len(others) < len(typing.get_args(kind)), others[0]
    if typing.get_origin(kind) is Literal:
        kind = type(typing.get_args(kind)[0])
    if typing.is_typeddict(kind):
        return dict, nullable
    kind = typing.get_origin(kind) or kind
    return (None if kind is Any else kind), nullable


def _field_kinds(declaration) -> dict:
    """field -> (JSON kind, nullable) of a TypedDict, for the checks on read."""
    hints = typing.get_type_hints(declaration, include_extras=True)
    return {name: _json_kind(hint) for name, hint in hints.items() if _json_kind(hint)[0] is not None}


def schema_rows(declaration=Record, prefix: str = "") -> list:
    """``(field, type, required, doc)`` of every field of ``declaration`` and of the
    declarations nested in it (``cost.latency_ms``): the reference of a file's layout."""
    rows = []
    hints = typing.get_type_hints(declaration, include_extras=True)
    for name, hint in hints.items():
        kind, doc = _unwrapped(hint)
        required = name in declaration.__required_keys__
        rows.append((prefix + name, _type_text(kind), required, doc))
        if typing.is_typeddict(kind):
            rows += schema_rows(kind, f"{prefix}{name}.")
    return rows


def _type_text(kind) -> str:
    if typing.is_typeddict(kind):
        return kind.__name__
    return kind.__name__ if isinstance(kind, type) and not typing.get_args(kind) else str(kind).replace("typing.", "")


RECORD_FIELDS = _field_kinds(Record)
TEXT_COSTS = tuple(name for name, (kind, _) in _field_kinds(Cost).items() if kind is str)  # cost.input: words, not a number
SUMMARY_FIELDS = _field_kinds(SuiteSummary)
SUMMARY_REQUIRED = tuple(name for name in SuiteSummary.__annotations__ if name in SuiteSummary.__required_keys__)


def reference_markdown() -> str:
    """docs/record-reference.md: every field of a run record (``runs/<variant>/seed-<n>/record.json``)
    and of ``suite.json``, from the declarations above."""
    lines = ["# Run record reference", "",
             "Generated from `segbench/records.py` by `python -m segbench.records > docs/record-reference.md`; "
             "do not edit by hand (tests/test_records.py fails while it is stale).", "",
             f"Records are JSON, one per run, schema version {RECORD_SCHEMA}: a newer version is refused "
             "(exit 2), an older one is migrated on read. Required fields are marked ✓.", ""]
    for title, declaration in (("record.json", Record), ("suite.json", SuiteSummary)):
        lines += [f"## {title}", "", "| field | type | required | meaning |", "|---|---|---|---|"]
        lines += [f"| `{name}` | `{kind}` | {'✓' if required else ''} | {doc.replace('|', '&#124;')} |"
                  for name, kind, required, doc in schema_rows(declaration)]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown(), end="")
