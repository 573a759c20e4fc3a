"""``segbench data stats``: what a dataset holds, per split and per class.

The dict form (:func:`dataset_stats`) is stable for scripts (``STATS_SCHEMA``); the text
form (segbench.format.format_stats) is for people. Counts are taken on the samples as the suite
builds them, so at its ``image_size`` (native sizes when unset); a streamed dataset's come from
its scan, without reading a sample again.
"""

from __future__ import annotations

import torch

from ..errors import SegbenchError
from .samples import SegmentationData
from .streaming import StreamedSplit

STATS_SCHEMA = 1
SPLITS = ("train", "val")


def check_split(split) -> tuple:
    """The splits to show: both, or the one named."""
    if split is None:
        return SPLITS
    if split not in SPLITS:
        raise SegbenchError(f"--split {split!r}: a dataset has the splits {', '.join(SPLITS)}")
    return (split,)


def dataset_stats(data: SegmentationData, name: str, params: dict, split=None) -> dict:
    """Images per split; per class its pixels and the images it appears in; ignored pixels."""
    return {
        "schema": STATS_SCHEMA,
        "dataset": {"name": name, "params": params},
        "mode": data.mode,
        "classes": list(data.classes),
        "ignore_index": data.ignore_index,
        "splits": {role: split_stats(getattr(data, role), data) for role in check_split(split)},
    }


def split_stats(split, data: SegmentationData) -> dict:
    counts = per_image_counts(split)  # (N, 256)
    total = int(counts.sum())
    classes = []
    for index, name in enumerate(data.classes):
        pixels = int(counts[:, index].sum())
        classes.append({
            "index": index,
            "name": name,
            "pixels": pixels,
            "fraction": pixels / total if total else 0.0,
            "images": int((counts[:, index] > 0).sum()),
        })
    ignored = int(counts[:, data.ignore_index].sum())
    return {
        "images": len(split),
        "sizes": [list(size) for size in split.sizes()],
        "pixels": total,
        "ignored_pixels": ignored,
        "ignored_fraction": ignored / total if total else 0.0,
        "classes": classes,
    }


def per_image_counts(split) -> torch.Tensor:
    """(N, 256) pixel counts of every mask value, image by image (a streamed split's from its scan)."""
    if isinstance(split, StreamedSplit):
        return split.index.value_counts()
    rows = [torch.bincount(split.raw(i)[1].flatten().long(), minlength=256) for i in range(len(split))]
    return torch.stack(rows) if rows else torch.zeros((0, 256), dtype=torch.long)
