"""The class palette every drawing of masks shares (``segbench data show``, the report's
prediction grid). Light: matplotlib loads only when a palette is made, torch never."""

from __future__ import annotations

import numpy as np


def class_colours(count: int) -> np.ndarray:
    """(count, 3) RGB in 0..1: background black, the others from a qualitative map."""
    from matplotlib import colormaps  # heavy: matplotlib only when drawing

    palette = colormaps["tab10" if count <= 11 else "tab20"].colors
    colours = [(0.0, 0.0, 0.0)] + [palette[i % len(palette)] for i in range(count - 1)]
    return np.asarray(colours[:count])
