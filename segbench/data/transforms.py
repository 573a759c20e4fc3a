"""Per-sample training augmentation, image and mask together: the pipelines of
mmsegmentation and torchvision's segmentation reference, on ``torchvision.transforms.v2``
with ``tv_tensors.Image`` and ``tv_tensors.Mask``.

A suite sets them in ``[train] augment``; the order is mmsegmentation's::

    augment = { resize = [2048, 512], ratio = [0.5, 2.0], crop = 512, cat_max_ratio = 0.75,
                hflip = 0.5, photometric = true }

1. ``resize`` + ``ratio``: mmsegmentation's ``RandomResize(scale, ratio_range, keep_ratio=True)``:
   a ratio ``r`` drawn uniformly from ``ratio``, then the image rescaled, keeping its aspect
   ratio, to fit ``[int(LONG * r), int(SHORT * r)]`` (mmcv's ``rescale_size``), bilinear
   without antialiasing as OpenCV does; or ``short_side = [LOW, HIGH]``: torchvision's
   ``v2.RandomResize``, the short side an integer drawn from ``[LOW, HIGH)``.
2. ``crop``: a random crop, at most the image, where every position is equally likely
   (mmsegmentation's ``RandomCrop``); with ``cat_max_ratio`` it is drawn again, up to 10
   times, while one class covers that share or more of its labelled pixels.
3. ``hflip``: ``v2.RandomHorizontalFlip``.
4. ``photometric``: mmsegmentation's ``PhotoMetricDistortion`` (brightness +-32, contrast
   x0.5-1.5, then saturation x0.5-1.5 and hue +-18 of OpenCV's 180, each half the time,
   contrast before or after saturation and hue at random).
5. padding to the crop size at the bottom and right: the image with the mean colour (0 once
   normalised), the mask with ``ignore_index``, so padding is never scored or learned.

Masks are resampled by nearest neighbour, so no label is ever invented. Transforms draw from
torch's generator, which the loader seeds for every sample from the run's seed and the
sample's place in the run (:func:`sample_seed`): a run draws the same numbers whatever the
number of loader workers and whichever data path feeds it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..schema import PER_SAMPLE_KEYS
from .samples import IMAGENET_MEAN

CROP_TRIES = 10  # mmsegmentation's RandomCrop draws a crop at most this many times for cat_max_ratio
MEAN_COLOUR = tuple(round(255 * channel) for channel in IMAGENET_MEAN)  # about 0 once normalised
SAMPLE_STREAM = 0x5E6B  # tells the per-sample seeds apart from every other stream of a run


def rescaled_size(height: int, width: int, scale) -> tuple:
    """(H, W) of an image rescaled keeping its ratio to fit ``scale`` = [long, short] in
    either order (mmcv ``rescale_size`` with a tuple scale, rounded half up as mmcv does)."""
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def is_per_sample(augment: dict) -> bool:
    """Whether ``[train] augment`` asks for the per-sample pipeline (not only batch flips and zooms)."""
    return any(augment.get(key) for key in PER_SAMPLE_KEYS)


def pipeline(augment: dict, ignore_index: int) -> v2.Compose:
    """The per-sample pipeline ``[train] augment`` describes (see the module doc)."""
    steps = []
    if augment.get("resize"):
        steps.append(RandomRescale(augment["resize"], augment.get("ratio") or (1.0, 1.0)))
    elif augment.get("short_side"):
        low, high = augment["short_side"]
        steps.append(v2.RandomResize(low, high, antialias=True))
    crop = crop_size(augment.get("crop"))
    if crop:
        steps.append(RandomCropByClass(crop, augment.get("cat_max_ratio") or 1.0, ignore_index))
    if augment.get("hflip"):
        steps.append(v2.RandomHorizontalFlip(augment["hflip"]))
    if augment.get("photometric"):
        steps.append(PhotoMetricDistortion())
    if crop:
        steps.append(PadTo(crop, ignore_index))
    return v2.Compose(steps)


def crop_size(crop) -> tuple | None:
    """``crop`` (an integer or [H, W]) as (H, W)."""
    if not crop:
        return None
    return (crop, crop) if isinstance(crop, int) else tuple(crop)


def apply(steps: v2.Compose, image: torch.Tensor, mask: torch.Tensor, seed: int):
    """``(image, mask)`` through ``steps`` with torch's generator seeded by ``seed``; the
    caller's generator state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        image, mask = steps(tv_tensors.Image(image), tv_tensors.Mask(mask))
    return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


