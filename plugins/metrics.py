"""Standard metrics read off a confusion matrix: mean IoU, mean Dice, pixel accuracy.

Confusion matrices have rows = true class and columns = predicted class, so for class c:
TP = C[c, c], FN = row sum - TP, FP = column sum - TP. Pixels whose target is
``ignore_index`` never enter the matrix.

Absent-class rule: a class absent from both the prediction and the target has an
undefined IoU / Dice (0 / 0). It scores NaN and is left out of the mean, so an image
without, say, a "cat" is neither rewarded nor punished for correctly predicting no cat.
A class present in only one of them scores 0.
"""

from __future__ import annotations

import torch

from segbench.hookspecs import hookimpl
from segbench.metrics import ConfusionMatrixMetric


@hookimpl
def segbench_metrics(register):
    register.add_metric("miou", miou)
    register.add_metric("dice", dice)
    register.add_metric("pixel_accuracy", pixel_accuracy)


def true_positives(confusion):
    return confusion.diagonal()


def false_positives(confusion):
    return confusion.sum(0) - confusion.diagonal()


def false_negatives(confusion):
    return confusion.sum(1) - confusion.diagonal()


def safe_ratio(numerator, denominator):
    """numerator / denominator, NaN where the denominator is 0 (undefined, not zero)."""
    numerator, denominator = numerator.double(), denominator.double()
    defined = denominator > 0
    ratio = numerator / torch.where(defined, denominator, torch.ones_like(denominator))
    return torch.where(defined, ratio, torch.full_like(ratio, float("nan")))


class ClassMeanMetric(ConfusionMatrixMetric):
    """Per-class score averaged over the defined classes, optionally without class 0."""

    def __init__(self, num_classes: int, ignore_index: int = 255, include_background: bool = True):
        super().__init__(num_classes, ignore_index)
        self.include_background = include_background

    def reduce(self, per_class, confusion):
        scored = per_class if self.include_background else per_class[1:]
        return float(torch.nanmean(scored))


class IoU(ClassMeanMetric):
    """Intersection over union per class, TP / (TP + FP + FN)."""

    def score(self, confusion):
        tp, fp, fn = true_positives(confusion), false_positives(confusion), false_negatives(confusion)
        return safe_ratio(tp, tp + fp + fn)


class Dice(ClassMeanMetric):
    """Dice coefficient (F1) per class, 2 TP / (2 TP + FP + FN)."""

    def score(self, confusion):
        tp, fp, fn = true_positives(confusion), false_positives(confusion), false_negatives(confusion)
        return safe_ratio(2 * tp, 2 * tp + fp + fn)


class PixelAccuracy(ConfusionMatrixMetric):
    """Fraction of scored pixels predicted correctly, trace / total."""

    def score(self, confusion):
        # Per class: accuracy on the pixels of that class (recall); NaN if it has none.
        tp, fn = true_positives(confusion), false_negatives(confusion)
        return safe_ratio(tp, tp + fn)

    def reduce(self, per_class, confusion):
        total = confusion.sum()
        return float(confusion.trace() / total) if total > 0 else float("nan")


def miou(num_classes: int, ignore_index: int, *, include_background: bool = True) -> IoU:
    """Mean intersection over union over the classes present in prediction or target.

    Per class IoU = TP / (TP + FP + FN); a class absent from both prediction and target
    is NaN and left out of the mean. ``include_background=False`` leaves class 0 out of
    the mean (it stays in ``per_class``). The dataset value is read off the confusion
    matrix summed over all images, not the mean of per-image values.
    """
    return IoU(num_classes, ignore_index, include_background)


def dice(num_classes: int, ignore_index: int, *, include_background: bool = True) -> Dice:
    """Mean Dice coefficient (F1) over the classes present in prediction or target.

    Per class Dice = 2 TP / (2 TP + FP + FN); a class absent from both prediction and
    target is NaN and left out of the mean. ``include_background=False`` leaves class 0
    out of the mean (it stays in ``per_class``). The dataset value is read off the
    confusion matrix summed over all images, not the mean of per-image values.
    """
    return Dice(num_classes, ignore_index, include_background)


def pixel_accuracy(num_classes: int, ignore_index: int) -> PixelAccuracy:
    """Fraction of scored (non-ignored) pixels whose predicted class is right.

    The value is trace / total of the confusion matrix (NaN if no pixel was scored).
    ``per_class`` gives the accuracy on each class's own pixels, TP / (TP + FN), NaN for
    a class absent from the target.
    """
    return PixelAccuracy(num_classes, ignore_index)
