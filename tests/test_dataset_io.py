"""``fit``: how the readers bring a sample to an ``image_size`` square."""

import numpy as np
import pytest
from PIL import Image

from segbench.errors import SegbenchError
from segbench_plugins.datasets.io import check_fit, resize_pair


def striped(width=40, height=20):
    """A mask whose class is the column's tenth (0..3 across a 40-wide image)."""
    mask = np.repeat((np.arange(width) // 10)[None, :], height, axis=0).astype(np.uint8)
    image = Image.fromarray(np.stack([mask * 60] * 3, axis=-1).astype(np.uint8))
    return image, mask


def test_resize_stretches_and_keeps_every_class():
    image, mask = striped()
    out_image, out_mask = resize_pair(image, mask, 16, fit="resize")
    assert out_image.shape == (16, 16, 3) and out_mask.shape == (16, 16)
    assert np.array_equal(out_mask[0], np.repeat(np.arange(4), 4))  # nearest: quarters stay quarters


def test_crop_keeps_aspect_and_takes_the_centre():
    image, mask = striped()
    out_image, out_mask = resize_pair(image, mask, 16, fit="crop")
    assert out_image.shape == (16, 16, 3)
    # Scaled to 32x16, the centre 16 columns are columns 8..23, i.e. classes 1 and 2 only.
    assert set(np.unique(out_mask)) == {1, 2}
    assert np.array_equal(out_mask[0], np.repeat([1, 2], 8))
    assert set(np.unique(out_mask)) <= set(np.unique(mask)), "nearest never invents a class"


def test_unset_size_keeps_the_sample_and_bad_fit_is_named():
    image, mask = striped()
    out_image, out_mask = resize_pair(image, mask, None, fit="crop")
    assert out_mask.shape == (20, 40) and np.array_equal(out_mask, mask)
    with pytest.raises(SegbenchError, match="fit must be one of resize, crop"):
        check_fit("voc", "squash")