def sample_seed(run_seed: int, epoch: int, position: int) -> int:
    """The seed of the sample at ``position`` of ``epoch`` of a run: independent of which
    worker reads it, so the draws are the same with any number of workers."""
    state = np.random.SeedSequence([SAMPLE_STREAM, run_seed, epoch, position]).generate_state(1, np.uint64)[0]
    return int(state) & (2**63 - 1)


class RandomRescale(v2.Transform):
    """mmsegmentation's ``RandomResize(scale, ratio_range, keep_ratio=True)`` (torchvision's
    ``RandomResize`` draws one side length instead)."""

    def __init__(self, scale: Sequence[int], ratio: Sequence[float]):
        super().__init__()
        self.scale, self.ratio = tuple(scale), tuple(ratio)

    def make_params(self, flat_inputs):
        height, width = v2.query_size(flat_inputs)
        low, high = self.ratio
        ratio = low + (high - low) * float(torch.rand(()))
        target = (int(self.scale[0] * ratio), int(self.scale[1] * ratio))
        return {"size": list(rescaled_size(height, width, target))}

    def transform(self, inpt, params):
        # OpenCV's bilinear, as mmcv resizes: no antialiasing (masks: nearest, by their type)
        return self._call_kernel(F.resize, inpt, params["size"], interpolation=v2.InterpolationMode.BILINEAR, antialias=False)


class RandomCropByClass(v2.Transform):
    """mmsegmentation's ``RandomCrop(crop_size, cat_max_ratio)``: a crop of at most the image,
    every position equally likely, drawn again (up to ``CROP_TRIES`` times) while one class
    covers ``cat_max_ratio`` or more of its labelled pixels; the last draw is kept."""

    def __init__(self, size: tuple, cat_max_ratio: float = 1.0, ignore_index: int = 255):
        super().__init__()
        self.size, self.cat_max_ratio, self.ignore_index = tuple(size), cat_max_ratio, ignore_index

    def make_params(self, flat_inputs):
        height, width = v2.query_size(flat_inputs)
        box = self._box(height, width)
        if self.cat_max_ratio < 1.0:
            mask = next(item for item in flat_inputs if isinstance(item, tv_tensors.Mask))
            for _ in range(CROP_TRIES):
                if self._diverse(mask, box):
                    break
                box = self._box(height, width)
        return dict(zip(("top", "left", "height", "width"), box))

    def _box(self, height: int, width: int) -> tuple:
        crop_height, crop_width = min(self.size[0], height), min(self.size[1], width)
        top = int(torch.randint(0, height - crop_height + 1, ()))
        left = int(torch.randint(0, width - crop_width + 1, ()))
        return top, left, crop_height, crop_width

    def _diverse(self, mask: torch.Tensor, box: tuple) -> bool:
        top, left, height, width = box
        labels = mask[..., top:top + height, left:left + width]
        counts = torch.bincount(labels[labels != self.ignore_index].reshape(-1).long())
        counts = counts[counts > 0]
        return len(counts) > 1 and float(counts.max()) / float(counts.sum()) < self.cat_max_ratio

    def transform(self, inpt, params):
        return self._call_kernel(F.crop, inpt, **params)


class PadTo(v2.Transform):
    """Pad at the bottom and right up to ``size``: the image with the mean colour, the mask
    with ``ignore_index`` (torchvision's reference ``PadIfSmaller``; mmsegmentation pads the
    batch the same way)."""

    def __init__(self, size: tuple, ignore_index: int):
        super().__init__()
        self.size, self.ignore_index = tuple(size), ignore_index

    def make_params(self, flat_inputs):
        height, width = v2.query_size(flat_inputs)
        return {"padding": [0, 0, max(self.size[1] - width, 0), max(self.size[0] - height, 0)]}

    def transform(self, inpt, params):
        if not any(params["padding"]):
            return inpt
        fill = self.ignore_index if isinstance(inpt, tv_tensors.Mask) else list(MEAN_COLOUR)
        return self._call_kernel(F.pad, inpt, padding=params["padding"], fill=fill)


