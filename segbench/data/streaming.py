"""The streaming path: map-style samples read from their source while training.

Nothing decoded is stored. Instead each split is *scanned* once, by ``workers`` processes:
every sample is read, which proves the whole dataset readable before anything trains, and
its size and the pixel count of each mask value are kept. The scan is small (a few bytes per
sample and per label value), cached beside the sample cache under the dataset's key with a
CRC-32, and gives what the engine needs without reading samples again: the sizes that group
validation images, the labels that the preflight checks, the counts of ``segbench data stats``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import SegbenchError
from .decode import MAX_COUNTED_VALUE, in_workers, naming_split, read_sample, scanned
from .samples import MapSamples, SegmentationData, _Samples, normalize

SCAN_FORMAT = 1
SCANS = "scans"


@dataclass(frozen=True)
class ScanIndex:
    """Per sample: its (H, W) and its mask's pixel count of every value seen in the split."""

    sizes: np.ndarray  # (N, 2) int64
    values: np.ndarray  # (K,) int64: the mask values that occur anywhere in the split
    counts: np.ndarray  # (N, K) int64

    @classmethod
    def of(cls, results, count: int) -> "ScanIndex":
        """From ``count`` :func:`segbench.data.decode.scanned` results, in sample order, kept
        as they come: a column per mask value seen so far, so a large dataset's scan takes
        a few bytes per sample and label, never 256 counts per sample."""
        sizes = np.zeros((count, 2), dtype=np.int64)
        counts, columns = np.zeros((count, 0), dtype=np.int64), {}
        for index, (size, sample_counts) in enumerate(results):
            sizes[index] = size
            present = np.flatnonzero(sample_counts)
            new = [int(value) for value in present if int(value) not in columns]
            if new:
                columns.update({value: len(columns) + offset for offset, value in enumerate(new)})
                counts = np.concatenate([counts, np.zeros((count, len(new)), dtype=np.int64)], axis=1)
            counts[index, [columns[int(value)] for value in present]] = sample_counts[present]
        values = np.array(sorted(columns), dtype=np.int64)
        return cls(sizes, values, counts[:, [columns[int(value)] for value in values]])

    def value_counts(self) -> torch.Tensor:
        """(N, 256) pixel counts of every mask value, image by image."""
        full = torch.zeros((len(self.sizes), MAX_COUNTED_VALUE), dtype=torch.long)
        full[:, torch.from_numpy(self.values)] = torch.from_numpy(self.counts)
        return full


class StreamedSplit(_Samples):
    """A split of map-style samples with its scan: read one sample at a time, never held."""

    def __init__(self, source: MapSamples, index: ScanIndex):
        if len(source) != len(index.sizes):
            raise SegbenchError(f"{type(source).__name__} holds {len(source)} samples but its scan {len(index.sizes)}")
        self.source, self.index = source, index

    def __len__(self):
        return len(self.source)

    def raw(self, index: int):
        return read_sample(self.source, int(index))

    def describe(self, index: int) -> str:
        return self.source.describe(index)

    def sizes(self) -> list:
        return sorted({(int(h), int(w)) for h, w in self.index.sizes})

    def sample_sizes(self) -> list:
        return [(int(h), int(w)) for h, w in self.index.sizes]

    def distinct_labels(self, images_at_once: int = 64) -> list:
        return [int(value) for value in self.index.values]

    @property
    def nbytes(self) -> int:
        """What the decoded samples would take: 4 bytes per pixel (RGB and a uint8 label)."""
        return int((self.index.sizes.prod(axis=1) * 4).sum())

    def batch(self, indices: torch.Tensor, device="cpu"):
        """A normalised batch of ``indices`` (of one size), read in this process."""
        pairs = [self.raw(int(i)) for i in indices]
        sizes = {tuple(image.shape[1:]) for image, _ in pairs}
        if len(sizes) > 1:
            raise SegbenchError(f"cannot batch images of different sizes {sorted(sizes)[:3]}")
        images = torch.stack([image for image, _ in pairs]).to(device, non_blocking=True)
        masks = torch.stack([mask for _, mask in pairs]).to(device, non_blocking=True).long()
        return normalize(images), masks


def streamed(data: SegmentationData, cache_dir, key: dict | None, workers: int):
    """``(data with StreamedSplit splits, scan path or None, whether the scan was cached)``."""
    path = scan_path(cache_dir, key) if key is not None else None
    indices = _read_scan(path, key) if path is not None else None
    hit = indices is not None
    if not hit:
        indices = {role: scan(getattr(data, role), workers, f"{_name(key)} {role}") for role in ("train", "val")}
        if path is not None:
            _write_scan(path, key, indices)
    splits = {role: StreamedSplit(_map_style(getattr(data, role), role), indices[role]) for role in ("train", "val")}
    return SegmentationData(data.classes, splits["train"], splits["val"], data.ignore_index, data.mode), path, hit


def scan(samples: MapSamples, workers: int, description: str = "scan") -> ScanIndex:
    """Read every sample with ``workers`` processes; a failed read names the sample."""
    from .cache import track

    if len(samples) == 0:
        raise SegbenchError(f"{description}: no samples")
    with naming_split(description):
        return ScanIndex.of(track(in_workers(samples, scanned, workers), len(samples), f"{description} (scan)"), len(samples))


def scan_path(cache_dir, key: dict) -> Path:
    from .cache import key_digest

    return Path(cache_dir) / SCANS / f"{_name(key)}-{key_digest(key)}.npz"


def _map_style(split, role):
    if not isinstance(split, MapSamples):
        raise SegbenchError(f"the {role} split is {type(split).__name__}; streaming needs both splits map-style (MapSamples)")
    return split


def _name(key) -> str:
    return str((key or {}).get("dataset", "dataset"))


def _arrays(indices: dict) -> dict:
    return {f"{role}.{part}": getattr(index, part) for role, index in indices.items() for part in ("sizes", "values", "counts")}


def _checksum(key: dict, arrays: dict) -> str:
    from .cache import CHECKSUM, canonical

    crc = zlib.crc32(json.dumps({"format": SCAN_FORMAT, "key": canonical(key)}).encode())
    for name in sorted(arrays):
        crc = zlib.crc32(np.ascontiguousarray(arrays[name]).tobytes(), zlib.crc32(name.encode(), crc))
    return f"{CHECKSUM}:{crc:08x}"


def _write_scan(path: Path, key: dict, indices: dict) -> None:
    from .cache import _unwritable

    arrays = _arrays(indices)
    buffer = io.BytesIO()
    np.savez(buffer, checksum=np.array(_checksum(key, arrays)), **arrays)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        with os.fdopen(handle, "wb") as out:
            out.write(buffer.getvalue())
        os.chmod(scratch, 0o644)
        os.replace(scratch, path)
    except OSError as error:
        raise _unwritable(path, error) from None


def _read_scan(path: Path, key: dict):
    """The cached scan's indices, or None when there is none or it fails its checksum."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files if name != "checksum"}
            checksum = str(stored["checksum"])
        if checksum != _checksum(key, arrays):
            raise ValueError("checksum")
        return {role: ScanIndex(*(arrays[f"{role}.{part}"] for part in ("sizes", "values", "counts"))) for role in ("train", "val")}
    except Exception:  # noqa: BLE001 - an unreadable scan (a bad zip, a missing array) is made again, never trusted
        from .cache import _warn_rebuilding

        _warn_rebuilding(path, "is damaged")
        return None
