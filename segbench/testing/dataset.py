"""The dataset contract: subclass ``DatasetContract`` and provide ``build(cache_dir)``.

    class TestMyData(DatasetContract):
        def build(self, cache_dir):
            return build_my_data(cache_dir, image_size=32, num_train=8)

or set ``name`` (and ``params``, ``hook``) to build the registered component the way the
engine does. The dataset is built once per class into a fresh cache folder; the checks
cover what the engine relies on: uint8 images (3, H, W), integer masks (H, W) of class
indices or ``ignore_index``, a background first class, non-empty splits, and the same
samples from a second build into another cache folder.

A dataset whose splits are map-style (:class:`segbench.MapSamples`) is checked for that
contract too: every sample it is asked for reads as an image and a mask of one size, the
same each time, ``describe`` names it, the object survives pickling (loader workers get a
copy), and both data paths (decoded into memory, streamed) give the same samples.
"""

from __future__ import annotations

import pickle

import pytest
import torch

from ..data import MODES, ImageList, MapSamples, SegmentationData, TensorPairs, loading
from ..data.decode import read_sample
from ..data.samples import mask_dtype_problem, split_mask_dtypes
from ._base import ComponentContract

SPLITS = ("train", "val")


class DatasetContract(ComponentContract):
    kind = "dataset"
    background_name = "background"

    def build(self, cache_dir) -> SegmentationData:
        """Build the dataset into ``cache_dir``; by default the registered ``name``."""
        return self.component().build(cache_dir, **self.params)

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls, tmp_path_factory) -> SegmentationData:
        """The dataset, built once per class. A dataset whose files are not on this machine
        (its factory raises a ``FileNotFoundError`` naming them, as ``voc`` and ``coco`` do
        without their data) skips the contract with that message: nothing can be checked."""
        return cls().built(tmp_path_factory.mktemp("dataset-cache"))

    def built(self, cache_dir) -> SegmentationData:
        """:meth:`build`, or the test skipped when the dataset's files are not here."""
        try:
            return self.build(cache_dir)
        except FileNotFoundError as missing:
            pytest.skip(f"{self.described()}: its files are not here: {missing}")

    def described(self) -> str:
        """How a finding names the dataset under test."""
        return f"dataset {self.name!r}" if self.name else f"dataset of {type(self).__name__}"

    @staticmethod
    def splits(data):
        return {"train": data.train, "val": data.val}

    # --- the contract ---------------------------------------------------------------

    def test_returns_segmentation_data(self, data):
        self.expect(isinstance(data, SegmentationData), lambda: f"the factory returned a {type(data).__name__}, not a SegmentationData")
        for split, samples in self.splits(data).items():
            self.expect(isinstance(samples, (TensorPairs, ImageList, MapSamples)), lambda: f"{split} is a {type(samples).__name__}; a split is a TensorPairs, an ImageList or a MapSamples")
        self.expect(data.mode in MODES, lambda: f"mode {data.mode!r} is not one of {MODES}")

    def test_classes_are_named_and_background_first(self, data):
        self.expect(isinstance(data.classes, list) and len(data.classes) >= 2, lambda: f"classes must be a list of 2 or more names: {data.classes!r}")
        self.expect(all(isinstance(name, str) and name for name in data.classes), lambda: f"class names must be non-empty text: {data.classes!r}")
        self.expect(len(set(data.classes)) == len(data.classes), lambda: f"class names must be unique: {data.classes!r}")
        self.expect(data.classes[0] == self.background_name, lambda: f"the first class is {data.classes[0]!r}, not {self.background_name!r}")
        if data.mode == "binary":
            self.expect(data.num_classes == 2, lambda: f"a binary dataset has 2 classes, not {data.num_classes}")

    def test_ignore_index_is_not_a_class(self, data):
        self.expect(isinstance(data.ignore_index, int), lambda: f"ignore_index must be an int, got {data.ignore_index!r}")
        self.expect(not 0 <= data.ignore_index < data.num_classes, lambda: f"ignore_index {data.ignore_index} is a class index")

    def test_splits_are_not_empty(self, data):
        for split, samples in self.splits(data).items():
            self.expect(len(samples) > 0, lambda: f"{split} is empty")

    def test_images_are_uint8_rgb(self, data):
        for split, samples in self.splits(data).items():
            for index, (image, _) in _checked_samples(samples):
                self.expect(image.dtype == torch.uint8, lambda: f"{split} sample {index}: image dtype {image.dtype}, not uint8")
                self.expect(image.ndim == 3 and image.shape[0] == 3 and min(image.shape[1:]) > 0, lambda: f"{split} sample {index}: image shape {tuple(image.shape)}, not (3, H, W)")

    def test_masks_are_integer_label_maps_matching_images(self, data):
        for split, samples in self.splits(data).items():
            for dtype, index in split_mask_dtypes(samples).items():  # every stored mask; map-style reads check their own
                problem = mask_dtype_problem(dtype)
                self.expect(problem is None, lambda: f"{split} {samples.describe(index)}: {problem}")
            for index, (image, mask) in _checked_samples(samples):
                problem = mask_dtype_problem(mask.dtype)
                self.expect(problem is None, lambda: f"{split} sample {index}: {problem}")
                self.expect(mask.shape == image.shape[1:], lambda: f"{split} sample {index}: mask {tuple(mask.shape)}, image {tuple(image.shape)}")

    def test_mask_values_are_classes_or_ignored(self, data):
        allowed = set(range(data.num_classes)) | {data.ignore_index}
        for split, samples in self.splits(data).items():
            found = set()
            for _, (_, mask) in _checked_samples(samples):
                found |= set(torch.unique(mask).tolist())
            self.expect(found <= allowed, lambda: f"{split} has mask values {sorted(found - allowed)}; valid are classes 0..{data.num_classes - 1} and {data.ignore_index}")

    def test_splits_have_foreground(self, data):
        for split, samples in self.splits(data).items():
            foreground = any(((mask != 0) & (mask != data.ignore_index)).any() for _, (_, mask) in _checked_samples(samples, every=True))
            self.expect(foreground, lambda: f"{split} has no foreground pixel")

    def test_batches_are_normalised_floats_and_long_masks(self, data):
        if isinstance(data.train, MapSamples):
            pytest.skip("map-style samples are batched by segbench's loader, not by the dataset")
        images, masks = data.train.batch(torch.tensor([0, len(data.train) - 1]))
        self.expect(images.dtype == torch.float32 and images.shape[:2] == (2, 3), lambda: f"batch(): images come back {images.dtype} of shape {tuple(images.shape)}; expected float32 (N, 3, H, W) with N = 2")
        self.expect(masks.dtype == torch.int64 and masks.shape == (2, *images.shape[2:]), lambda: f"batch(): masks come back {masks.dtype} of shape {tuple(masks.shape)}; expected int64 (2, {images.shape[2]}, {images.shape[3]})")

    def test_a_second_build_is_identical(self, data, tmp_path_factory):
        again = self.built(tmp_path_factory.mktemp("dataset-cache-again"))
        self.expect(again.classes == data.classes, lambda: f"classes differ between builds: {data.classes} vs {again.classes}")
        self.expect((again.ignore_index, again.mode) == (data.ignore_index, data.mode), lambda: f"ignore_index and mode differ between builds: {(data.ignore_index, data.mode)} vs {(again.ignore_index, again.mode)}")
        for split, samples in self.splits(data).items():
            other = self.splits(again)[split]
            self.expect(len(other) == len(samples), lambda: f"{split}: {len(samples)} samples, then {len(other)}")
            for (index, (image, mask)), (_, (image_again, mask_again)) in zip(_checked_samples(samples), _checked_samples(other)):
                self.expect(torch.equal(image_again, image), lambda: f"{split} sample {index}: the image differs between builds")
                self.expect(torch.equal(mask_again, mask), lambda: f"{split} sample {index}: the mask differs between builds")

    # --- map-style samples --------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def map_style(cls, tmp_path_factory) -> dict:
        """The map-style splits as the dataset's factory makes them (built as a streaming run asks)."""
        with loading.requested("streaming", 0):
            data = cls().built(tmp_path_factory.mktemp("dataset-map-style"))
        found = {split: getattr(samples, "source", samples) for split, samples in cls.splits(data).items()}
        return {split: samples for split, samples in found.items() if isinstance(samples, MapSamples)}

    def test_map_style_samples_read_the_same_each_time_and_are_named(self, map_style):
        for split, samples in _present(map_style).items():
            for index in _indices(samples):
                first, second = read_sample(samples, index), read_sample(samples, index)
                self.expect(torch.equal(first[0], second[0]) and torch.equal(first[1], second[1]), lambda: f"{split} sample {index} reads differently the second time; read(index) must give the same sample")
                name = samples.describe(index)
                self.expect(isinstance(name, str) and name, lambda: f"{split}: describe({index}) returned {name!r}; it names the sample in errors")

    def test_map_style_samples_survive_pickling(self, map_style):
        for split, samples in _present(map_style).items():
            try:
                copy = pickle.loads(pickle.dumps(samples))
            except Exception as error:  # noqa: BLE001 - any failure is the finding
                pytest.fail(f"{split}: {type(samples).__name__} cannot be pickled ({type(error).__name__}: {error}); loader "
                            "workers receive a copy: keep paths and plain data in it, not open files or lambdas")
            self.expect(len(copy) == len(samples), lambda: f"{split}: a pickled copy has {len(copy)} samples, the original {len(samples)}")
            image, mask = read_sample(copy, len(copy) - 1)
            expected = read_sample(samples, len(samples) - 1)
            self.expect(torch.equal(image, expected[0]) and torch.equal(mask, expected[1]), lambda: f"{split}: a pickled copy reads other samples")

    def test_both_data_paths_give_the_same_samples(self, tmp_path_factory):
        built = {}
        for mode in ("memory", "streaming"):
            with loading.requested(mode, 0):
                built[mode] = loading.prepared(self.built(tmp_path_factory.mktemp(f"dataset-{mode}")), loading.LoadingRequest(mode))
        if not _streams(built["streaming"]):
            pytest.skip("the dataset builds its samples as tensors: it is always held in memory")
        for split in SPLITS:
            memory, streamed = getattr(built["memory"], split), getattr(built["streaming"], split)
            self.expect(len(memory) == len(streamed), lambda: f"{split}: {len(memory)} samples in memory, {len(streamed)} streamed")
            for index in _indices(memory):
                held, read = memory.raw(index), streamed.raw(index)
                self.expect(torch.equal(held[0], read[0]) and torch.equal(held[1], read[1]), lambda: f"{split} sample {index} differs between the memory and the streaming path")



def _present(map_style: dict) -> dict:
    if not map_style:
        pytest.skip("the dataset builds its samples as tensors, not map-style")
    return map_style


def _indices(samples, every: bool = False) -> list:
    count = len(samples)
    if every:
        return list(range(count))
    return sorted({0, count // 2, count - 1}) if count else []


def _checked_samples(samples, every: bool = False):
    """``(index, (image, mask))`` of the first, middle and last sample (all with ``every``),
    read as the engine reads them."""
    for index in _indices(samples, every):
        yield index, read_sample(samples, index) if isinstance(samples, MapSamples) else samples.raw(index)


def _streams(data) -> bool:
    from ..data.streaming import StreamedSplit

    return isinstance(data.train, StreamedSplit)
