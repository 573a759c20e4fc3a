"""The decoded-sample cache: a dataset is decoded and resized once, then read back by every
run and variant that uses it, in this process and in later ones.

A dataset factory calls :func:`cached_dataset` with a *key*: a JSON-able dict naming
everything its samples depend on (its parameters, a fingerprint of its input files, a
version of its decoding code). The key's hash names one entry under ``CACHE_DIR/samples/``;
a changed parameter or input gives another entry, so stale entries are never read. A
per-entry lock makes a second process that wants the same entry wait for the first instead
of decoding it again, so concurrent runs are safe.

Which data path a dataset takes (:mod:`segbench.data.loading`) is decided here, after its
factory's ``build()``: samples built as tensors, and map-style samples on the memory path,
are written to an entry; map-style samples on the streaming path are scanned instead
(:mod:`segbench.data.streaming`) and read from their source while training.

An entry is a folder: per split, the raw bytes of every image and of every mask, appended
sample by sample as the decoding workers deliver them (never the whole dataset in memory),
and ``index.json``, which describes the samples and cuts each file into shards of about
``SHARD_BYTES``, each with its own CRC-32. An entry is read back memory-mapped, without a
copy, and each shard is checked when it is read: an entry that is damaged (flipped bytes,
truncated, a file missing) is rebuilt from its source with a warning on stderr. Entries are
built in a scratch folder and renamed into place.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs
import torch

from ..errors import SegbenchError
from . import loading
from .samples import ImageList, MapSamples, SegmentationData, TensorPairs

CACHE_FORMAT = 2  # part of every entry's name: bumping it orphans all entries (2: sharded folders)
ENTRY_FORMAT = 3  # what index.json describes
CHECKSUM = "crc32"  # stdlib, ~2 GB/s: cheap next to a decode, and made for accidental damage
SHARD_BYTES = 64 * 2**20  # of image bytes per shard: a shard is checked as one piece
READ_CHUNK = 8 * 2**20
SUBDIR = "samples"
INDEX = "index.json"
SPLITS = ("train", "val")


@dataclass(frozen=True)
class CacheEvent:
    """One dataset request: where its entry (or scan) lives, whether it was there already,
    and which data path the dataset took."""

    name: str
    path: Path
    hit: bool
    seconds: float
    nbytes: int
    loading: str = "memory"
    workers: int = 0
    samples: int = 0


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
    """The dataset for ``key``: read from the cache, or made by ``build()`` and stored (or,
    for map-style samples on the streaming path, scanned and streamed).

    :param cache_dir: the data cache folder the factory was given.
    :param key: JSON-able dict of everything the samples depend on; include a ``dataset``
        name and a version of the decoding code.
    :param build: a no-argument callable returning the :class:`SegmentationData`, its
        splits as tensors (:class:`TensorPairs`, :class:`ImageList`) or map-style
        (:class:`MapSamples`).
    """
    request = loading.current()
    path = entry_path(cache_dir, key)
    started = time.perf_counter()
    if request.mode != "streaming":
        data, _ = read_entry(path, key)
        if data is not None:
            return _noted(key, path, True, started, data)
    with _locked(path):
        damage = None
        if request.mode != "streaming":  # another process may have written it while we waited
            data, damage = read_entry(path, key)
            if data is not None:
                return _noted(key, path, True, started, data)
        built = build()
        if loading.choose(request, built) == "streaming":
            from .streaming import streamed

            data, scan_path, hit = streamed(built, cache_dir, key, request.workers)
            return _noted(key, scan_path, hit, started, data, "streaming", request.workers)
        if damage:
            _warn_rebuilding(path, damage)
        workers = request.workers if loading.has_map_samples(built) else 0  # samples built as tensors need no decoding
        write_entry(path, key, built, workers)
        data, damage = read_entry(path, key)
        if data is None:
            raise SegbenchError(f"the sample cache entry {path} just written {damage}; check the disk, or choose another "
                                f"cache with --data-cache DIR or ${DATA_CACHE_ENV}")
    return _noted(key, path, False, started, data, workers=workers)


def entry_path(cache_dir, key: dict) -> Path:
    return Path(cache_dir) / SUBDIR / f"{key.get('dataset', 'dataset')}-{key_digest(key)}"


def key_digest(key: dict) -> str:
    text = json.dumps({"format": CACHE_FORMAT, **key}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


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


def _noted(key, path, hit, started, data, path_kind="memory", workers=0) -> SegmentationData:
    nbytes = data.train.nbytes + data.val.nbytes
    samples = len(data.train) + len(data.val)
    _events.append(CacheEvent(str(key.get("dataset", "dataset")), path, hit, time.perf_counter() - started, nbytes,
                              path_kind, workers, samples))
    return data


# --- writing an entry ------------------------------------------------------------------------


def write_entry(path: Path, key: dict, data: SegmentationData, workers: int = 0) -> None:
    """Store ``data``'s samples under ``path``, decoding map-style splits with ``workers``
    processes and appending each sample as it arrives."""
    scratch = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
        index = {"format": ENTRY_FORMAT, "key": canonical(key), "classes": list(data.classes),
                 "ignore_index": data.ignore_index, "mode": data.mode, "splits": {}}
        for role in SPLITS:
            split = getattr(data, role)
            with _SplitWriter(scratch, role) as writer:
                for image, mask in samples_of(split, workers, f"{key.get('dataset', 'dataset')} {role}"):
                    writer.add(image, mask)
            index["splits"][role] = writer.description(native=_is_native(split))
        index["checksum"] = _index_checksum(index)
        (scratch / INDEX).write_text(json.dumps(index))
        os.chmod(scratch, 0o755)  # mkdtemp makes it private; a cache is ordinary files
        _replace_folder(scratch, path)
    except OSError as error:
        if isinstance(error, SegbenchError):  # a reader's missing file, not the cache's
            raise
        raise _unwritable(path, error) from None
    finally:
        if scratch is not None and scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def samples_of(split, workers: int, description: str):
    """Every sample of ``split`` in order as ``(image (3, H, W) uint8, mask (H, W))``;
    map-style ones decoded by ``workers`` processes."""
    if isinstance(split, MapSamples):
        from .decode import decoded, in_workers

        return track(in_workers(split, decoded, workers), len(split), description)
    return (split.raw(index) for index in range(len(split)))


def held_in_memory(split, workers: int, description: str):
    """A split decoded into memory as it is (no cache): map-style samples by ``workers`` processes."""
    if not isinstance(split, MapSamples):
        return split
    pairs = list(samples_of(split, workers, description))
    images, masks = [image for image, _ in pairs], [mask for _, mask in pairs]
    if _is_native(split) or len({tuple(image.shape) for image in images}) > 1:
        return ImageList(images, masks)
    return TensorPairs(torch.stack(images), torch.stack(masks))


def _is_native(split) -> bool:
    return isinstance(split, ImageList) or bool(getattr(split, "native", False))


class _SplitWriter:
    """Appends one split's images and masks to two files, cutting them into checksummed shards."""

    def __init__(self, folder: Path, role: str):
        self.role = role
        self.images = open(folder / f"{role}.images", "wb")
        self.masks = open(folder / f"{role}.masks", "wb")
        self.shapes: list = []
        self.mask_dtype = None
        self.shards: list = []
        self._shard = _Shard(0, 0, 0)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.images.close()
        self.masks.close()

    def add(self, image: torch.Tensor, mask: torch.Tensor) -> None:
        mask_array = mask.cpu().numpy()
        if self.mask_dtype is None:
            self.mask_dtype = mask_array.dtype
        elif mask_array.dtype != self.mask_dtype:
            raise SegbenchError(f"{self.role} sample {len(self.shapes)}: its mask is {mask_array.dtype}, "
                                f"the earlier ones {self.mask_dtype}; every mask of a split must share one dtype")
        image_bytes = memoryview(np.ascontiguousarray(image.cpu().numpy())).cast("B")
        mask_bytes = memoryview(np.ascontiguousarray(mask_array)).cast("B")
        self.images.write(image_bytes)
        self.masks.write(mask_bytes)
        self._shard.add(image_bytes, mask_bytes)
        self.shapes.append(list(image.shape[1:]))
        if self._shard.image_bytes >= SHARD_BYTES:
            self._close_shard()

    def _close_shard(self) -> None:
        shard = self._shard
        self.shards.append(shard.description(len(self.shapes)))
        self._shard = _Shard(len(self.shapes), shard.image_offset + shard.image_bytes, shard.mask_offset + shard.mask_bytes)

    def description(self, native: bool) -> dict:
        if not self.shapes:
            raise SegbenchError(f"the {self.role} split has no samples")
        if self._shard.count:
            self._close_shard()
        one_size = all(shape == self.shapes[0] for shape in self.shapes)
        return {"count": len(self.shapes), "native": native or not one_size, "mask_dtype": self.mask_dtype.name,
                "shapes": [self.shapes[0]] if one_size else self.shapes, "shards": self.shards}


