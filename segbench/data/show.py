"""``segbench data show``: one sample drawn as an image beside its mask overlay, with a
legend of the classes it contains."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SegbenchError
from ..palette import class_colours  # noqa: F401 - also this module's, as before
from ..store import atomic_file
from ..text import literal_text, plot_label
from .samples import SegmentationData
from .stats import check_split

IGNORE_COLOUR = (1.0, 1.0, 1.0)
OVERLAY_ALPHA = 0.75


def sample_at(data: SegmentationData, split: str, index: int):
    """(H, W, 3) uint8 image and (H, W) mask of sample ``index`` of ``split``."""
    (split,) = check_split(split)
    samples = getattr(data, split)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(samples):
        raise SegbenchError(f"--index {index}: {split} has {len(samples)} images; valid indices are 0..{len(samples) - 1}")
    image, mask = samples.raw(index)
    return image.permute(1, 2, 0).cpu().numpy(), mask.cpu().numpy()


def overlay(image: np.ndarray, mask: np.ndarray, colours: np.ndarray, ignore_index: int) -> np.ndarray:
    """The image in grey (so class colours stand out) with each non-background class
    tinted and ignored pixels white."""
    grey = (image.astype(np.float64) / 255.0).mean(axis=2, keepdims=True)
    out = np.repeat(grey, 3, axis=2)
    known = (mask != 0) & (mask < len(colours))
    tint = colours[np.where(known, mask, 0)]
    out[known] = (1 - OVERLAY_ALPHA) * out[known] + OVERLAY_ALPHA * tint[known]
    out[mask == ignore_index] = IGNORE_COLOUR
    return out


@literal_text  # class names and the title are drawn as written, never as mathtext
def draw_sample(data: SegmentationData, split: str, index: int, output, title: str = "") -> Path:
    """Write a PNG of the sample: image | overlay, and a legend of its classes."""
    import matplotlib

    matplotlib.use("Agg")  # before pyplot: files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    image, mask = sample_at(data, split, index)
    colours = class_colours(len(data.classes))
    present = [int(v) for v in np.unique(mask)]
    figure, axes = plt.subplots(1, 2, figsize=(9, 4.6), constrained_layout=True)
    axes[0].imshow(image)
    axes[0].set_title("image")
    axes[1].imshow(overlay(image, mask, colours, data.ignore_index), interpolation="nearest")
    axes[1].set_title("mask")
    for axis in axes:
        axis.axis("off")
    handles = [_legend_entry(Patch, value, data, colours, mask) for value in present]
    figure.legend(handles=[h for h in handles if h], loc="outside right center", fontsize=8, frameon=False)
    figure.suptitle(plot_label(title) or f"{split} #{index} ({image.shape[1]}x{image.shape[0]})")
    output = Path(output)
    try:
        with atomic_file(output) as temporary:  # a full disk or read-only folder: WriteError (exit 2), no half file
            figure.savefig(temporary, dpi=110, format=output.suffix.lstrip(".").lower() or None)
    finally:
        plt.close(figure)
    return output


def _legend_entry(Patch, value, data, colours, mask):
    share = f"{(mask == value).mean():.1%}"
    if value == data.ignore_index:
        return Patch(facecolor=IGNORE_COLOUR, edgecolor="grey", label=f"{value} ignored ({share})")
    if value < len(data.classes):
        return Patch(facecolor=colours[value], edgecolor="grey", label=f"{value} {plot_label(data.classes[value])} ({share})")
    return None
