"""Image/mask helpers shared by every reader (kept apart so that readers can share them
without importing each other).

``fit`` decides how a sample becomes an ``image_size`` square:

- ``"resize"``: stretch to the square (aspect ratio not kept, nothing lost);
- ``"crop"``: scale the shorter side to ``image_size``, then take the centre square
  (aspect ratio kept, the ends of the longer side lost).

Images are resampled bilinearly, masks always by nearest neighbour, so no mask value is
ever invented.

``native_val = true`` (``coco``, ``voc``, ``folder``) leaves the val split at its native
resolution: ``image_size`` and ``fit`` then shape the train split only, and val is an
``ImageList`` (one tensor per image, sizes may differ) even when every image happens to
share one size, so the engine evaluates it one image at a time.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from segbench import SegbenchError

FITS = ("resize", "crop")


def check_fit(dataset: str, fit) -> None:
    check_choice(dataset, "fit", fit, FITS)


def check_choice(dataset: str, name: str, value, allowed) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise SegbenchError(f"{dataset}: {name} must be one of {', '.join(allowed)}; got {value!r}")


def check_flag(dataset: str, name: str, value) -> None:
    if not isinstance(value, bool):
        raise SegbenchError(f"{dataset}: {name} must be true or false; got {value!r}")


def split_size(image_size, native_val: bool, role: str):
    """The ``image_size`` a split is read at: None (native) for val under ``native_val``."""
    return None if native_val and role == "val" else image_size


def changed_options(**options) -> dict:
    """The ``(value, default)`` options whose value is not the default, as ``{name: value}``.

    Options added after a reader shipped enter its cache key only when set, so the
    entries (and samples) of suites that never set them stay the same."""
    return {name: value for name, (value, default) in options.items() if value != default}


def resize_pair(image: Image.Image, mask: np.ndarray, image_size, path=None, fit: str = "resize"):
    """(H, W, 3) uint8 image and (H, W) uint8 mask, brought to an ``image_size`` square."""
    if image.size != (mask.shape[1], mask.shape[0]):
        raise SegbenchError(
            f"{path or 'image'} is {image.size[0]}x{image.size[1]} but its mask is "
            f"{mask.shape[1]}x{mask.shape[0]}"
        )
    if image_size is not None:
        mask_image = Image.fromarray(mask)
        size = (image_size, image_size) if fit == "resize" else _cover_size(image.size, image_size)
        image, mask_image = image.resize(size, Image.BILINEAR), mask_image.resize(size, Image.NEAREST)
        if fit == "crop":
            box = _centre_box(size, image_size)
            image, mask_image = image.crop(box), mask_image.crop(box)
        mask = np.asarray(mask_image)
    return np.asarray(image, dtype=np.uint8), np.asarray(mask, dtype=np.uint8)


def _cover_size(size, side):
    """The (w, h) with the shorter side equal to ``side`` and the aspect ratio kept."""
    width, height = size
    scale = side / min(width, height)
    return max(side, round(width * scale)), max(side, round(height * scale))


def _centre_box(size, side):
    width, height = size
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side
