"""The standard metrics: the shared contract, cross-checked against scikit-learn (the
confusion-matrix metrics) and against a scipy re-implementation of the official
Boundary IoU code (boundary_iou), plus hand-computed cases."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, jaccard_score, recall_score

from segbench.components import Catalogue, Registrar
from segbench.testing import MetricContract
from segbench_plugins.metrics import STANDARD_METRICS, segbench_metrics
from segbench_plugins.metrics.boundary import boundary_width, mask_boundary

IGNORE = 255

# --- scikit-learn references for the confusion-matrix metrics ----------------------------


def scored_pixels(pred, target, ignore_index=IGNORE):
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


class TestMeanAccuracy(MetricContract):
    name = "mean_accuracy"

    def reference(self, pred, target):
        per_class = per_class_sklearn(recall_score, pred, target, self.num_classes, defined_by_target_only=True)
        with warnings.catch_warnings():  # "y_pred contains classes not in y_true": that is the rule
            warnings.simplefilter("ignore", UserWarning)
            return balanced_accuracy_score(*scored_pixels(pred, target)), per_class


class TestFrequencyWeightedIoU(MetricContract):
    name = "fw_iou"

    def reference(self, pred, target):
        y_true, y_pred = scored_pixels(pred, target)
        labels = list(range(self.num_classes))
        # sklearn's "weighted" average weights each class by its support: its true pixels.
        value = jaccard_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
        return value, per_class_sklearn(jaccard_score, pred, target, self.num_classes)


class TestMIoUWithoutBackground(MetricContract):
    name = "miou"
    params = {"include_background": False}

    def reference(self, pred, target):
        per_class = per_class_sklearn(jaccard_score, pred, target, self.num_classes)
        return np.nanmean(per_class[1:]), per_class


class TestForegroundIoU(MetricContract):
    name = "fg_iou"

    def reference(self, pred, target):
        per_class = per_class_sklearn(jaccard_score, pred, target, self.num_classes)
        return np.nanmean(per_class[1:]), per_class


class TestForegroundIoUBinary(MetricContract):
    """Binary: the foreground class's own IoU, scikit-learn's jaccard_score with pos_label 1."""

    name = "fg_iou"
    num_classes, absent_class = 2, None

    def label_maps(self, seed=0, images=4, size=(9, 11)):
        generator = torch.Generator().manual_seed(seed)
        target = (torch.rand(images, *size, generator=generator) < 0.2).long()
        pred = torch.where(torch.rand(target.shape, generator=generator) < 0.8, target, 1 - target)
        return pred, target.masked_fill(torch.rand(target.shape, generator=generator) < 0.15, IGNORE)

    def reference(self, pred, target):
        y_true, y_pred = scored_pixels(pred, target)
        if not (y_true.any() or y_pred.any()):
            return math.nan, None
        return jaccard_score(y_true, y_pred, pos_label=1, zero_division=0), per_class_sklearn(jaccard_score, pred, target, 2)

    def test_a_class_absent_from_prediction_and_target_is_nan_and_left_out(self):
        pytest.skip("two classes, both present")


class TestDiceWithoutBackground(MetricContract):
    name = "dice"
    params = {"include_background": False}

    def reference(self, pred, target):
        per_class = per_class_sklearn(f1_score, pred, target, self.num_classes)
        return np.nanmean(per_class[1:]), per_class


class TestMeanAccuracyWithoutBackground(MetricContract):
    name = "mean_accuracy"
    params = {"include_background": False}

    def reference(self, pred, target):
        per_class = per_class_sklearn(recall_score, pred, target, self.num_classes, defined_by_target_only=True)
        return np.nanmean(per_class[1:]), per_class


# --- an independent Boundary IoU: the official mask_to_boundary, in scipy ----------------


def reference_boundary(mask, dilation):
    """bowenc0221/boundary-iou-api's mask_to_boundary with scipy for cv2: pad a border of
    zeros 1 px wide, erode ``dilation`` times by a 3x3 square with cv2's default border
    (outside the padding never erodes), crop, subtract."""
    padded = np.pad(mask, 1)
    eroded = ndimage.binary_erosion(padded, structure=np.ones((3, 3)), iterations=dilation, border_value=1)
    return mask & ~eroded[1:-1, 1:-1]


def reference_boundary_counts(pred, target, num_classes, dilation_ratio=0.02):
    """(intersection, union) per image and class, (N, K) numpy, ignored pixels removed."""
    pred, target = np.asarray(pred), np.asarray(target)
    n, height, width = target.shape
    dilation = max(1, int(round(dilation_ratio * np.sqrt(height**2 + width**2))))
    intersection, union = np.zeros((n, num_classes)), np.zeros((n, num_classes))
    for i in range(n):
        scored = target[i] != IGNORE
        for c in range(num_classes):
            true_edge = reference_boundary(target[i] == c, dilation) & scored
            pred_edge = reference_boundary(pred[i] == c, dilation) & scored
            intersection[i, c] = (true_edge & pred_edge).sum()
            union[i, c] = (true_edge | pred_edge).sum()
    return intersection, union


def ratio_or_nan(intersection, union):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, intersection / union, np.nan)


def nanmean_or_nan(values):
    return float(np.nanmean(values)) if not np.all(np.isnan(values)) else math.nan


class TestBoundaryIoU(MetricContract):
    name = "boundary_iou"
    prediction_reach = 1  # 9x11 images: d = round(0.02 * 14.2) -> at least 1 px

    def reference(self, pred, target):
        intersection, union = reference_boundary_counts(pred, target, self.num_classes)
        per_class = ratio_or_nan(intersection.sum(0), union.sum(0))
        return nanmean_or_nan(per_class), per_class


class TestBoundaryIoUWithoutBackground(TestBoundaryIoU):
    params = {"include_background": False}

    def reference(self, pred, target):
        _, per_class = super().reference(pred, target)
        return nanmean_or_nan(per_class[1:]), per_class


# --- helpers -------------------------------------------------------------------------------


def build(name, num_classes=3, **params):
    register = Registrar("test")
    segbench_metrics(register)
    return Catalogue(register.components).get("metric", name).build(num_classes, IGNORE, **params)


def measure(name, pred, target, num_classes=3, **params):
    metric = build(name, num_classes, **params)
    metric.update(torch.as_tensor(pred), torch.as_tensor(target))
    return metric


def blob_labels(rng, images, size, num_classes, sigma=3.0):
    """Label maps of smooth random blobs: argmax over classes of smoothed noise."""
    noise = rng.standard_normal((images, num_classes, *size))
    return ndimage.gaussian_filter(noise, sigma=(0, 0, sigma, sigma)).argmax(1)


def blob_pairs(seed, images=3, size=(40, 56), num_classes=4):
    """(pred, target) of blobs: the prediction a noisy copy, blobs of ignored pixels, and
    class num_classes - 1 in neither."""
    rng = np.random.default_rng(seed)
    used = num_classes - 1
    target = blob_labels(rng, images, size, used)
    disagree = blob_labels(rng, images, size, 2, sigma=4.0) == 1
    pred = np.where(disagree, blob_labels(rng, images, size, used), target)
    ignored = blob_labels(rng, images, size, 4, sigma=4.0) == 0
    target = np.where(ignored, IGNORE, target)
    return torch.from_numpy(pred), torch.from_numpy(target)


# --- the catalogue -------------------------------------------------------------------------


def test_every_standard_metric_is_registered_with_a_one_line_description():
    register = Registrar("test")
    segbench_metrics(register)
    described = {c.name: c.description for c in register.components}
    assert list(described) == ["miou", "fg_iou", "dice", "pixel_accuracy", "mean_accuracy", "fw_iou", "boundary_iou"]
    assert list(described) == list(STANDARD_METRICS)
    assert all(text and "\n" not in text for text in described.values())


@pytest.mark.parametrize("name", list(STANDARD_METRICS))
def test_every_metric_documents_the_absent_class_rule(name):
    assert "absent from" in " ".join(STANDARD_METRICS[name].__doc__.split())


# --- confusion-matrix metrics: hand-made cases ---------------------------------------------


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


def test_pixel_accuracy_weights_images_by_their_scored_pixels():
    # 3 of 3 right, then 0 of 1 right: pooled 3/4, while the image mean is 1/2.
    metric = measure("pixel_accuracy", [[[0, 1, 1, 0]], [[0, 0, 0, 0]]], [[[0, 1, 1, 255]], [[1, 255, 255, 255]]])
    assert metric.compute() == pytest.approx(3 / 4)
    assert metric.per_image() == pytest.approx([1.0, 0.0])


def test_include_background_false_leaves_class_0_in_per_class():
    metric = measure("dice", [[[0, 1], [2, 2]]], [[[0, 1], [1, 2]]], include_background=False)
    assert metric.per_class()[0] == pytest.approx(1.0)
    assert metric.compute() == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_mean_accuracy_counts_classes_equally_and_skips_classes_only_predicted():
    # class 0: 6 of 6 found; class 1: 0 of 2 found; class 2: only predicted -> NaN, left out.
    metric = measure("mean_accuracy", [[[0, 0, 0, 0, 0, 0, 2, 0]]], [[[0, 0, 0, 0, 0, 0, 1, 1]]])
    assert metric.per_class()[:2] == [1.0, 0.0] and math.isnan(metric.per_class()[2])
    assert metric.compute() == pytest.approx(0.5)
    assert measure("pixel_accuracy", [[[0, 0, 0, 0, 0, 0, 2, 0]]], [[[0, 0, 0, 0, 0, 0, 1, 1]]]).compute() == 0.75


def test_fw_iou_weights_each_class_iou_by_its_true_pixels():
    # class 0: 6 true, IoU 6/7; class 1: 2 true, IoU 1/2; class 2: predicted only, weight 0.
    metric = measure("fw_iou", [[[0, 0, 0, 0, 0, 0, 0, 1, 2]]], [[[0, 0, 0, 0, 0, 0, 1, 1, 255]]])
    assert metric.compute() == pytest.approx((6 * 6 / 7 + 2 * 1 / 2) / 8)
    assert metric.per_class()[:2] == pytest.approx([6 / 7, 1 / 2]) and math.isnan(metric.per_class()[2])


@pytest.mark.parametrize("name", ["miou", "boundary_iou"])
def test_label_maps_of_different_shapes_are_rejected(name):
    with pytest.raises(ValueError, match="one shape"):
        build(name).update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 3, dtype=torch.long))


@pytest.mark.parametrize("name", ["miou", "boundary_iou"])
def test_an_ignore_index_that_is_a_class_is_rejected(name):
    metric = STANDARD_METRICS[name](3, 1)
    with pytest.raises(ValueError, match="collides"):
        metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))


# --- boundary IoU --------------------------------------------------------------------------


# Bands 1, 5 (4.82 rounded, not floored) and 3 px wide; the last image is taller than wide.
@pytest.mark.parametrize("dilation_ratio, size", [(0.02, (40, 56)), (0.07, (40, 56)), (0.08, (33, 21))])
def test_boundary_iou_matches_the_scipy_reference_on_blobs(dilation_ratio, size):
    pred, target = blob_pairs(seed=1, size=size)
    metric = measure("boundary_iou", pred, target, num_classes=4, dilation_ratio=dilation_ratio)
    intersection, union = reference_boundary_counts(pred, target, 4, dilation_ratio)
    per_class = ratio_or_nan(intersection.sum(0), union.sum(0))
    assert metric.per_class() == pytest.approx(list(per_class), nan_ok=True)
    assert math.isnan(per_class[3]) and not np.isnan(per_class[:3]).any()
    assert metric.compute() == pytest.approx(np.nanmean(per_class))
    expected_per_image = [nanmean_or_nan(ratio_or_nan(i, u)) for i, u in zip(intersection, union)]
    assert metric.per_image() == pytest.approx(expected_per_image)


def test_boundary_iou_pools_batches_of_different_sizes():
    # Each batch has its own band width (1 and 2 px): counts are pooled, not ratios.
    batches = [blob_pairs(2, size=(30, 40)), blob_pairs(3, size=(64, 48), images=2)]
    metric = build("boundary_iou", num_classes=4, dilation_ratio=0.025)
    for pred, target in batches:
        metric.update(pred, target)
    counts = [reference_boundary_counts(pred, target, 4, dilation_ratio=0.025) for pred, target in batches]
    intersection = np.concatenate([i for i, _ in counts])
    union = np.concatenate([u for _, u in counts])
    assert [boundary_width(30, 40, 0.025), boundary_width(64, 48, 0.025)] == [1, 2]
    assert metric.per_class() == pytest.approx(list(ratio_or_nan(intersection.sum(0), union.sum(0))), nan_ok=True)
    assert metric.per_image() == pytest.approx([nanmean_or_nan(ratio_or_nan(i, u)) for i, u in zip(intersection, union)])


def test_boundary_width_is_the_ratio_of_the_diagonal_at_least_one_pixel():
    assert boundary_width(480, 640, 0.02) == 16  # diagonal 800
    assert boundary_width(9, 11, 0.02) == 1  # 0.28 px, rounded up to the minimum
    assert boundary_width(30, 40, 0.05) == 2  # 2.5 rounds half to even, as the reference


def test_the_image_edge_counts_as_contour():
    full = torch.ones(1, 10, 12, dtype=torch.bool)
    band = mask_boundary(full, 2)
    assert int(band.sum()) == 10 * 12 - 6 * 8  # a frame 2 px wide
    assert not band[0, 2:-2, 2:-2].any()


def square_pair(shift=1, size=40, side=20, top=10):
    """A square of class 1 on class 0, and the same square shifted right by ``shift`` px."""
    target = torch.zeros(1, size, size, dtype=torch.long)
    target[:, top : top + side, top : top + side] = 1
    pred = torch.zeros_like(target)
    pred[:, top : top + side, top + shift : top + side + shift] = 1
    return pred, target


# 40x40 images and dilation_ratio 0.04: d = round(0.04 * 56.6) = 2, bands 2 px wide.
SQUARE = {"num_classes": 2, "dilation_ratio": 0.04, "include_background": False}


def test_identical_masks_score_one():
    _, target = blob_pairs(seed=4)
    metric = measure("boundary_iou", target.clone(), target, num_classes=4)
    assert metric.compute() == 1.0 and metric.per_image() == [1.0] * len(target)


def test_a_one_pixel_shift_of_a_square_scores_the_hand_computed_value():
    # Rings 2 px wide of a 20 px square, shifted 1 px to the right. The 4 rows of the top
    # and bottom edges: 19 shared of 21 columns. The 16 rows between: columns {10, 11,
    # 28, 29} against {11, 12, 29, 30}, 2 shared of 6. (4*19 + 16*2) / (4*21 + 16*6).
    metric = measure("boundary_iou", *square_pair(), **SQUARE)
    assert boundary_width(40, 40, 0.04) == 2
    assert metric.per_class()[1] == pytest.approx(108 / 180)
    assert metric.compute() == pytest.approx(0.6)


def test_boundary_iou_is_stricter_than_iou_on_a_shifted_square():
    pred, target = square_pair()
    iou = measure("miou", pred, target, num_classes=2, include_background=False).compute()
    assert iou == pytest.approx(380 / 420)
    assert measure("boundary_iou", pred, target, **SQUARE).compute() < iou


def test_ignored_pixels_leave_both_boundary_sets():
    # Ignoring columns 30+ removes the predicted ring's rightmost column (20 px, all in
    # the union only); the true square, in columns 10-29, keeps its whole ring.
    pred, target = square_pair()
    target[..., 30:] = IGNORE
    metric = measure("boundary_iou", pred, target, **SQUARE)
    assert metric.per_class()[1] == pytest.approx(108 / 160)


def test_a_thin_line_predicted_as_absent_scores_zero():
    target = torch.zeros(1, 20, 20, dtype=torch.long)
    target[0, 10, 2:18] = 1  # 1 px wide: all boundary
    metric = measure("boundary_iou", torch.zeros_like(target), target, num_classes=2)
    assert metric.per_class()[1] == 0.0
    assert 0 < metric.per_class()[0] < 1 and metric.compute() == pytest.approx(metric.per_class()[0] / 2)


def test_a_negative_dilation_ratio_is_rejected():
    with pytest.raises(ValueError, match="dilation_ratio"):
        build("boundary_iou", dilation_ratio=-0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_boundary_iou_on_the_gpu_matches_the_cpu():
    pred, target = blob_pairs(seed=5)
    on_cpu = measure("boundary_iou", pred, target, num_classes=4)
    on_gpu = measure("boundary_iou", pred.cuda(), target.cuda(), num_classes=4)
    assert on_gpu.per_class() == pytest.approx(on_cpu.per_class(), nan_ok=True)
    assert on_gpu.per_image() == pytest.approx(on_cpu.per_image())