@dataclass
class _Shard:
    """The samples from ``start`` on, their byte ranges and running CRCs."""

    start: int
    image_offset: int
    mask_offset: int
    image_bytes: int = 0
    mask_bytes: int = 0
    count: int = 0
    image_crc: int = 0
    mask_crc: int = 0

    def add(self, image_bytes: memoryview, mask_bytes: memoryview) -> None:
        self.image_crc = zlib.crc32(image_bytes, self.image_crc)
        self.mask_crc = zlib.crc32(mask_bytes, self.mask_crc)
        self.image_bytes += image_bytes.nbytes
        self.mask_bytes += mask_bytes.nbytes
        self.count += 1

    def description(self, end: int) -> dict:
        return {"samples": [self.start, end],
                "images": [self.image_offset, self.image_bytes, f"{CHECKSUM}:{self.image_crc:08x}"],
                "masks": [self.mask_offset, self.mask_bytes, f"{CHECKSUM}:{self.mask_crc:08x}"]}


def _replace_folder(scratch: Path, path: Path) -> None:
    """Move the finished ``scratch`` folder to ``path``, replacing a damaged entry there."""
    if path.is_dir():
        aside = Path(tempfile.mkdtemp(prefix=f".{path.name}-old-", dir=path.parent))
        os.replace(path, aside / "entry")
        os.rename(scratch, path)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        if path.exists():
            path.unlink()  # a stray file where the entry belongs
        os.rename(scratch, path)


