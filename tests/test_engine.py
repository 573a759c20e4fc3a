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


AUGMENTED = """
[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = 4

[model]
architecture = "unet"
encoder = "resnet18"
decoder_channels = [16, 8, 8, 8, 8]

[train]
epochs = 1
batch_size = 4
augment = { hflip = 0.5, scale = [0.5, 2.0] }
"""


def _one_run(write_suite, text, name):
    from segbench.engine import run_one
    from segbench.plugins import load_catalogue
    from segbench.runner import resolve_cache_dir
    from segbench.suite import load_suite

    suite = load_suite(write_suite(text, name), load_catalogue)
    return run_one(suite.variants[0], 0, suite.catalogue, resolve_cache_dir())


def test_augmented_runs_repeat_exactly_and_differ_from_plain_ones(write_suite):
    first = _one_run(write_suite, AUGMENTED, "a.toml")
    again = _one_run(write_suite, AUGMENTED, "b.toml")
    plain = _one_run(write_suite, AUGMENTED.replace("augment = { hflip = 0.5, scale = [0.5, 2.0] }", ""), "c.toml")
    assert first["curves"] == again["curves"] and first["metrics"] == again["metrics"]
    assert first["curves"]["train_loss"] != plain["curves"]["train_loss"]
    assert first["data_placement"] == "host"  # CPU: one memory
