"""Standard metrics: mean IoU, foreground IoU, mean Dice, pixel accuracy, mean accuracy, frequency-weighted
IoU (all read off one confusion matrix, in ``confusion``) and Boundary IoU (in
``boundary``). Higher is better for all of them.

Each gives a dataset-level value (pixels pooled over the dataset), one value per image and
one per class. Pixels whose target is ``ignore_index`` are never scored. Absent-class
rule: a per-class score that is 0 / 0 (a class absent from both prediction and target) is
NaN and left out of the mean over classes; a class present in only one of them scores 0.
Each factory's docstring says how the rule reads for its metric.
"""

from segbench import hookimpl

from .boundary import BoundaryIoU, boundary_iou
from .confusion import (
    ClassMeanMetric,
    Dice,
    FrequencyWeightedIoU,
    IoU,
    MeanAccuracy,
    PixelAccuracy,
    dice,
    false_negatives,
    false_positives,
    fg_iou,
    fw_iou,
    mean_accuracy,
    miou,
    pixel_accuracy,
    safe_ratio,
    true_positives,
)

# name -> factory; the one-line description shown by `segbench list` is the first line of
# the factory's docstring.
STANDARD_METRICS = {
    "miou": miou,
    "fg_iou": fg_iou,
    "dice": dice,
    "pixel_accuracy": pixel_accuracy,
    "mean_accuracy": mean_accuracy,
    "fw_iou": fw_iou,
    "boundary_iou": boundary_iou,
}

__all__ = [
    "STANDARD_METRICS",
    "BoundaryIoU",
    "ClassMeanMetric",
    "Dice",
    "FrequencyWeightedIoU",
    "IoU",
    "MeanAccuracy",
    "PixelAccuracy",
    "boundary_iou",
    "dice",
    "false_negatives",
    "false_positives",
    "fg_iou",
    "fw_iou",
    "mean_accuracy",
    "miou",
    "pixel_accuracy",
    "safe_ratio",
    "segbench_metrics",
    "true_positives",
]


@hookimpl
def segbench_metrics(register):
    for name, factory in STANDARD_METRICS.items():
        register.add_metric(name, factory)
