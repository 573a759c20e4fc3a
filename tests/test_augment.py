"""Batch augmentation (flip, zoom) and where samples live during training."""

from __future__ import annotations

import torch

from segbench.data import SegmentationData, TensorPairs
from segbench.data.augment import Augment, augment_generator
from segbench.engine.placement import place_dataset

IGNORE = 255


def batch(count=6, size=32, seed=0):
    """Masks of 4 classes in blocks; the image's value encodes the class (40 per class)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 4, (count, size // 8, size // 8), generator=generator)
    masks = coarse.repeat_interleave(8, 1).repeat_interleave(8, 2)
    images = (masks * 40.0).unsqueeze(1).repeat(1, 3, 1, 1)
    return images, masks


def test_off_by_default_changes_nothing():
    images, masks = batch()
    out_images, out_masks = Augment()(images, masks, augment_generator(0), IGNORE)
    assert out_images is images and out_masks is masks


def test_hflip_one_mirrors_every_sample_exactly():
    images, masks = batch()
    out_images, out_masks = Augment(hflip=1.0)(images, masks, augment_generator(0), IGNORE)
    assert torch.equal(out_images, images.flip(-1)) and torch.equal(out_masks, masks.flip(-1))


def test_hflip_half_mirrors_some_and_keeps_the_rest():
    images, masks = batch(count=64)
    _, out_masks = Augment(hflip=0.5)(images, masks, augment_generator(3), IGNORE)
    mirrored = [torch.equal(o, m.flip(-1)) and not torch.equal(o, m) for o, m in zip(out_masks, masks)]
    kept = [torch.equal(o, m) for o, m in zip(out_masks, masks)]
    assert all(a or b for a, b in zip(mirrored, kept))
    assert 16 < sum(mirrored) < 48


def test_zoom_in_is_a_crop_without_ignore_and_never_invents_a_class():
    images, masks = batch()
    out_images, out_masks = Augment(scale=(2.0, 2.0))(images, masks, augment_generator(1), IGNORE)
    assert out_masks.shape == masks.shape and out_images.shape == images.shape
    assert not (out_masks == IGNORE).any(), "zooming in stays inside the image"
    for out, original in zip(out_masks, masks):
        assert set(out.unique().tolist()) <= set(original.unique().tolist())
    # Each 8-px block becomes 16 px: the mask is piecewise constant at that scale.
    assert not torch.equal(out_masks, masks)


def test_zoom_out_pads_with_ignore_and_keeps_image_and_mask_aligned():
    images, masks = batch()
    out_images, out_masks = Augment(scale=(0.5, 0.5))(images, masks, augment_generator(2), IGNORE)
    ignored = (out_masks == IGNORE).float().mean().item()
    assert abs(ignored - 0.75) < 0.05, "the image shrinks to a quarter of the view"
    scored = out_masks != IGNORE
    agree = ((out_images[:, 0] - out_masks * 40.0).abs() < 1e-3) & scored
    assert agree.sum() / scored.sum() > 0.8, "the image value still encodes the mask's class"
    outside = out_images[:, 0][~scored]
    assert (outside.abs() < 1e-6).float().mean() > 0.9, "outside the image is 0 (the mean colour; edges blend)"


def test_same_seed_same_draws_other_seed_other_draws():
    images, masks = batch()
    augment = Augment(hflip=0.5, scale=(0.5, 2.0))
    first = augment(images, masks, augment_generator(7), IGNORE)
    again = augment(images, masks, augment_generator(7), IGNORE)
    other = augment(images, masks, augment_generator(8), IGNORE)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], other[1])


# --- placement ------------------------------------------------------------------------


def data(count=4):
    images = torch.zeros((count, 3, 8, 8), dtype=torch.uint8)
    return SegmentationData(["bg", "x"], TensorPairs(images, torch.zeros((count, 8, 8), dtype=torch.uint8)), TensorPairs(images, torch.zeros((count, 8, 8), dtype=torch.uint8)))


def test_cpu_and_host_keep_the_data_where_it_is():
    original = data()
    assert place_dataset(original, torch.device("cpu"), "device", 1) == (original, "host")
    assert place_dataset(original, torch.device("meta"), "host", 1) == (original, "host")


def test_auto_moves_what_fits_to_the_device_once():
    original = data()  # 2 x 4 x (192 + 64) bytes
    placed, where = place_dataset(original, torch.device("meta"), "auto", 1)
    assert where == "device" and placed.train.images.device.type == "meta" and placed.val.masks.device.type == "meta"
    assert place_dataset(original, torch.device("meta"), "auto", 1)[0] is placed, "moved once, reused by later runs"


def test_auto_keeps_what_does_not_fit_on_the_host_unless_device_is_forced():
    big = data(count=4096)  # 2 MiB
    assert place_dataset(big, torch.device("meta"), "auto", 1) == (big, "host")
    placed, where = place_dataset(big, torch.device("meta"), "device", 1)
    assert where == "device" and placed.train.images.device.type == "meta"
