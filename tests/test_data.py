"""The split containers: one-size TensorPairs and native-size ImageList."""

import numpy as np
import pytest
import torch

from segbench.data import IMAGENET_MEAN, IMAGENET_STD, ImageList, TensorPairs, pairs_from_arrays
from segbench.errors import SegbenchError


def arrays(*sizes):
    rng = np.random.default_rng(0)
    return [(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 3, (h, w), dtype=np.uint8)) for h, w in sizes]


def test_one_size_stacks_into_tensor_pairs_and_keeps_every_pixel():
    pairs = arrays((4, 5), (4, 5))
    split = pairs_from_arrays(pairs)
    assert isinstance(split, TensorPairs) and split.sizes() == [(4, 5)]
    image, mask = split.raw(1)
    assert np.array_equal(image.permute(1, 2, 0).numpy(), pairs[1][0]) and np.array_equal(mask.numpy(), pairs[1][1])
    assert split.nbytes == 2 * 4 * 5 * 3 + 2 * 4 * 5


def test_several_sizes_stay_native_and_refuse_a_mixed_batch():
    pairs = arrays((4, 5), (6, 3), (4, 5))
    split = pairs_from_arrays(pairs)
    assert isinstance(split, ImageList) and split.sizes() == [(4, 5), (6, 3)]
    assert np.array_equal(split.raw(1)[1].numpy(), pairs[1][1])
    images, masks = split.batch(torch.tensor([0, 2]))  # same size: fine
    assert images.shape == (2, 3, 4, 5) and masks.dtype == torch.int64
    with pytest.raises(SegbenchError, match="image_size"):
        split.batch(torch.tensor([0, 1]))


def test_batches_are_imagenet_normalised():
    pairs = arrays((2, 2))
    images, masks = pairs_from_arrays(pairs).batch(torch.tensor([0]))
    expected = (pairs[0][0][0, 0] / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert np.allclose(images[0, :, 0, 0].numpy(), expected, atol=1e-6)
    assert torch.equal(masks[0], torch.from_numpy(pairs[0][1]).long())


def test_to_device_keeps_samples_and_batches_from_there():
    split = pairs_from_arrays(arrays((3, 3), (3, 3)))
    moved = split.to("cpu")
    assert torch.equal(moved.images, split.images)
    assert torch.equal(moved.batch(torch.tensor([1]))[1], split.batch(torch.tensor([1]))[1])