# --- reading an entry ------------------------------------------------------------------------


def read_entry(path: Path, key: dict):
    """``(data, None)`` for a sound entry; ``(None, None)`` when there is none;
    ``(None, why)`` when there is one that must not be trusted."""
    if not path.exists():
        return None, None
    if not path.is_dir():
        return None, "is not a sample-cache folder"
    try:
        index = json.loads((path / INDEX).read_text())
    except (OSError, ValueError) as error:
        return None, f"has no readable {INDEX} ({type(error).__name__})"
    damage = _index_damage(index, key)
    if damage:
        return None, damage
    try:
        splits = {role: _open_split(path, role, index["splits"][role]) for role in SPLITS}
        return SegmentationData(index["classes"], splits["train"], splits["val"], index["ignore_index"], index["mode"]), None
    except _Damaged as damaged:
        return None, str(damaged)
    except (OSError, ValueError, KeyError, TypeError) as error:  # a part missing or of the wrong kind
        return None, f"is damaged ({type(error).__name__}: {_first_line(error)})"


class _Damaged(Exception):
    """Why an entry must not be used, in a few words."""


def _index_damage(index, key: dict) -> str | None:
    if not isinstance(index, dict) or "format" not in index:
        return "is not a sample-cache entry"
    if index["format"] != ENTRY_FORMAT:
        return f"has entry format {index['format']!r}, not {ENTRY_FORMAT}"
    if index.get("checksum") != _index_checksum(index):
        return f"fails its checksum ({INDEX} is damaged)"
    if index["key"] != canonical(key):
        return "holds another dataset's key"
    return None


def _index_checksum(index: dict) -> str:
    described = json.dumps({k: v for k, v in index.items() if k != "checksum"}, sort_keys=True)
    return f"{CHECKSUM}:{zlib.crc32(described.encode()):08x}"


def _open_split(path: Path, role: str, split: dict):
    """The split's samples, memory-mapped from the entry, every shard's CRC checked."""
    shapes = split["shapes"] * split["count"] if len(split["shapes"]) == 1 else split["shapes"]
    mask_dtype = np.dtype(split["mask_dtype"])
    pixels = sum(h * w for h, w in shapes)
    for part, size in (("images", 3 * pixels), ("masks", pixels * mask_dtype.itemsize)):
        _check_shards(path / f"{role}.{part}", size, role, part, split["shards"])
    images = torch.from_numpy(_mapped(path / f"{role}.images", np.uint8, 3 * pixels))
    masks = torch.from_numpy(_mapped(path / f"{role}.masks", mask_dtype, pixels))
    if not split["native"]:
        (height, width), count = shapes[0], split["count"]
        return TensorPairs(images.view(count, 3, height, width), masks.view(count, height, width))
    image_list, mask_list, offset = [], [], 0
    for height, width in shapes:
        image_list.append(images[3 * offset:3 * (offset + height * width)].view(3, height, width))
        mask_list.append(masks[offset:offset + height * width].view(height, width))
        offset += height * width
    return ImageList(image_list, mask_list)


def _check_shards(path: Path, expected: int, role: str, part: str, shards: list) -> None:
    """Each shard's bytes against its CRC, read through the file (the page cache), not the
    mapping: checking a large entry does not make it this process's resident memory."""
    size = path.stat().st_size
    if size != expected:
        raise _Damaged(f"is truncated or damaged ({path.name} holds {size} bytes, its index says {expected})")
    with open(path, "rb", buffering=0) as handle:
        for shard in shards:
            offset, length, stored = shard[part]
            handle.seek(offset)
            crc, left = 0, length
            while left:
                chunk = handle.read(min(left, READ_CHUNK))
                if not chunk:
                    break
                crc, left = zlib.crc32(chunk, crc), left - len(chunk)
            if f"{CHECKSUM}:{crc:08x}" != stored:
                first, end = shard["samples"]
                raise _Damaged(f"fails its checksum ({role} {part} of samples {first}..{end - 1} are damaged)")


def _mapped(path: Path, dtype, count: int) -> np.ndarray:
    # copy-on-write: shared with every process that maps it, and torch may call it writable
    return np.memmap(path, dtype=dtype, mode="c", shape=(count,))


def canonical(key: dict) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def _warn_rebuilding(path: Path, damage: str) -> None:
    print(f"segbench: warning: sample cache entry {path} {damage}; rebuilding it from its source", file=sys.stderr)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:120] if text else "no message"


def _unwritable(path: Path, error: OSError) -> SegbenchError:
    return SegbenchError(
        f"cannot write the sample cache entry {path} ({error.strerror or error}); delete what is at that path, "
        f"or choose a writable cache with --data-cache DIR or ${DATA_CACHE_ENV}"
    )


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
