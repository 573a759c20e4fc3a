"""Validation logits at each image's native resolution, as mmsegmentation's test modes.

``[eval] inference`` chooses how a model sees a validation image:

- ``stored`` (the default): batches of the images as the dataset stores them, the model's
  logits used as they come (what segbench always did).
- ``whole``: the image rescaled, keeping its aspect ratio, to fit ``scale`` (mmcv's
  ``rescale_size``: the largest size whose long side is at most ``max(scale)`` and short
  side at most ``min(scale)``), one forward, the logits resized bilinearly back to the
  image's native size (mmseg's ``whole_inference`` + ``postprocess_result``).
- ``slide``: the rescaled image covered by ``crop`` windows every ``stride`` pixels; the
  logits of overlapping windows are summed and divided by how many windows saw each pixel,
  then resized back (mmseg's ``slide_inference``). A side shorter than the window is
  decoded whole, without padding, as mmseg does.

Without ``scale`` the image is fed at its native size. Masks are never resized: loss and
metrics are computed on native-size logits against the masks as stored.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from ..data.transforms import rescaled_size

MODES = ("stored", "whole", "slide")
DEFAULT = {"mode": "stored"}


def windows(height: int, width: int, crop, stride) -> list:
    """The (y1, y2, x1, x2) windows of mmseg's ``slide_inference`` over an image of
    ``height`` x ``width``: a grid every ``stride``, the last window pushed back inside the
    image, a side shorter than the crop taken whole."""
    (crop_h, crop_w), (stride_h, stride_w) = crop, stride
    rows = max(height - crop_h + stride_h - 1, 0) // stride_h + 1
    cols = max(width - crop_w + stride_w - 1, 0) // stride_w + 1
    boxes = []
    for row in range(rows):
        for col in range(cols):
            y2, x2 = min(row * stride_h + crop_h, height), min(col * stride_w + crop_w, width)
            boxes.append((max(y2 - crop_h, 0), y2, max(x2 - crop_w, 0), x2))
    return boxes


def native_logits(model, images: torch.Tensor, settings: dict | None, autocast=contextlib.nullcontext,
                  batch_size: int = 1) -> torch.Tensor:
    """Float32 logits (N, C, H, W) for normalised ``images`` (N, 3, H, W) of one native
    size, computed as ``settings`` (the resolved ``eval.inference``) says; each forward runs
    in a fresh ``autocast()`` context (the run's precision). ``batch_size`` bounds the
    windows of one slide forward."""
    settings = settings or DEFAULT
    if settings["mode"] == "stored":
        with autocast():
            return model(images).float()
    height, width = images.shape[-2:]
    inputs = rescaled(images, settings)
    if settings["mode"] == "whole":
        with autocast():
            logits = model(inputs).float()
    else:
        logits = slide_logits(model, inputs, settings["crop"], settings["stride"], autocast, batch_size)
    return _resize(logits, (height, width))


def rescaled(images: torch.Tensor, settings: dict) -> torch.Tensor:
    """``images`` as ``whole`` and ``slide`` see them: rescaled to fit ``scale`` when set."""
    scale = settings.get("scale")
    return _resize(images, rescaled_size(*images.shape[-2:], scale)) if scale else images


def forward_input(images: torch.Tensor, settings: dict | None) -> torch.Tensor:
    """What one forward of the model receives for ``images`` of one native size: the images
    as stored, rescaled (``whole``), or the first window of the rescaled images (``slide``:
    every window has that size)."""
    settings = settings or DEFAULT
    if settings["mode"] == "stored":
        return images
    inputs = rescaled(images, settings)
    if settings["mode"] == "whole":
        return inputs
    y1, y2, x1, x2 = windows(*inputs.shape[-2:], settings["crop"], settings["stride"])[0]
    return inputs[..., y1:y2, x1:x2]


def describe_forward_input(height: int, width: int, settings: dict | None) -> str:
    """How :func:`forward_input` derives its size from the first validation image, in words."""
    settings = settings or DEFAULT
    mode, scale = settings["mode"], settings.get("scale")
    if mode == "stored":
        return f"stored: first validation image as stored ({height}x{width})"
    size = rescaled_size(height, width, scale) if scale else (height, width)
    text = f"{mode}: first validation image ({height}x{width}) " + (
        f"rescaled to fit {list(scale)} -> {size[0]}x{size[1]}" if scale else "at its native size")
    if mode == "whole":
        return text
    boxes = windows(*size, settings["crop"], settings["stride"])
    y1, y2, x1, x2 = boxes[0]
    return f"{text}, one of its {len(boxes)} windows (crop {list(settings['crop'])}) -> {y2 - y1}x{x2 - x1}"


def slide_logits(model, images: torch.Tensor, crop, stride, autocast=contextlib.nullcontext, batch_size: int = 1) -> torch.Tensor:
    """Window logits summed in float32 and divided by each pixel's window count.

    All windows have one size (min(crop, side) per side), so several go through the model
    at once: about ``batch_size`` crops per forward (at least one image's worth of one
    window). The model runs in eval mode, so batching does not change a window's logits."""
    count_images, _, height, width = images.shape
    boxes = windows(height, width, crop, stride)
    per_forward = max(1, math.ceil(batch_size / count_images))
    total, counts = None, images.new_zeros((1, 1, height, width), dtype=torch.float32)
    for start in range(0, len(boxes), per_forward):
        chosen = boxes[start:start + per_forward]
        crops = torch.cat([images[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in chosen])
        with autocast():
            outputs = model(crops).float().split(count_images)
        if total is None:
            total = images.new_zeros((count_images, outputs[0].shape[1], height, width), dtype=torch.float32)
        for (y1, y2, x1, x2), output in zip(chosen, outputs):
            total[:, :, y1:y2, x1:x2] += output
            counts[:, :, y1:y2, x1:x2] += 1
    return total / counts


def size_groups(split, batch_size: int) -> list:
    """Index tensors of consecutive validation samples sharing one native size, at most
    ``batch_size`` each, in order (per-image results keep the split's order). On a split
    of one size these are exactly ``arange(len(split)).split(batch_size)``."""
    indices = torch.arange(len(split))
    if len(split.sizes()) <= 1:
        return list(indices.split(batch_size))
    groups, current, size = [], [], None
    for index, shape in enumerate(split.sample_sizes()):
        if current and (shape != size or len(current) == batch_size):
            groups.append(torch.tensor(current))
            current = []
        current.append(index)
        size = shape
    if current:
        groups.append(torch.tensor(current))
    return groups


def _resize(tensor: torch.Tensor, size) -> torch.Tensor:
    """Bilinear, half-pixel centres (mmseg's ``resize`` with align_corners=False, cv2's
    INTER_LINEAR); a no-op at the same size."""
    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    return F.interpolate(tensor, size=tuple(size), mode="bilinear", align_corners=False)
