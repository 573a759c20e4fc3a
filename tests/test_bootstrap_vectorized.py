"""The image bootstrap of a confusion-matrix metric scores all 2000 resamples in one
vmapped call; it must give exactly what scoring them one at a time gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segbench.metrics import ConfusionMatrixMetric, Metric
from segbench.plugins import load_catalogue
from segbench.statistics import BOOTSTRAP_RESAMPLES, resample_weights


def _labels():
    generator = torch.Generator().manual_seed(0)
    pred, target = torch.randint(0, 5, (12, 24, 24), generator=generator), torch.randint(0, 5, (12, 24, 24), generator=generator)
    target[0, :4] = 255
    target[3][target[3] == 4] = 0  # a class absent from one image: NaN handling per resample
    return pred, target


@pytest.mark.parametrize("name", ["miou", "fg_iou", "dice", "pixel_accuracy", "mean_accuracy", "fw_iou"])
def test_the_vectorised_bootstrap_equals_one_resample_at_a_time(name):
    metric = load_catalogue().get("metric", name).factory(5, 255)
    metric.update(*_labels())
    weights = resample_weights(12, BOOTSTRAP_RESAMPLES, 0)
    fast, slow = metric.bootstrap(weights), Metric.bootstrap(metric, weights)
    assert fast.shape == (BOOTSTRAP_RESAMPLES,)
    np.testing.assert_array_equal(fast, slow)


class _HostScore(ConfusionMatrixMetric):
    """A plugin's score that reads a value on the host: vmap cannot trace it."""

    def score(self, confusion):
        tp = confusion.diagonal()
        if float(confusion.sum()) == 0:
            return torch.full_like(tp, float("nan"))
        return tp / confusion.sum(1).clamp(min=1)


def test_a_score_vmap_cannot_trace_falls_back_to_one_resample_at_a_time():
    metric = _HostScore(5, 255)
    metric.update(*_labels())
    weights = resample_weights(12, 50, 0)
    np.testing.assert_array_equal(metric.bootstrap(weights), Metric.bootstrap(metric, weights))
