"""Preflight runs every distinct model, loss and metric once on a tiny batch of the
suite's real dataset: a plugin that breaks its contract stops the suite with exit 2 and a
message naming the component, its plugin and its version, before anything trains; a
valid component is accepted in the mode of the real dataset (root cause 9 of issue 13)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from segbench import execute, runner
from segbench.cli import main
from segbench.plugins import load_catalogue
from segbench.preflight import built_datasets, model_problems
from segbench.suite import load_suite

# One plugin file breaking one contract per component; a suite picks the one under test.
CONTRACT_PLUGIN = '''
import math

import torch
from torch import nn

from segbench import hookimpl
from segbench.data import SegmentationData, TensorPairs
from segbench.metrics import Metric


class PerPixel(nn.Module):
    """Forgets to reduce: one loss per pixel."""

    def forward(self, logits, target):
        return nn.functional.cross_entropy(logits, target, reduction="none", ignore_index=255)


class NotANumber(nn.Module):
    def forward(self, logits, target):
        return logits.sum() * math.nan


class Detached(nn.Module):
    """A scalar with a gradient of its own, none of it reaching the model."""

    def forward(self, logits, target):
        return torch.tensor(0.5, requires_grad=True)


class BinaryOnly(nn.Module):
    def forward(self, logits, target):
        valid = target != 255
        summed = nn.functional.binary_cross_entropy_with_logits(logits[:, 0][valid], target[valid].float(), reduction="sum")
        return summed / valid.sum().clamp(min=1) + 0 * logits.sum()  # finite when every pixel is ignored


def per_pixel_loss(mode, num_classes, ignore_index):
    return PerPixel()


def nan_loss(mode, num_classes, ignore_index):
    return NotANumber()


def detached_loss(mode, num_classes, ignore_index):
    return Detached()


def binary_only_loss(mode, num_classes, ignore_index):
    """BCE for a binary task; nothing else."""
    if mode != "binary":
        raise ValueError(f"binary_only_loss needs a binary dataset, got {mode}")
    return BinaryOnly()


class Still(nn.Module):
    """Changes the channels but never the resolution."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x):
        return self.conv(x)


def no_upsampling(in_channels, out_channels, scale_factor):
    return Still(in_channels, out_channels)


def set_default_upsampler(in_channels, out_channels, scale_factor, *, modes=frozenset({"nearest"})):
    return nn.Sequential(nn.Upsample(scale_factor=scale_factor), nn.Conv2d(in_channels, out_channels, 1))


class Sentinel:
    pass


def object_default_loss(mode, num_classes, ignore_index, *, reduction=Sentinel()):
    return nn.CrossEntropyLoss(ignore_index=ignore_index)


