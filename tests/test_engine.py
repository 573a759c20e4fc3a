"""Engine pieces that the end-to-end test does not pin down on their own."""

import pytest
import torch

from segbench.engine.build import build_schedule
from segbench.engine.run import predict_labels


def _learning_rates(name, steps=10):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = build_schedule(name, optimizer, steps)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates + [optimizer.param_groups[0]["lr"]]


def test_schedules_start_at_the_base_rate_and_decay_to_zero():
    assert _learning_rates("constant") == [1.0] * 11
    cosine = _learning_rates("cosine")
    assert cosine[0] == 1.0 and cosine[5] == pytest.approx(0.5) and cosine[-1] == pytest.approx(0.0, abs=1e-12)
    poly = _learning_rates("poly")
    assert poly[5] == pytest.approx(0.5**0.9) and poly[-1] == 0.0
    assert all(a >= b for a, b in zip(cosine, cosine[1:]))


def test_predictions_by_mode():
    logits = torch.tensor([[[[2.0, -1.0]]], [[[-0.5, 0.1]]]])  # (2, 1, 1, 2): binary logits
    assert predict_labels(logits, "binary").tolist() == [[[1, 0]], [[0, 1]]]
    multiclass = torch.tensor([[[[0.1]], [[0.9]], [[0.3]]]])  # (1, 3, 1, 1)
    assert predict_labels(multiclass, "multiclass").tolist() == [[[1]]]
