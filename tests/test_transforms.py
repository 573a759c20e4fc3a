"""The per-sample pipeline (segbench/data/transforms.py) against independent statements of
what mmsegmentation and torchvision's segmentation reference do."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from segbench.data import transforms
from segbench.data.transforms import (
    MEAN_COLOUR,
    PadTo,
    PhotoMetricDistortion,
    RandomCropByClass,
    RandomRescale,
    apply,
    hsv_to_rgb,
    pipeline,
    rgb_to_hsv,
    sample_seed,
)

IGNORE = 255


def photo(height=60, width=80, seed=0):
    rng = np.random.default_rng(seed)
    image = torch.from_numpy(rng.integers(0, 256, (3, height, width), dtype=np.uint8))
    mask = torch.zeros((height, width), dtype=torch.uint8)
    mask[10:30, 20:50], mask[35:, :30], mask[0] = 1, 2, IGNORE
    return image, mask


def mmcv_rescaled_size(height, width, scale, ratio):
    """mmcv: target = int(scale * ratio); factor = min(long / max side, short / min side); rounded half up."""
    long_edge, short_edge = int(scale[0] * ratio), int(scale[1] * ratio)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


@pytest.mark.parametrize("height, width", [(375, 500), (500, 333), (120, 900), (512, 512)])
def test_random_rescale_follows_mmcvs_keep_ratio_rule(height, width):
    rescale = RandomRescale([2048, 512], [0.5, 2.0])
    image = tv_tensors.Image(torch.zeros((3, height, width), dtype=torch.uint8))
    for seed in range(20):
        torch.manual_seed(seed)
        ratio = 0.5 + 1.5 * float(torch.rand(()))  # the draw the transform takes first
        torch.manual_seed(seed)
        out = rescale(image)
        assert tuple(out.shape[-2:]) == mmcv_rescaled_size(height, width, (2048, 512), ratio)


def test_masks_are_resampled_by_nearest_neighbour_and_keep_their_labels():
    image, mask = photo()
    steps = pipeline({"resize": [200, 90], "ratio": [0.5, 2.0], "crop": 48, "hflip": 0.5, "photometric": True}, IGNORE)
    for seed in range(30):
        out_image, out_mask = apply(steps, image, mask, seed)
        assert out_image.dtype == torch.uint8 and out_mask.dtype == torch.uint8
        assert out_image.shape == (3, 48, 48) and out_mask.shape == (48, 48)
        assert set(torch.unique(out_mask).tolist()) <= {0, 1, 2, IGNORE}


def test_the_crop_is_at_most_the_image_and_every_position_is_possible():
    crop = RandomCropByClass((40, 40), 1.0, IGNORE)
    image, mask = photo(50, 60)
    corners = set()
    for seed in range(400):
        torch.manual_seed(seed)
        params = crop.make_params([tv_tensors.Image(image), tv_tensors.Mask(mask)])
        assert (params["height"], params["width"]) == (40, 40)
        corners.add((params["top"], params["left"]))
    assert {top for top, _ in corners} == set(range(11)) and {left for _, left in corners} == set(range(21))
    torch.manual_seed(0)
    small = crop.make_params([tv_tensors.Image(image[:, :30, :25]), tv_tensors.Mask(mask[:30, :25])])
    assert (small["top"], small["left"], small["height"], small["width"]) == (0, 0, 30, 25), "a smaller image is taken whole"


def mmseg_crop(mask, crop, cat_max_ratio, ignore, draw):
    """mmsegmentation's RandomCrop.crop_bbox / transform, with ``draw(low, high)`` as its randint."""
    def bbox():
        margin_h, margin_w = max(mask.shape[0] - crop[0], 0), max(mask.shape[1] - crop[1], 0)
        top, left = draw(0, margin_h + 1), draw(0, margin_w + 1)
        return top, top + crop[0], left, left + crop[1]

    box = bbox()
    if cat_max_ratio < 1:
        for _ in range(10):
            labels, counts = np.unique(mask[box[0]:box[1], box[2]:box[3]], return_counts=True)
            counts = counts[labels != ignore]
            if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
                break
            box = bbox()
    return box


def test_cat_max_ratio_redraws_as_mmsegmentation_does():
    """Same draws, same crop: an independent transcription of mmseg's loop, fed the same integers."""
    mask = np.zeros((100, 100), np.uint8)
    mask[70:, 70:] = 1  # only a corner holds a second class
    crop = RandomCropByClass((30, 30), 0.75, IGNORE)
    chosen, diverse = [], 0
    for seed in range(200):
        torch.manual_seed(seed)
        params = crop.make_params([tv_tensors.Mask(torch.from_numpy(mask))])
        torch.manual_seed(seed)
        top, _, left, _ = mmseg_crop(mask, (30, 30), 0.75, IGNORE, lambda low, high: int(torch.randint(low, high, ())))
        assert (params["top"], params["left"]) == (top, left)
        window = mask[top:top + 30, left:left + 30]
        diverse += len(np.unique(window)) > 1
        chosen.append((top, left))
    assert diverse / 200 > 0.5, "most crops now show both classes"
    plain = RandomCropByClass((30, 30), 1.0, IGNORE)
    torch.manual_seed(0)
    without = sum(
        len(np.unique(mask[p["top"]:p["top"] + 30, p["left"]:p["left"] + 30])) > 1
        for p in (plain.make_params([tv_tensors.Mask(torch.from_numpy(mask))]) for _ in range(200))
    )
    assert without / 200 < 0.35, "without the rule a crop rarely shows the corner"


