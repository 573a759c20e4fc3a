"""segbench's confusion-matrix metrics next to torchmetrics and scikit-learn.

The same predictions and targets (8 images of 256 x 256, 21 classes, 5% ignored pixels)
scored for mean IoU: segbench's ``miou`` (one bincount per batch, per-image matrices kept
for the paired statistics), torchmetrics' ``MulticlassJaccardIndex`` and scikit-learn's
``jaccard_score`` on the flattened scored pixels. The values must agree; the ratios are
reference time / segbench time (above 1: segbench is faster). No target: reported.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import median_seconds
from segbench_plugins.metrics import miou

CLASSES, IGNORE = 21, 255
# Agreement to each reference's own precision: torchmetrics computes in float32
# (0.55470968 vs 0.55470967 here), scikit-learn in float64 as segbench does.
TOLERANCE = {"torchmetrics": {"rel": 1e-6}, "scikit-learn": {"rel": 1e-12}}
pytestmark = pytest.mark.quick  # CI runs it: .ci/run
_timings: dict = {}


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, CLASSES, (8, 256, 256), generator=generator)
    prediction = torch.where(torch.rand(target.shape, generator=generator) < 0.7, target,
                             torch.randint(0, CLASSES, target.shape, generator=generator))
    target[torch.rand(target.shape, generator=generator) < 0.05] = IGNORE
    return prediction, target


def segbench_miou(prediction, target):
    metric = miou(CLASSES, IGNORE)
    metric.update(prediction, target)
    return metric.compute()


def torchmetrics_miou(prediction, target):
    from torchmetrics.classification import MulticlassJaccardIndex

    metric = MulticlassJaccardIndex(num_classes=CLASSES, ignore_index=IGNORE, average="macro")
    return float(metric(prediction, target))


def sklearn_miou(prediction, target):
    from sklearn.metrics import jaccard_score

    scored = target != IGNORE
    return float(jaccard_score(target[scored].numpy(), prediction[scored].numpy(), average="macro", labels=np.arange(CLASSES)))


@pytest.mark.parametrize("name, function", [("segbench", segbench_miou), ("torchmetrics", torchmetrics_miou), ("scikit-learn", sklearn_miou)])
def test_mean_iou(benchmark, batch, name, function, ratios):
    benchmark.group = "mean IoU, 8 x 256 x 256, 21 classes"
    value = benchmark.pedantic(function, args=batch, rounds=10, warmup_rounds=1)
    _timings[name] = (median_seconds(benchmark), value)
    if name != "segbench":
        reference_time, reference_value = _timings[name]
        own_time, own_value = _timings["segbench"]
        assert own_value == pytest.approx(reference_value, **TOLERANCE[name])
        ratios.append((f"mean IoU: {name} time / segbench time", reference_time / own_time, None))
