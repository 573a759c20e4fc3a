"""Datasets in the core: the contract a dataset factory returns (``samples``), the shared
decoded-sample cache (``cache``), training-time augmentation (``augment``), and the
``segbench data`` tools (``export``, ``stats``, ``show``). None of it knows a dataset by name."""

from .samples import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MODES,
    ImageList,
    SegmentationData,
    TensorPairs,
    normalize,
    pairs_from_arrays,
)

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "MODES", "ImageList", "SegmentationData", "TensorPairs",
    "normalize", "pairs_from_arrays",
]
