"""The decoded-sample cache: a dataset is decoded and resized once, then read back by every
run and variant that uses it, in this process and in later ones.

A dataset factory calls :func:`cached_dataset` with a *key*: a JSON-able dict naming
everything its samples depend on (its parameters, a fingerprint of its input files, a
version of its decoding code). The key's hash names one file under
``CACHE_DIR/samples/``; a changed parameter or input gives another file, so stale entries
are never read. Entries are written to a temporary file and renamed into place, and a
per-entry lock makes a second process that wants the same entry wait for the first
instead of decoding it again, so concurrent runs are safe.

Entries are ``torch.save`` files of uint8 tensors, read back memory-mapped: a hit costs a
file open and a checksum, not a decode. torch checks nothing when it maps a tensor, so
each entry carries a CRC-32 of its contents, recomputed on every open: an entry that is
damaged (flipped bytes, truncated, a part missing), or was written without a checksum by
an older segbench, is rebuilt from its source with a warning on stderr.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import hashlib
import json
import os
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import torch

from ..errors import SegbenchError
from .samples import ImageList, SegmentationData, TensorPairs

CACHE_FORMAT = 1  # part of every entry's name: bumping it orphans all entries
ENTRY_FORMAT = 2  # what an entry file holds; 2 added the checksum (old entries are rebuilt in place)
CHECKSUM = "crc32"  # stdlib, ~2 GB/s: cheap next to a decode, and made for accidental damage
SUBDIR = "samples"


@dataclass(frozen=True)
class CacheEvent:
    """One dataset request: where its entry lives and whether it was already there."""

    name: str
    path: Path
    hit: bool
    seconds: float
    nbytes: int


_events: list[CacheEvent] = []
_show_progress = contextvars.ContextVar("segbench_data_progress", default=False)

DATA_CACHE_ENV = "SEGBENCH_DATA_CACHE"


def resolve_cache_dir(cache_dir=None) -> Path:
    """``--data-cache``, else $SEGBENCH_DATA_CACHE, else the user cache dir."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get(DATA_CACHE_ENV):
        return Path(os.environ[DATA_CACHE_ENV])
    return Path(platformdirs.user_cache_dir("segbench"))


def cached_dataset(cache_dir, key: dict, build) -> SegmentationData:
    """The dataset for ``key``: read from the cache, or made by ``build()`` and stored.

    :param cache_dir: the data cache folder the factory was given.
    :param key: JSON-able dict of everything the samples depend on; include a ``dataset``
        name and a version of the decoding code.
    :param build: a no-argument callable returning the :class:`SegmentationData`.
    """
    path = entry_path(cache_dir, key)
    started = time.perf_counter()
    data, _ = _read(path, key)
    hit = data is not None
    if not hit:
        with _locked(path):
            data, damage = _read(path, key)  # another process may have written it while we waited
            hit = data is not None
            if not hit:
                if damage:
                    _warn_rebuilding(path, damage)
                data = build()
                _write(path, key, data)
    _events.append(CacheEvent(str(key.get("dataset", "dataset")), path, hit, time.perf_counter() - started, data.train.nbytes + data.val.nbytes))
    return data


