"""The standard metrics: the shared contract, cross-checked against scikit-learn."""

import math

import numpy as np
import pytest
import torch
from contracts.metric import MetricContract
from sklearn.metrics import accuracy_score, f1_score, jaccard_score, recall_score


def scored_pixels(pred, target, ignore_index=255):
    """Flat numpy label arrays of the pixels that are not ignored."""
    valid = target != ignore_index
    return target[valid].numpy(), pred[valid].numpy()


def per_class_sklearn(score, pred, target, num_classes, defined_by_target_only=False):
    """sklearn's per-class scores, NaN where undefined (0/0): classes absent from both
    prediction and target, or from the target alone for recall."""
    y_true, y_pred = scored_pixels(pred, target)
    scores = score(y_true, y_pred, labels=list(range(num_classes)), average=None, zero_division=0)
    seen = set(y_true) if defined_by_target_only else set(y_true) | set(y_pred)
    return np.array([v if c in seen else np.nan for c, v in enumerate(scores)])


class TestMIoU(MetricContract):
    name = "miou"

    def reference(self, pred, target):
        per_class = per_class_sklearn(jaccard_score, pred, target, self.num_classes)
        return np.nanmean(per_class), per_class


class TestDice(MetricContract):
    name = "dice"

    def reference(self, pred, target):
        per_class = per_class_sklearn(f1_score, pred, target, self.num_classes)
        return np.nanmean(per_class), per_class


class TestPixelAccuracy(MetricContract):
    name = "pixel_accuracy"

    def reference(self, pred, target):
        per_class = per_class_sklearn(recall_score, pred, target, self.num_classes, defined_by_target_only=True)
        return accuracy_score(*scored_pixels(pred, target)), per_class


class TestMIoUWithoutBackground(MetricContract):
    name = "miou"
    params = {"include_background": False}

    def reference(self, pred, target):
        per_class = per_class_sklearn(jaccard_score, pred, target, self.num_classes)
        return np.nanmean(per_class[1:]), per_class


class TestDiceWithoutBackground(MetricContract):
    name = "dice"
    params = {"include_background": False}

    def reference(self, pred, target):
        per_class = per_class_sklearn(f1_score, pred, target, self.num_classes)
        return np.nanmean(per_class[1:]), per_class


def measure(name, pred, target, num_classes=3, **params):
    contract = MetricContract()
    contract.name, contract.num_classes, contract.params = name, num_classes, params
    metric = contract.build()
    metric.update(torch.tensor(pred), torch.tensor(target))
    return metric


def test_a_class_only_predicted_or_only_true_scores_zero_not_nan():
    # class 1 only predicted, class 2 only true: both defined and wrong -> 0
    metric = measure("miou", [[[0, 1], [0, 0]]], [[[0, 2], [0, 0]]])
    assert metric.per_class() == [1.0, 0.0, 0.0]
    assert metric.compute() == pytest.approx(1 / 3)


def test_the_absent_class_rule_is_per_image():
    # Image 1 has no class 2 anywhere: NaN there, so its mean covers classes 0 and 1 only.
    pred = [[[0, 1], [1, 1]], [[2, 2], [0, 0]]]
    target = [[[0, 1], [1, 0]], [[2, 2], [0, 0]]]
    per_image = measure("miou", pred, target).per_image()
    assert per_image[0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert per_image[1] == pytest.approx(1.0)


def test_an_image_with_every_pixel_ignored_is_nan():
    for name in ("miou", "dice", "pixel_accuracy"):
        metric = measure(name, [[[0, 1]], [[1, 1]]], [[[255, 255]], [[1, 1]]])
        first, second = metric.per_image()
        assert math.isnan(first) and second == pytest.approx(1.0)
        assert metric.compute() == pytest.approx(1.0)


def test_pixel_accuracy_weights_images_by_their_scored_pixels():
    # 3 of 3 right, then 0 of 1 right: pooled 3/4, while the image mean is 1/2.
    metric = measure("pixel_accuracy", [[[0, 1, 1, 0]], [[0, 0, 0, 0]]], [[[0, 1, 1, 255]], [[1, 255, 255, 255]]])
    assert metric.compute() == pytest.approx(3 / 4)
    assert metric.per_image() == pytest.approx([1.0, 0.0])


def test_include_background_false_leaves_class_0_in_per_class():
    metric = measure("dice", [[[0, 1], [2, 2]]], [[[0, 1], [1, 2]]], include_background=False)
    assert metric.per_class()[0] == pytest.approx(1.0)
    assert metric.compute() == pytest.approx((2 / 3 + 2 / 3) / 2)
