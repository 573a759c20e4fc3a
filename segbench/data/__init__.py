"""Datasets in the core: the contract a dataset factory returns (``samples``), the two data
paths (``loading``: the decoded-sample ``cache`` in memory, or ``streaming``), reading in
worker processes (``decode``), training-time augmentation (``augment`` for whole batches,
``transforms`` per sample), and the ``segbench data`` tools (``export``, ``stats``,
``show``). None of it knows a dataset by name."""

from .samples import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MODES,
    ImageList,
    MapSamples,
    SegmentationData,
    TensorPairs,
    normalize,
    pairs_from_arrays,
)

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "MODES", "ImageList", "MapSamples", "SegmentationData", "TensorPairs",
    "normalize", "pairs_from_arrays",
]
