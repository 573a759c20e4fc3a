"""The files of a results folder as stored: the run record, the suite summary
(``suite.json``) and the shared validation samples (``samples/<key>.json``).

Each has a schema here, checked on every read (``segbench.store.ResultStore`` reads
through these functions): a file that is truncated, foreign or wrong is named and left out
instead of being trusted as a finished run, or crashing a reader far from the cause. A
check returns the problem as one short phrase, or None when the file is sound.

A record's ``schema`` is the version of this layout; a reader refuses a newer one rather
than guessing what its fields mean. Records without it (hand-made, or from tests) are
read as version 1. Optional fields missing from a sound record get their defaults
(``with_defaults``), so that readers may index them.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import zipfile

import numpy as np

RECORD_SCHEMA = 1  # written into every record by the runner
RECORD_FIELDS = {  # field -> the JSON type it must have when present
    "variant_id": str, "seed": int, "status": str, "label": str, "schema": int, "suite": str, "is_baseline": bool,
    "factors": dict, "config": dict, "versions": dict, "environment": dict, "error": dict,
    "metrics": dict, "cost": dict, "curves": dict, "per_class": dict, "per_image": dict,
    "higher_is_better": dict, "bootstrap": dict, "samples": dict,
}
REQUIRED_FIELDS = ("variant_id", "seed", "status")
SUMMARY_FIELDS = {"name": str, "primary": str, "metrics": list, "baseline_id": str, "variant_order": list}
SUMMARY_OPTIONAL = {"description": str, "path": str, "text": str, "higher_is_better": dict, "stats": dict, "design": dict}


def record_problem(record, variant_folder: str | None = None, seed_folder: str | None = None) -> str | None:
    """What is wrong with a run record read from ``runs/<variant_folder>/<seed_folder>/``,
    or None."""
    if not isinstance(record, dict):
        return f"holds a JSON {json_type(record)}, not a run record (an object)"
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        return f"is not a run record: no {', '.join(missing)}"
    return (_type_problem(record, RECORD_FIELDS) or _schema_problem(record.get("schema", 1))
            or _folder_problem(record, variant_folder, seed_folder) or _finished_problem(record) or _numbers_problem(record)
            or _arrays_problem(record))


def summary_problem(summary) -> str | None:
    """What is wrong with a suite summary (``suite.json``), or None."""
    if not isinstance(summary, dict):
        return f"holds a JSON {json_type(summary)}, not a suite summary (an object)"
    missing = [name for name in SUMMARY_FIELDS if name not in summary]
    if missing:
        return f"is not a suite summary: no {', '.join(missing)}"
    problem = _type_problem(summary, {**SUMMARY_FIELDS, **SUMMARY_OPTIONAL})
    for name in ("metrics", "variant_order"):
        strange = [item for item in summary[name] if not isinstance(item, str)] if problem is None else []
        if strange:
            return f"field {name!r} holds a JSON {json_type(strange[0])}, expected only strings"
    return problem


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


def with_defaults(record: dict) -> dict:
    """A sound record with the optional fields readers index filled in."""
    record = {"label": record["variant_id"], "factors": {}, "metrics": {}, "cost": {}, **record}
    if record["status"] != "ok":
        record["error"] = {"type": "unknown", "message": "(no error recorded)", **record.get("error", {})}
    return record


def _type_problem(payload: dict, fields: dict) -> str | None:
    for name, kind in fields.items():
        if name in payload and not _is_a(payload[name], kind):
            return f"field {name!r} is a JSON {json_type(payload[name])}, expected {_json_name(kind)}"
    return None


def _schema_problem(schema: int) -> str | None:
    if schema > RECORD_SCHEMA:
        return f"has record schema {schema}, written by a newer segbench; this one reads up to {RECORD_SCHEMA}"
    if schema < 1:
        return f"has record schema {schema}; valid: 1 to {RECORD_SCHEMA}"
    return None


def _folder_problem(record: dict, variant_folder, seed_folder) -> str | None:
    """A record must sit in its own run's folder: a copied or edited one would otherwise
    stand in for another run."""
    if variant_folder is not None and record["variant_id"] != variant_folder:
        return f"names variant {record['variant_id']!r} but sits in the folder of variant {variant_folder!r}"
    if seed_folder is not None and seed_folder != f"seed-{record['seed']}":
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
        if not (value is None or _is_a(value, float) or isinstance(value, list)):
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
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_arrays(text) -> dict:
    """The arrays of ``encode_arrays``; ValueError (saying what is wrong) for a damaged text."""
    if not isinstance(text, str):
        raise ValueError(f"are a JSON {json_type(text)}, not encoded arrays (a text)")  # noqa: TRY004 - one error for any damage
    try:
        with np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (binascii.Error, ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, AttributeError) as exc:
        raise ValueError(f"are not readable encoded arrays ({type(exc).__name__}: {exc})") from None


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
