"""Boundary IoU (Cheng, Girshick, Dollár, Berg, Kirillov: "Boundary IoU: Improving
Object-Centric Image Segmentation Evaluation", CVPR 2021), per class, in torch.

Conventions, those of the official implementation (bowenc0221/boundary-iou-api,
``boundary_iou/utils/boundary_utils.py: mask_to_boundary``):

- The boundary region of a binary mask M is G_d ∩ G in the paper: the pixels of M within
  d pixels of its contour, computed as M minus its erosion by a 3x3 square applied d
  times (so "within d" is the chessboard distance).
- d = round(dilation_ratio * image diagonal), at least 1 px; the diagonal is that of the
  image, sqrt(H^2 + W^2), so d may differ between batches of different sizes.
- Outside the image counts as background (the reference pads the mask with a border of
  zeros 1 px wide, which no erosion removes): a mask cut by the image edge has a boundary
  along it.
- Boundary IoU of class c = |B(G) ∩ B(P)| / |B(G) ∪ B(P)|, with G = (target == c) and
  P = (pred == c).

segbench additions for semantic segmentation:

- Ignored pixels: a pixel whose target is ``ignore_index`` is not in G for any class, so
  the true boundary runs along ignored regions (such as the void band around VOC
  objects); it is then removed from both boundary sets, so it is never counted. The
  prediction at an ignored pixel still shapes the predicted boundary of its scored
  neighbours (within d pixels), as it shapes the predicted region.
- Pooling: per class, the intersections and unions are summed over every image before
  the ratio is taken (as the confusion-matrix metrics pool pixels), and the dataset value
  is the mean over classes of those ratios. Boundaries are always found within each
  image, never across images.
- Absent-class rule: a class with an empty union (absent from both prediction and
  target, or with every boundary pixel ignored) is NaN and left out of the mean; a class
  present in only one of them scores 0. An image with no defined class is NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from segbench import Metric, check_label_maps

from .confusion import safe_ratio


def boundary_width(height: int, width: int, dilation_ratio: float) -> int:
    """d in pixels: dilation_ratio * image diagonal, rounded, at least 1 (as the reference)."""
    # round() on a float rounds halves to even, as the reference's round() on a numpy float.
    return max(1, int(round(dilation_ratio * math.sqrt(height**2 + width**2))))


def erode(masks: torch.Tensor, iterations: int) -> torch.Tensor:
    """Binary erosion of masks (N, H, W) by a 3x3 square applied ``iterations`` times,
    with everything outside the image counting as background.

    ``iterations`` 3x3 erosions make one erosion by a (2i+1)x(2i+1) square: a pixel stays
    iff no background pixel lies within i pixels (chessboard distance), outside included.
    The background pixels in each window are counted off an integral image (summed-area
    table), so the cost per pixel does not grow with i (int32: images up to ~46000 px a side).
    """
    reach, size = iterations, 2 * iterations + 1
    background = F.pad((~masks).to(torch.int32), (reach,) * 4, value=1)
    integral = F.pad(background.cumsum(1, dtype=torch.int32).cumsum(2, dtype=torch.int32), (1, 0, 1, 0))
    below_right, above_right = integral[:, size:, size:], integral[:, :-size, size:]
    below_left, above_left = integral[:, size:, :-size], integral[:, :-size, :-size]
    return below_right - above_right - below_left + above_left == 0  # no background in the window


def mask_boundary(masks: torch.Tensor, dilation: int) -> torch.Tensor:
    """The pixels of each mask (N, H, W) within ``dilation`` px of its contour: M minus its erosion."""
    return masks & ~erode(masks, dilation)


def classes_seen(pred, target, num_classes, scored):
    """Classes in the target or, on scored pixels, in the prediction: the only ones with boundary pixels."""
    in_target = torch.bincount(target[scored], minlength=num_classes)[:num_classes]
    in_pred = torch.bincount(pred[scored].clamp(0, num_classes), minlength=num_classes + 1)[:num_classes]
    return (in_target + in_pred).nonzero().flatten().tolist()


def boundary_counts(pred, target, num_classes: int, ignore_index: int, dilation_ratio: float):
    """Per image and class, the pixel counts of B(G) ∩ B(P) and B(G) ∪ B(P): two (N, K) int64."""
    check_label_maps(pred, target, num_classes, ignore_index)
    n, height, width = target.shape
    dilation = boundary_width(height, width, dilation_ratio)
    scored = target != ignore_index
    intersection = torch.zeros(n, num_classes, dtype=torch.int64, device=target.device)
    union = torch.zeros_like(intersection)
    for c in classes_seen(pred, target, num_classes, scored):  # the others have empty boundaries
        true_edge = mask_boundary(target == c, dilation)  # never on an ignored pixel
        pred_edge = mask_boundary(pred == c, dilation) & scored
        intersection[:, c] = (true_edge & pred_edge).sum((1, 2))
        union[:, c] = (true_edge | pred_edge).sum((1, 2))
    return intersection, union


class BoundaryIoU(Metric):
    """Per-class Boundary IoU, intersections and unions pooled over the dataset."""

    def __init__(
        self, num_classes: int, ignore_index: int = 255, dilation_ratio: float = 0.02, include_background: bool = True
    ):
        if not (math.isfinite(dilation_ratio) and dilation_ratio >= 0):
            raise ValueError(f"dilation_ratio must be a finite number >= 0, got {dilation_ratio!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.dilation_ratio = dilation_ratio
        self.include_background = include_background
        self.intersection = torch.zeros(num_classes, dtype=torch.int64)
        self.union = torch.zeros(num_classes, dtype=torch.int64)
        self.images: list[tuple[torch.Tensor, torch.Tensor]] = []

    def update(self, pred, target):
        intersection, union = boundary_counts(pred, target, self.num_classes, self.ignore_index, self.dilation_ratio)
        intersection, union = intersection.cpu(), union.cpu()
        self.intersection += intersection.sum(0)
        self.union += union.sum(0)
        self.images.extend(zip(intersection, union))

    def reduce(self, per_class: torch.Tensor) -> float:
        scored = per_class if self.include_background else per_class[1:]
        return float(torch.nanmean(scored))

    def compute(self) -> float:
        return self.reduce(safe_ratio(self.intersection, self.union))

    def per_class(self):
        return [float(v) for v in safe_ratio(self.intersection, self.union)]

    def per_image(self):
        return [self.reduce(safe_ratio(i, u)) for i, u in self.images]

    def image_statistics(self):
        """(N, 2, K): each image's intersections and unions per class."""
        return torch.stack([torch.stack(pair) for pair in self.images]) if self.images else None

    def from_statistics(self, summed):
        return self.reduce(safe_ratio(summed[0], summed[1]))


def boundary_iou(
    num_classes: int, ignore_index: int, *, dilation_ratio: float = 0.02, include_background: bool = True
) -> BoundaryIoU:
    """Mean Boundary IoU (Cheng et al., 2021): IoU of the true and predicted boundary bands.

    For each class c, the boundary band of a mask is its pixels within d px of its contour
    (the image edge counts as contour), d = dilation_ratio * image diagonal rounded, at
    least 1 px (0.02, the paper's default). Per class, Boundary IoU = |B(G) ∩ B(P)| /
    |B(G) ∪ B(P)|, with intersections and unions summed over the dataset; the value is the
    mean over classes. Pixels whose target is ``ignore_index`` are removed from both
    bands. A class absent from both prediction and target (empty union) is NaN and left
    out of the mean, one present in only one of them scores 0. ``include_background=False``
    leaves class 0 out of the mean (it stays in ``per_class``).
    """
    return BoundaryIoU(num_classes, ignore_index, dilation_ratio, include_background)
