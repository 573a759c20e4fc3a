"""The dataset contract: subclass ``DatasetContract`` and provide ``build(cache_dir)``.

    class TestMyData(DatasetContract):
        def build(self, cache_dir):
            return build_my_data(cache_dir, image_size=32, num_train=8)

or set ``name`` (and ``params``, ``hook``) to build the registered component the way the
engine does. The dataset is built once per class into a fresh cache folder; the checks
cover what the engine relies on: uint8 images (N, 3, H, W), integer masks (N, H, W) of
class indices or ``ignore_index``, a background first class, non-empty splits, and the
same tensors from a second build into another cache folder.
"""

from __future__ import annotations

import pytest
import torch

from ..data import MODES, SegmentationData, TensorPairs
from ._base import ComponentContract


class DatasetContract(ComponentContract):
    kind = "dataset"
    background_name = "background"

    def build(self, cache_dir) -> SegmentationData:
        """Build the dataset into ``cache_dir``; by default the registered ``name``."""
        return self.component().build(cache_dir, **self.params)

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls, tmp_path_factory) -> SegmentationData:
        return cls().build(tmp_path_factory.mktemp("dataset-cache"))

    @staticmethod
    def splits(data):
        return {"train": data.train, "val": data.val}

    # --- the contract ---------------------------------------------------------------

    def test_returns_segmentation_data(self, data):
        assert isinstance(data, SegmentationData)
        assert isinstance(data.train, TensorPairs) and isinstance(data.val, TensorPairs)
        assert data.mode in MODES

    def test_classes_are_named_and_background_first(self, data):
        assert isinstance(data.classes, list) and len(data.classes) >= 2
        assert all(isinstance(name, str) and name for name in data.classes)
        assert len(set(data.classes)) == len(data.classes), "class names must be unique"
        assert data.classes[0] == self.background_name
        if data.mode == "binary":
            assert data.num_classes == 2

    def test_ignore_index_is_not_a_class(self, data):
        assert isinstance(data.ignore_index, int)
        assert not 0 <= data.ignore_index < data.num_classes

    def test_splits_are_not_empty(self, data):
        for split, pairs in self.splits(data).items():
            assert len(pairs) > 0, f"{split} is empty"

    def test_images_are_uint8_nchw(self, data):
        for split, pairs in self.splits(data).items():
            assert pairs.images.dtype == torch.uint8, split
            assert pairs.images.ndim == 4 and pairs.images.shape[1] == 3, split
            assert min(pairs.images.shape[2:]) > 0, split

    def test_masks_are_integer_nhw_matching_images(self, data):
        for split, pairs in self.splits(data).items():
            masks = pairs.masks
            assert not masks.dtype.is_floating_point and masks.dtype != torch.bool, f"{split}: {masks.dtype}"
            assert masks.shape == (pairs.images.shape[0], *pairs.images.shape[2:]), split

    def test_mask_values_are_classes_or_ignored(self, data):
        allowed = set(range(data.num_classes)) | {data.ignore_index}
        for split, pairs in self.splits(data).items():
            found = set(torch.unique(pairs.masks).tolist())
            assert found <= allowed, f"{split} has mask values {sorted(found - allowed)}"

    def test_splits_have_foreground(self, data):
        for split, pairs in self.splits(data).items():
            foreground = (pairs.masks != 0) & (pairs.masks != data.ignore_index)
            assert foreground.any(), f"{split} has no foreground pixel"

    def test_batches_are_normalised_floats_and_long_masks(self, data):
        images, masks = data.train.batch(torch.tensor([0, len(data.train) - 1]))
        assert images.dtype == torch.float32 and images.shape[:2] == (2, 3)
        assert masks.dtype == torch.int64 and masks.shape == (2, *images.shape[2:])

    def test_a_second_build_is_identical(self, data, tmp_path_factory):
        again = self.build(tmp_path_factory.mktemp("dataset-cache-again"))
        assert again.classes == data.classes
        assert (again.ignore_index, again.mode) == (data.ignore_index, data.mode)
        for split, pairs in self.splits(data).items():
            other = self.splits(again)[split]
            assert torch.equal(other.images, pairs.images), f"{split} images differ between builds"
            assert torch.equal(other.masks, pairs.masks), f"{split} masks differ between builds"