class HalfSize(nn.Module):
    def __init__(self, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(3, out_channels, 3, stride=2, padding=1)

    def forward(self, images):
        return self.conv(images)


def half_size(out_channels, make_upsampler):
    """Logits at half the input resolution."""
    return HalfSize(out_channels)


class Fixed(Metric):
    def __init__(self, value):
        self.value = value
        self.seen = 0

    def update(self, pred, target):
        self.seen += len(pred)

    def compute(self):
        return self.value

    def per_image(self):
        return [0.5] * self.seen


def tensor_metric(num_classes, ignore_index):
    return Fixed(torch.tensor(0.5))


def infinite_metric(num_classes, ignore_index):
    return Fixed(math.inf)


def stray_labels(cache_dir, *, label: int = 3):
    """Three classes, one pixel labelled ``label``."""
    generator = torch.Generator().manual_seed(0)

    def split(count):
        images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
        masks = torch.randint(0, 3, (count, 32, 32), dtype=torch.uint8, generator=generator)
        masks[-1, 5, 5] = label
        return TensorPairs(images, masks)

    return SegmentationData(["background", "a", "b"], split(8), split(4))


@hookimpl
def segbench_losses(register):
    for factory in (per_pixel_loss, nan_loss, detached_loss, binary_only_loss, object_default_loss):
        register.add_loss(factory.__name__, factory)


@hookimpl
def segbench_upsamplers(register):
    register.add_upsampler("no_upsampling", no_upsampling)
    register.add_upsampler("set_default_upsampler", set_default_upsampler)


@hookimpl
def segbench_architectures(register):
    register.add_architecture("half_size", half_size, provides=["interpolate:nearest"])


@hookimpl
def segbench_metrics(register):
    register.add_metric("tensor_metric", tensor_metric, higher_is_better=True)
    register.add_metric("infinite_metric", infinite_metric, higher_is_better=True)


@hookimpl
def segbench_datasets(register):
    register.add_dataset("stray_labels", stray_labels)
'''

UNET = '''architecture = "unet"
encoder = "lite"
decoder_channels = [16, 8, 8, 8, 8]'''
SUITE = """
name = "contracts"
seeds = [0]

[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = 4
{dataset}

[model]
{model}

[train]
epochs = 1
batch_size = 4

[eval]
metrics = ["miou"]
"""


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "contracts.py"
    path.write_text(CONTRACT_PLUGIN)
    return path


@pytest.fixture
def suite(write_suite):
    def write(dataset="", model=UNET):
        return write_suite(SUITE.format(dataset=dataset, model=model))

    return write


def validate(capsys, suite_path, plugin, *sets):
    argv = ["validate", str(suite_path), "-p", str(plugin)]
    for pair in sets:
        argv += ["--set", pair]
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def problem_lines(text):
    return [line for line in text.splitlines() if line.startswith("  - ")]


def test_a_loss_that_does_not_reduce_is_named_with_its_plugin_and_version(capsys, suite, plugin):
    code, text = validate(capsys, suite(), plugin, "train.loss=per_pixel_loss")
    assert code == 2
    [line] = problem_lines(text)
    assert f"loss 'per_pixel_loss' ({plugin} local): returned a tensor of shape (2, 32, 32); a loss must return a scalar" in line
    assert "grad can be implicitly created" not in text and "Traceback" not in text


def test_a_loss_returning_nan_is_refused(capsys, suite, plugin):
    code, text = validate(capsys, suite(), plugin, "train.loss=nan_loss")
    assert code == 2
    assert "loss 'nan_loss'" in text and "returned nan on 2 real images of the dataset; a loss must be finite" in text


def test_a_loss_whose_gradient_misses_the_model_is_refused(capsys, suite, plugin):
    code, text = validate(capsys, suite(), plugin, "train.loss=detached_loss")
    assert code == 2
    assert "loss 'detached_loss'" in text and "gradient does not reach the model's parameters" in text


def test_an_upsampler_that_does_not_upsample_is_named_not_the_architecture(capsys, suite, plugin):
    code, text = validate(capsys, suite(), plugin, "model.upsampler=no_upsampling")
    assert code == 2
    [line] = problem_lines(text)
    assert f"upsampler 'no_upsampling' ({plugin} local): returned a tensor of shape (2, " in line
    assert "an upsampler must return (N, out_channels, H*scale_factor, W*scale_factor)" in line
    assert "Sizes of tensors must match" not in text  # what the U-Net's skip connection would have said


def test_an_architecture_returning_the_wrong_shape_is_refused_with_the_expected_shape(capsys, suite, plugin):
    code, text = validate(capsys, suite(model='architecture = "half_size"'), plugin)
    assert code == 2
    assert f"architecture 'half_size' ({plugin} local) with upsampler 'nearest': returned logits of shape (2, 7, 16, 16)" in text
    assert "expected (2, 7, 32, 32) (N, one channel per class (7), H, W)" in text


def test_a_binary_dataset_expects_one_logit_channel(capsys, suite, plugin):
    code, text = validate(capsys, suite('foreground = "disc"', model='architecture = "half_size"'), plugin)
    assert code == 2
    assert "expected (2, 1, 32, 32) (N, 1 logit channel for a binary dataset, H, W)" in text


@pytest.mark.parametrize(("metric", "value"), [("tensor_metric", "tensor(0.5000) (Tensor)"), ("infinite_metric", "inf (float)")])
def test_a_metric_value_a_json_record_cannot_hold_is_refused(capsys, suite, plugin, metric, value):
    code, text = validate(capsys, suite(), plugin, f'eval.metrics=["miou", "{metric}"]')
    assert code == 2
    [line] = problem_lines(text)
    assert f"metric '{metric}' ({plugin} local): compute() returned {value}; a metric value must be a float, finite or NaN" in line


def test_a_set_default_is_refused_as_unstorable(capsys, suite, plugin):
    code, text = validate(capsys, suite(), plugin, "model.upsampler=set_default_upsampler")
    assert code == 2
    assert "upsampler 'set_default_upsampler'" in text
    assert "parameter modes has the default frozenset({'nearest'}) (frozenset), which a JSON record cannot hold" in text


def test_an_object_default_is_refused_as_unstorable(capsys, suite, plugin):
    code, text = validate(capsys, suite(), plugin, "train.loss=object_default_loss")
    assert code == 2
    assert "loss 'object_default_loss'" in text
    assert "parameter reduction has the default <" in text and "(Sentinel), which a JSON record cannot hold" in text


def test_labels_outside_the_classes_are_refused_before_any_loss_sees_them(capsys, suite, plugin):
    code, text = validate(capsys, suite(), plugin, 'dataset={ name = "stray_labels", label = 7 }')
    assert code == 2
    [line] = problem_lines(text)
    assert f"dataset 'stray_labels' ({plugin} local): its train and val masks hold label 7; a label must be a class index in [0, 3)" in line
    assert "or its ignore_index 255" in line
    assert "out of bounds" not in text


def test_the_ignore_index_is_a_valid_label(capsys, suite, plugin):
    code, text = validate(capsys, suite(), plugin, 'dataset={ name = "stray_labels", label = 255 }')
    assert code == 0, text


def test_a_binary_only_loss_is_accepted_on_a_binary_dataset(capsys, suite, plugin):
    code, text = validate(capsys, suite('foreground = "disc"'), plugin, "train.loss=binary_only_loss")
    assert code == 0, text


def test_a_binary_only_loss_on_a_multiclass_dataset_is_refused_by_its_own_message(capsys, suite, plugin):
    code, text = validate(capsys, suite(), plugin, "train.loss=binary_only_loss")
    assert code == 2
    assert "loss binary_only_loss() cannot be built: ValueError: binary_only_loss needs a binary dataset, got multiclass" in text


def test_variants_sharing_a_broken_loss_share_one_line(capsys, write_suite, plugin):
    path = write_suite(SUITE.format(dataset="", model=UNET) + '\n[ablate]\n"model.upsampler" = ["nearest", "bilinear"]\n')
    code, text = validate(capsys, path, plugin, "train.loss=per_pixel_loss")
    assert code == 2
    [line] = problem_lines(text)
    assert line.startswith("  - variants 'upsampler=nearest', 'upsampler=bilinear': loss 'per_pixel_loss'")


def test_the_standard_components_pass_on_both_modes(capsys, write_suite):
    path = write_suite(SUITE.format(dataset="", model=UNET) + '\n[ablate]\n"dataset.foreground" = ["disc", "line"]\n'
                       '"train.loss" = ["ce", "dice", "focal", "lovasz"]\n')
    assert main(["validate", str(path), "--set", 'eval.metrics=["miou", "dice", "fg_iou", "boundary_iou"]']) == 0, capsys.readouterr().err


def test_preflight_leaves_the_random_generators_and_threads_as_it_found_them(write_suite, tmp_path):
    path = write_suite(SUITE.format(dataset="", model=UNET) + '\n[ablate]\n"model.upsampler" = ["nearest", "transposed"]\n')
    suite = load_suite(path, load_catalogue)
    datasets, problems = built_datasets(suite, tmp_path / "cache")
    assert problems == []
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    threads = torch.get_num_threads()
    assert model_problems(suite, datasets) == []
    assert torch.get_num_threads() == threads  # preflight runs on one thread, the runs on all
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]


def test_a_run_trains_the_same_with_and_without_preflight(write_suite, monkeypatch):
    path = write_suite(SUITE.format(dataset="", model=UNET))
    cache_dir = runner.resolve_cache_dir()

    def train_once():
        suite = runner.prepare(path)
        return execute.execute(suite, suite.variants[0], 0, cache_dir)

    with_preflight = train_once()
    monkeypatch.setattr(runner, "suite_problems", lambda suite, cache_dir: [])
    without = train_once()
    assert with_preflight["status"] == without["status"] == "ok"
    assert json.dumps(with_preflight["metrics"], sort_keys=True) == json.dumps(without["metrics"], sort_keys=True)
    assert with_preflight["curves"] == without["curves"]
