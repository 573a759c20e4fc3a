"""Image/mask helpers shared by every reader (kept apart so that readers can share them
without importing each other)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from segbench.errors import SegbenchError


def resize_pair(image: Image.Image, mask: np.ndarray, image_size, path=None):
    """(H, W, 3) uint8 image and (H, W) uint8 mask, resized to a square (masks nearest)."""
    if image.size != (mask.shape[1], mask.shape[0]):
        raise SegbenchError(
            f"{path or 'image'} is {image.size[0]}x{image.size[1]} but its mask is "
            f"{mask.shape[1]}x{mask.shape[0]}"
        )
    if image_size is not None:
        image = image.resize((image_size, image_size), Image.BILINEAR)
        mask = np.asarray(Image.fromarray(mask).resize((image_size, image_size), Image.NEAREST))
    return np.asarray(image, dtype=np.uint8), np.asarray(mask, dtype=np.uint8)
