"""Metrics read off one confusion matrix: mean IoU, mean Dice, pixel accuracy, mean
(class) accuracy and frequency-weighted IoU.

Confusion matrices have rows = true class and columns = predicted class, so for class c:
TP = C[c, c], FN = row sum - TP, FP = column sum - TP. Pixels whose target is
``ignore_index`` never enter the matrix. The dataset value is read off the matrix summed
over all images (every scored pixel pooled), not the mean of per-image values;
``per_image`` reads the same formula off each image's own matrix.

Absent-class rule: a class absent from both the prediction and the target has an
undefined IoU / Dice (0 / 0). It scores NaN and is left out of the mean, so an image
without, say, a "cat" is neither rewarded nor punished for correctly predicting no cat.
A class present in only one of them scores 0. Recall (the per-class accuracy) is defined
by the target alone: it is NaN for a class absent from the target, predicted or not (the
pixels wrongly given that class already lower the recall of their true classes).
"""

from __future__ import annotations

import torch

from segbench import ConfusionMatrixMetric


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


def iou_per_class(confusion):
    tp, fp, fn = true_positives(confusion), false_positives(confusion), false_negatives(confusion)
    return safe_ratio(tp, tp + fp + fn)


def recall_per_class(confusion):
    tp, fn = true_positives(confusion), false_negatives(confusion)
    return safe_ratio(tp, tp + fn)


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
        return iou_per_class(confusion)


class Dice(ClassMeanMetric):
    """Dice coefficient (F1) per class, 2 TP / (2 TP + FP + FN)."""

    def score(self, confusion):
        tp, fp, fn = true_positives(confusion), false_positives(confusion), false_negatives(confusion)
        return safe_ratio(2 * tp, 2 * tp + fp + fn)


class MeanAccuracy(ClassMeanMetric):
    """Recall per class, TP / (TP + FN), averaged over the classes in the target."""

    def score(self, confusion):
        return recall_per_class(confusion)


class PixelAccuracy(ConfusionMatrixMetric):
    """Fraction of scored pixels predicted correctly, trace / total."""

    def score(self, confusion):
        # Per class: accuracy on the pixels of that class (recall); NaN if it has none.
        return recall_per_class(confusion)

    def reduce(self, per_class, confusion):
        total = confusion.sum()
        return float(confusion.trace() / total) if total > 0 else float("nan")


class FrequencyWeightedIoU(ConfusionMatrixMetric):
    """IoU per class, averaged with weights = each class's share of the true pixels."""

    def score(self, confusion):
        return iou_per_class(confusion)

    def reduce(self, per_class, confusion):
        true_pixels = confusion.sum(1)
        total = true_pixels.sum()
        if total == 0:
            return float("nan")
        # A class with no true pixel has weight 0 (and IoU 0 or NaN): it adds nothing.
        in_target = true_pixels > 0
        return float((true_pixels[in_target] * per_class[in_target]).sum() / total)


def miou(num_classes: int, ignore_index: int, *, include_background: bool = True) -> IoU:
    """Mean intersection over union over the classes present in prediction or target.

    Per class IoU = TP / (TP + FP + FN); a class absent from both prediction and target
    is NaN and left out of the mean, one present in only one of them scores 0.
    ``include_background=False`` leaves class 0 out of the mean (it stays in
    ``per_class``). The dataset value is read off the confusion matrix summed over all
    images, not the mean of per-image values.
    """
    return IoU(num_classes, ignore_index, include_background)


def fg_iou(num_classes: int, ignore_index: int) -> IoU:
    """Foreground IoU: mean IoU over every class but the background (class 0).

    For a binary task this is the IoU of the foreground class alone, the number that
    person or lesion segmentation reports; averaging in the background's IoU (often
    above 0.9) would compress every difference. For more classes it equals
    ``miou`` with ``include_background = false``. A foreground class absent from both
    prediction and target is left out of the mean, as in ``miou``.
    """
    return IoU(num_classes, ignore_index, include_background=False)


def dice(num_classes: int, ignore_index: int, *, include_background: bool = True) -> Dice:
    """Mean Dice coefficient (F1) over the classes present in prediction or target.

    Per class Dice = 2 TP / (2 TP + FP + FN); a class absent from both prediction and
    target is NaN and left out of the mean, one present in only one of them scores 0.
    ``include_background=False`` leaves class 0 out of the mean (it stays in
    ``per_class``). The dataset value is read off the confusion matrix summed over all
    images, not the mean of per-image values.
    """
    return Dice(num_classes, ignore_index, include_background)


def pixel_accuracy(num_classes: int, ignore_index: int) -> PixelAccuracy:
    """Fraction of scored (non-ignored) pixels whose predicted class is right.

    The value is trace / total of the confusion matrix (NaN if no pixel was scored), so
    classes count by their pixels and absent classes play no part. ``per_class`` gives the
    accuracy on each class's own pixels, TP / (TP + FN): NaN for a class absent from the
    target (predicted or not), 0 for one in the target but never predicted.
    """
    return PixelAccuracy(num_classes, ignore_index)


def mean_accuracy(num_classes: int, ignore_index: int, *, include_background: bool = True) -> MeanAccuracy:
    """Mean over classes of the per-class accuracy (recall) TP / (TP + FN).

    Each class counts equally, however many pixels it has (the "mean accuracy" of Long et
    al., FCN, 2015; scikit-learn's balanced accuracy). Recall is defined by the target
    alone: a class absent from the target is NaN and left out of the mean even if it was
    predicted (those pixels already lower the recall of their true class); a class in
    the target but never predicted scores 0. ``include_background=False`` leaves class 0
    out of the mean (it stays in ``per_class``). The dataset value is read off the
    confusion matrix summed over all images.
    """
    return MeanAccuracy(num_classes, ignore_index, include_background)


def fw_iou(num_classes: int, ignore_index: int) -> FrequencyWeightedIoU:
    """Frequency-weighted IoU: per-class IoU weighted by each class's share of true pixels.

    fw_iou = sum_c (t_c / T) * IoU_c, with t_c the number of scored pixels whose true class
    is c and T their total (Long et al., FCN, 2015). A class absent from the target has
    weight 0, so a class absent from both prediction and target (IoU NaN) and one only
    predicted (IoU 0) add nothing; their false positives still lower the IoU of the true
    classes. NaN if no pixel was scored. ``per_class`` is the plain per-class IoU (NaN for
    a class absent from both, 0 for one present in only one). The dataset value is read
    off the confusion matrix summed over all images.
    """
    return FrequencyWeightedIoU(num_classes, ignore_index)