def test_padding_fills_the_image_with_the_mean_colour_and_the_mask_with_ignore_bottom_right():
    image, mask = photo(30, 20)
    pad = PadTo((40, 32), IGNORE)
    out_image, out_mask = pad(tv_tensors.Image(image), tv_tensors.Mask(mask))
    assert out_image.shape == (3, 40, 32) and out_mask.shape == (40, 32)
    assert torch.equal(out_image[:, :30, :20], image) and torch.equal(out_mask[:30, :20], mask)
    assert (out_mask[30:] == IGNORE).all() and (out_mask[:, 20:] == IGNORE).all()
    assert out_image[:, 35, 25].tolist() == list(MEAN_COLOUR) == [124, 116, 104]


def test_hsv_round_trips_and_agrees_with_colorsys():
    rng = np.random.default_rng(1)
    rgb = torch.from_numpy(rng.random((3, 9, 11)).astype(np.float32))
    hsv = rgb_to_hsv(rgb)
    for y, x in [(0, 0), (4, 7), (8, 10), (3, 3)]:
        expected = colorsys.rgb_to_hsv(*rgb[:, y, x].tolist())
        assert hsv[:, y, x].tolist() == pytest.approx(expected, abs=1e-5)
    assert torch.allclose(hsv_to_rgb(hsv), rgb, atol=1e-5)
    grey = torch.full((3, 2, 2), 0.4)
    assert torch.allclose(rgb_to_hsv(grey)[:2], torch.zeros(2, 2, 2)) and torch.allclose(hsv_to_rgb(rgb_to_hsv(grey)), grey)


def mmseg_convert(image: np.ndarray, alpha=1.0, beta=0.0) -> np.ndarray:
    return np.clip(image.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def test_photometric_distortion_steps_are_mmsegmentations():
    image, mask = photo()
    distort = PhotoMetricDistortion()
    params = {"brightness": 20.5, "contrast_first": True, "contrast": 1.3, "saturation": None, "hue": None}
    out = distort.transform(tv_tensors.Image(image), params)
    expected = mmseg_convert(mmseg_convert(image.numpy(), beta=20.5), alpha=1.3)
    assert np.array_equal(out.numpy(), expected)
    assert distort.transform(tv_tensors.Mask(mask), params) is not None
    assert torch.equal(distort.transform(tv_tensors.Mask(mask), params), mask), "masks pass through"
    # saturation x0 makes every pixel grey (r = g = b); a hue turn of 60 (of 180: 120 degrees) maps red to green
    red = torch.zeros((3, 2, 2), dtype=torch.uint8)
    red[0] = 200
    grey = distort.transform(tv_tensors.Image(red), {**params, "brightness": None, "contrast": None, "saturation": 0.0})
    assert (grey[0] == grey[1]).all() and (grey[1] == grey[2]).all()
    turned = distort.transform(tv_tensors.Image(red), {**params, "brightness": None, "contrast": None, "hue": 60})
    assert turned[:, 0, 0].tolist() == [0, 200, 0]


def test_photometric_draws_each_step_half_the_time():
    distort = PhotoMetricDistortion()
    torch.manual_seed(0)
    draws = [distort.make_params([]) for _ in range(2000)]
    for name in ("brightness", "contrast", "saturation", "hue"):
        assert 0.45 < sum(d[name] is not None for d in draws) / 2000 < 0.55, name
    assert all(-32 <= d["brightness"] <= 32 for d in draws if d["brightness"] is not None)
    assert {d["hue"] for d in draws if d["hue"] is not None} == set(range(-18, 19))


def test_short_side_is_torchvisions_random_resize():
    steps = pipeline({"short_side": [30, 50], "crop": 24}, IGNORE)
    assert isinstance(steps.transforms[0], v2.RandomResize)
    image, mask = photo(60, 80)
    torch.manual_seed(0)
    sides = []
    for _ in range(200):
        out = steps.transforms[0](tv_tensors.Image(image))
        sides.append(min(out.shape[-2:]))
    assert min(sides) == 30 and max(sides) == 49


def test_a_sample_draws_the_same_with_its_seed_wherever_it_is_read():
    image, mask = photo()
    steps = pipeline({"resize": [200, 90], "ratio": [0.5, 2.0], "crop": 48, "cat_max_ratio": 0.75, "hflip": 0.5,
                      "photometric": True}, IGNORE)
    seed = sample_seed(3, 2, 17)
    first = apply(steps, image, mask, seed)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    second = apply(steps, image, mask, seed)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert torch.equal(torch.rand(3), before), "the caller's generator is left as it was"
    other = apply(steps, image, mask, sample_seed(3, 2, 18))
    assert not torch.equal(first[0], other[0])
    assert len({sample_seed(0, epoch, position) for epoch in range(5) for position in range(200)}) == 1000


def test_the_pipeline_runs_in_mmsegmentations_order():
    steps = pipeline({"resize": [200, 90], "ratio": [0.5, 2.0], "crop": 48, "hflip": 0.5, "photometric": True}, IGNORE)
    assert [type(step) for step in steps.transforms] == [
        RandomRescale, RandomCropByClass, v2.RandomHorizontalFlip, PhotoMetricDistortion, PadTo]
    assert pipeline({"hflip": 0.5}, IGNORE).transforms[0].p == 0.5
    assert transforms.is_per_sample({"crop": 32}) and not transforms.is_per_sample({"hflip": 0.5, "scale": [0.5, 2.0]})
