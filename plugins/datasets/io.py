"""Image/mask helpers shared by every reader (kept apart so that readers can share them
without importing each other).

``fit`` decides how a sample becomes an ``image_size`` square:

- ``"resize"``: stretch to the square (aspect ratio not kept, nothing lost);
- ``"crop"``: scale the shorter side to ``image_size``, then take the centre square
  (aspect ratio kept, the ends of the longer side lost).

Images are resampled bilinearly, masks always by nearest neighbour, so no mask value is
ever invented.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from segbench.errors import SegbenchError

FITS = ("resize", "crop")


def check_fit(dataset: str, fit) -> None:
    if fit not in FITS:
        raise SegbenchError(f"{dataset}: fit must be one of {', '.join(FITS)}; got {fit!r}")


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