def entry_path(cache_dir, key: dict) -> Path:
    text = json.dumps({"format": CACHE_FORMAT, **key}, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    return Path(cache_dir) / SUBDIR / f"{key.get('dataset', 'dataset')}-{digest}.pt"


def files_fingerprint(paths) -> str:
    """A hash of each file's path, size and modification time: changes when any file does."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = os.stat(path)
            state = f"{stat.st_size}\0{stat.st_mtime_ns}"
        except OSError:
            state = "missing"  # the reader names it when it decodes
        digest.update(f"{Path(path).resolve()}\0{state}\n".encode())
    return digest.hexdigest()


def folder_fingerprint(path) -> str:
    """Cheap for huge folders: the path and modification time (changes when files are
    added, removed or renamed, not when one is rewritten in place)."""
    return f"{Path(path).resolve()}@{os.stat(path).st_mtime_ns}"


def take_events() -> list[CacheEvent]:
    """The requests since the last call (for ``segbench data prepare``)."""
    events = list(_events)
    _events.clear()
    return events


@contextlib.contextmanager
def showing_progress(enabled: bool = True):
    """Within this block, :func:`track` draws a progress bar."""
    token = _show_progress.set(enabled)
    try:
        yield
    finally:
        _show_progress.reset(token)


def track(iterable, total=None, description=""):
    """``iterable``, with a progress bar while decoding under :func:`showing_progress`."""
    if not _show_progress.get():
        return iterable
    from tqdm.auto import tqdm  # only when drawing

    return tqdm(iterable, total=total, desc=description, unit="img", leave=False, dynamic_ncols=True)


# --- storage ---------------------------------------------------------------------------------


def _read(path: Path, key: dict):
    """``(data, None)`` for a sound entry; ``(None, None)`` when there is none;
    ``(None, why)`` when there is one that must not be trusted."""
    if not path.is_file():
        return None, ("is not a file" if path.exists() else None)
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # noqa: BLE001 - an unreadable entry is rebuilt, never trusted
        return None, f"is unreadable (truncated, or not a torch file: {type(error).__name__})"
    try:
        damage = _damage(stored, key)
        if damage:
            return None, damage
        return SegmentationData(
            stored["classes"], _split_from(stored["train"]), _split_from(stored["val"]), stored["ignore_index"], stored["mode"]
        ), None
    except Exception as error:  # noqa: BLE001 - a part missing or of the wrong kind
        return None, f"is damaged ({type(error).__name__}: {_first_line(error)})"


def _damage(stored, key: dict) -> str | None:
    """Why the loaded entry must not be used, or None when its checksum holds."""
    if not isinstance(stored, dict) or "format" not in stored:
        return "is not a sample-cache entry"
    if "checksum" not in stored:
        return "has no checksum (written by an older segbench)"
    if stored["format"] != ENTRY_FORMAT:
        return f"has entry format {stored['format']!r}, not {ENTRY_FORMAT}"
    if stored["key"] != _canonical(key):
        return "holds another dataset's key"
    if stored["checksum"] != checksum(stored):
        return "fails its checksum (its contents are damaged)"
    return None


def checksum(stored: dict) -> str:
    """The CRC-32 of an entry's contents: its description, then every tensor's bytes."""
    splits = {name: _tensors(stored[name]) for name in ("train", "val")}
    description = {
        "key": stored["key"], "classes": stored["classes"], "ignore_index": stored["ignore_index"], "mode": stored["mode"],
        **{name: [stored[name]["native"], [(str(t.dtype), list(t.shape)) for t in tensors]] for name, tensors in splits.items()},
    }
    crc = zlib.crc32(json.dumps(description, sort_keys=True, default=str).encode())
    for tensors in splits.values():
        for tensor in tensors:
            crc = zlib.crc32(_raw_bytes(tensor), crc)
    return f"{CHECKSUM}:{crc:08x}"


def _tensors(split: dict) -> list:
    images, masks = split["images"], split["masks"]
    return [images, masks] if isinstance(images, torch.Tensor) else [*images, *masks]


def _raw_bytes(tensor: torch.Tensor) -> memoryview:
    """A tensor's bytes without a copy (one only if it is not contiguous)."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def _warn_rebuilding(path: Path, damage: str) -> None:
    print(f"segbench: warning: sample cache entry {path} {damage}; rebuilding it from its source", file=sys.stderr)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:120] if text else "no message"


def _write(path: Path, key: dict, data: SegmentationData) -> None:
    stored = {
        "format": ENTRY_FORMAT,
        "key": _canonical(key),
        "classes": list(data.classes),
        "ignore_index": data.ignore_index,
        "mode": data.mode,
        "train": _split_to(data.train),
        "val": _split_to(data.val),
    }
    stored["checksum"] = checksum(stored)
    scratch = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        os.close(handle)
        torch.save(stored, scratch)
        os.chmod(scratch, 0o644)  # mkstemp makes it private; a cache is ordinary files
        os.replace(scratch, path)
    except OSError as error:
        raise _unwritable(path, error) from None
    finally:
        if scratch and os.path.exists(scratch):
            os.unlink(scratch)


def _unwritable(path: Path, error: OSError) -> SegbenchError:
    return SegbenchError(
        f"cannot write the sample cache entry {path} ({error.strerror or error}); delete what is at that path, "
        f"or choose a writable cache with --data-cache DIR or $SEGBENCH_DATA_CACHE"
    )


def _canonical(key: dict) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def _split_to(split) -> dict:
    return {"images": split.images, "masks": split.masks, "native": isinstance(split, ImageList)}


def _split_from(stored: dict):
    if stored["native"]:
        return ImageList(stored["images"], stored["masks"])
    return TensorPairs(stored["images"], stored["masks"])


@contextlib.contextmanager
def _locked(path: Path):
    lock_path = path.with_name(path.name + ".lock")
    try:  # an unwritable cache is named here, before anything is decoded
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path.touch()
    except OSError as error:
        raise _unwritable(path, error) from None
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