class PhotoMetricDistortion(v2.Transform):
    """mmsegmentation's ``PhotoMetricDistortion`` on uint8 images (masks pass through):
    each step applied with probability 1/2, values clipped to 0..255 and truncated as
    mmcv's ``convert`` does. Hue and saturation are changed in HSV, hue in OpenCV's
    0..180 units."""

    def __init__(self, brightness_delta: int = 32, contrast: tuple = (0.5, 1.5), saturation: tuple = (0.5, 1.5),
                 hue_delta: int = 18):
        super().__init__()
        self.brightness_delta, self.contrast, self.saturation, self.hue_delta = brightness_delta, contrast, saturation, hue_delta

    def make_params(self, flat_inputs):
        # drawn in mmsegmentation's order: brightness, mode, contrast, saturation, hue
        def maybe(draw):
            return draw() if bool(torch.randint(0, 2, ())) else None

        brightness = maybe(lambda: _uniform(-self.brightness_delta, self.brightness_delta))
        contrast_first = bool(torch.randint(0, 2, ()))
        contrast = maybe(lambda: _uniform(*self.contrast))
        saturation = maybe(lambda: _uniform(*self.saturation))
        hue = maybe(lambda: int(torch.randint(-self.hue_delta, self.hue_delta + 1, ())))
        return {"brightness": brightness, "contrast_first": contrast_first, "contrast": contrast,
                "saturation": saturation, "hue": hue}

    def transform(self, inpt, params):
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        image = inpt.as_subclass(torch.Tensor)
        if params["brightness"] is not None:
            image = _convert(image, beta=params["brightness"])
        if params["contrast_first"] and params["contrast"] is not None:
            image = _convert(image, alpha=params["contrast"])
        if params["saturation"] is not None or params["hue"] is not None:
            image = _distort_hsv(image, params["saturation"], params["hue"])
        if not params["contrast_first"] and params["contrast"] is not None:
            image = _convert(image, alpha=params["contrast"])
        return tv_tensors.wrap(image, like=inpt)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _convert(image: torch.Tensor, alpha: float = 1.0, beta: float = 0.0) -> torch.Tensor:
    """mmcv's ``convert``: ``image * alpha + beta``, clipped to 0..255, truncated to uint8."""
    return (image.to(torch.float32) * alpha + beta).clamp_(0, 255).to(torch.uint8)


def _distort_hsv(image: torch.Tensor, saturation: float | None, hue: int | None) -> torch.Tensor:
    hsv = rgb_to_hsv(image.to(torch.float32) / 255)
    if saturation is not None:
        hsv[1] = (hsv[1] * saturation).clamp_(0, 1)
    if hue is not None:
        hsv[0] = torch.remainder(hsv[0] + hue / 180, 1.0)  # OpenCV's hue runs 0..180 for uint8 images
    return (hsv_to_rgb(hsv) * 255).round_().clamp_(0, 255).to(torch.uint8)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB in 0..1 to HSV, each in 0..1 (hue as a fraction of the circle)."""
    value, _ = rgb.max(0)
    minimum, _ = rgb.min(0)
    spread = value - minimum
    saturation = torch.where(value > 0, spread / value.clamp(min=1e-12), torch.zeros_like(value))
    safe = spread.clamp(min=1e-12)
    red, green, blue = rgb
    hue = torch.where(value == red, (green - blue) / safe,
                      torch.where(value == green, 2 + (blue - red) / safe, 4 + (red - green) / safe))
    hue = torch.where(spread > 0, torch.remainder(hue / 6, 1.0), torch.zeros_like(hue))
    return torch.stack([hue, saturation, value])


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_hsv`."""
    hue, saturation, value = hsv
    sector = torch.floor(hue * 6)
    fraction = hue * 6 - sector
    p = value * (1 - saturation)
    q = value * (1 - saturation * fraction)
    t = value * (1 - saturation * (1 - fraction))
    sector = sector.long() % 6
    choices = [(value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value), (value, p, q)]
    channels = []
    for channel in range(3):
        out = torch.zeros_like(value)
        for index, choice in enumerate(choices):
            out = torch.where(sector == index, choice[channel], out)
        channels.append(out)
    return torch.stack(channels)
