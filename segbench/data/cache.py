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

An entry is a folder: per split, the raw bytes of every image and of every mask, and
``index.json``, which describes the samples and the shards the files are cut into, each of
``SHARD_SAMPLES`` samples with its own CRC-32. Map-style samples are decoded by worker
processes, each writing whole shards of its own one sample at a time (never the dataset in
memory); the shards' files are then joined, so that an entry is read back memory-mapped as
one tensor, without a copy, and each shard is checked when it is read. An entry that is
damaged (flipped bytes, truncated, a file missing) is rebuilt from its source with a
warning on stderr. Entries are built in a scratch folder and renamed into place.
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
SHARD_SAMPLES = 32  # samples per shard: a worker's unit of decoding and writing, checked as one piece
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
        name and a version of the decoding code. Run by segbench, the key also holds the
        plugin's release (an installed distribution's version) or, for a local file or an
        editable install, a fingerprint of its source (see :func:`plugin_origin`).
    :param build: a no-argument callable returning the :class:`SegmentationData`, its
        splits as tensors (:class:`TensorPairs`, :class:`ImageList`) or map-style
        (:class:`MapSamples`).
    """
    request = loading.current()
    key = _with_origin(key)
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


# The key under which a dataset's entry records the plugin that built it (see plugin_origin).
ORIGIN_KEY = "segbench_plugin"
_origin: contextvars.ContextVar[dict | None] = contextvars.ContextVar("segbench_dataset_origin", default=None)


@contextlib.contextmanager
def plugin_origin(origin: dict | None):
    """Within this block, :func:`cached_dataset` folds ``origin`` (what the samples depend on
    of the plugin that makes them: an installed release's version, a local or editable
    plugin's source fingerprint) into every key, so that new code never reads old samples.
    The engine sets it around a dataset factory's call; a factory called directly has none."""
    token = _origin.set(origin)
    try:
        yield
    finally:
        _origin.reset(token)


def _with_origin(key: dict) -> dict:
    origin = _origin.get()
    return {**key, ORIGIN_KEY: origin} if origin else key


def source_fingerprint(paths) -> str:
    """A hash of the Python source at ``paths`` (files, or folders whose ``.py`` files are
    read, recursively): each file's name and bytes. Changes when any of that code does."""
    digest = hashlib.sha256()
    for path in sorted({Path(path) for path in paths if path}):
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            try:
                content = file.read_bytes()
            except OSError:
                content = b"missing"  # the import would have failed: nothing to rebuild from
            name = file.relative_to(path) if path.is_dir() else file.name
            digest.update(f"{name}\0{len(content)}\0".encode() + content)
    return digest.hexdigest()[:20]


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
        digest.update(f"{os.path.realpath(path)}\0{state}\n".encode())  # as Path.resolve(), without a Path per file
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
    """Store ``data``'s samples under ``path``: map-style splits decoded by ``workers``
    processes, each writing whole shards of its own, one sample at a time."""
    scratch = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
        index = {"format": ENTRY_FORMAT, "key": canonical(key), "classes": list(data.classes),
                 "ignore_index": data.ignore_index, "mode": data.mode, "splits": {}}
        for role in SPLITS:
            index["splits"][role] = _write_split(getattr(data, role), scratch, role, workers, f"{key.get('dataset', 'dataset')} {role}")
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


def _write_split(split, folder: Path, role: str, workers: int, description: str) -> dict:
    """Write ``split`` shard by shard into one file per part (images, masks), so that the
    entry maps as one tensor; each shard keeps its byte ranges and CRCs. When every sample
    has one known size (``MapSamples.size``, or tensors of one size), each shard is written
    in place; otherwise to files of its own, joined afterwards."""
    if not len(split):
        raise SegbenchError(f"{description}: no samples")
    starts = list(range(0, len(split), SHARD_SAMPLES))
    bounds = [(start, min(start + SHARD_SAMPLES, len(split))) for start in starts]
    from .decode import in_workers, naming_split

    with naming_split(description):
        writer = ShardWriter(folder, role, bounds, _uniform_layout(split, folder, role, description))
        if isinstance(split, MapSamples):
            shards = list(track(in_workers(split, writer, workers, indices=range(len(bounds))), len(bounds), f"{description} (shards)"))
        else:
            shards = [writer(split, number) for number in range(len(bounds))]
    dtypes = {shard.pop("mask_dtype") for shard in shards}
    if len(dtypes) > 1:
        raise SegbenchError(f"{description}: its masks come in several dtypes ({', '.join(sorted(dtypes))}); they must share one")
    shapes = [shape for shard in shards for shape in shard.pop("shapes")]
    if writer.layout is None:
        for part in ("images", "masks"):
            _join(folder / f"{role}.{part}", [writer.shard_file(number, part) for number in range(len(bounds))], shards)
    one_size = all(shape == shapes[0] for shape in shapes)
    return {"count": len(shapes), "native": _is_native(split) or not one_size, "mask_dtype": dtypes.pop(),
            "shapes": [shapes[0]] if one_size else shapes, "shards": shards}


@dataclass(frozen=True)
class UniformLayout:
    """Every sample of a split has ``shape`` (H, W) and a mask of ``mask_dtype``: sample ``i``'s
    bytes sit at ``i`` times their size in each part's file, written in place."""

    shape: tuple
    mask_dtype: str

    def sample_bytes(self, part: str) -> int:
        pixels = self.shape[0] * self.shape[1]
        return 3 * pixels if part == "images" else pixels * np.dtype(self.mask_dtype).itemsize


def _uniform_layout(split, folder: Path, role: str, description: str) -> UniformLayout | None:
    """The split's uniform layout, its files made at their final size; None when samples may differ."""
    if isinstance(split, MapSamples):
        declared = getattr(split, "size", None)
        if declared is None:
            return None
        _, mask = _read(split, 0, None)
    elif isinstance(split, TensorPairs):
        declared, mask = tuple(split.images.shape[2:]), split.masks[0]
    else:
        return None
    layout = UniformLayout(tuple(declared), mask.numpy().dtype.name)
    for part in ("images", "masks"):
        with open(folder / f"{role}.{part}", "wb") as out:
            out.truncate(layout.sample_bytes(part) * len(split))
    return layout


class ShardWriter:
    """Writes the samples of shard ``number`` of a split with their CRCs: in place in the
    split's files (a uniform ``layout``), else to files of its own. A ``work`` for
    :func:`segbench.data.decode.in_workers` (picklable: loader workers call it)."""

    def __init__(self, folder: Path, role: str, bounds: list, layout: UniformLayout | None = None):
        self.folder, self.role, self.bounds, self.layout = Path(folder), role, bounds, layout

    def shard_file(self, number: int, part: str) -> Path:
        return self.folder / f"{self.role}-{number:06d}.{part}"

    def __call__(self, split, number: int, watch=None) -> dict:
        start, end = self.bounds[number]
        shapes, dtypes = [], set()
        outputs = {part: self._output(number, part) for part in ("images", "masks")}
        crc, size = dict.fromkeys(outputs, 0), dict.fromkeys(outputs, 0)
        try:
            for index in range(start, end):
                image, mask = _read(split, index, watch)
                self._check_uniform(split, index, image, mask)
                for part, array in (("images", image), ("masks", mask)):
                    raw = memoryview(np.ascontiguousarray(array.numpy())).cast("B")
                    outputs[part].write(raw)
                    crc[part], size[part] = zlib.crc32(raw, crc[part]), size[part] + raw.nbytes
                shapes.append(list(image.shape[1:]))
                dtypes.add(mask.numpy().dtype.name)
        finally:
            for output in outputs.values():
                output.close()
        if len(dtypes) > 1:
            raise SegbenchError(f"the {self.role} masks of samples {start}..{end - 1} come in several dtypes ({', '.join(sorted(dtypes))})")
        offsets = {part: start * self.layout.sample_bytes(part) if self.layout else None for part in outputs}
        return {"samples": [start, end], "shapes": shapes, "mask_dtype": dtypes.pop(),
                **{part: [offsets[part], size[part], f"{CHECKSUM}:{crc[part]:08x}"] for part in outputs}}

    def _output(self, number: int, part: str):
        if self.layout is None:
            return open(self.shard_file(number, part), "wb")
        output = open(self.folder / f"{self.role}.{part}", "r+b")
        output.seek(self.bounds[number][0] * self.layout.sample_bytes(part))
        return output

    def _check_uniform(self, split, index, image, mask):
        if self.layout is not None and (tuple(image.shape[1:]) != self.layout.shape or mask.numpy().dtype.name != self.layout.mask_dtype):
            where = split.describe(index) if isinstance(split, MapSamples) else f"sample {index}"
            raise SegbenchError(f"{self.role} sample {index} ({where}) is {tuple(image.shape[1:])} with a {mask.numpy().dtype.name} mask; "
                                f"its dataset declares size {self.layout.shape} (MapSamples.size) and the first mask is "
                                f"{self.layout.mask_dtype}")


def _read(split, index: int, watch):
    """Sample ``index`` as (3, H, W) uint8 and (H, W) tensors, read as the split holds it."""
    if not isinstance(split, MapSamples):
        image, mask = split.raw(index)
        return image.cpu(), mask.cpu()
    from .decode import read_sample

    if watch is None:
        return read_sample(split, index)
    with watch.reading_sample(index):
        return read_sample(split, index)


def _join(target: Path, parts: list, shards: list) -> None:
    """Concatenate the shards' files (of one part) into ``target``, and give each shard the
    offset of its bytes there: ``[offset, length, crc]``."""
    part, offset = target.suffix[1:], 0
    with open(target, "wb") as out:
        for path, shard in zip(parts, shards):
            with open(path, "rb") as source:
                _copy_file(source, out)
            path.unlink()
            shard[part][0] = offset
            offset += shard[part][1]


def _copy_file(source, out) -> None:
    """Append ``source`` to ``out``, in the kernel where it can (no copy through this process)."""
    out.flush()
    try:
        left = os.fstat(source.fileno()).st_size
        while left:
            copied = os.copy_file_range(source.fileno(), out.fileno(), left)
            if not copied:
                break
            left -= copied
        if not left:
            return
    except (AttributeError, OSError):  # not Linux, or not across these file systems
        pass
    shutil.copyfileobj(source, out, READ_CHUNK)


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
    from .decode import naming_split

    with naming_split(description):
        pairs = list(samples_of(split, workers, description))
    images, masks = [image for image, _ in pairs], [mask for _, mask in pairs]
    if _is_native(split) or len({tuple(image.shape) for image in images}) > 1:
        return ImageList(images, masks)
    return TensorPairs(torch.stack(images), torch.stack(masks))


def _is_native(split) -> bool:
    return isinstance(split, ImageList) or bool(getattr(split, "native", False))


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
