"""Battery rows for root cause 9: a plugin that breaks its contract (logits of the wrong
shape, a loss that is no finite scalar with a gradient, labels outside the classes,
values or parameter defaults a JSON record cannot hold) stops the suite with exit 2 before
anything trains, naming the component, its plugin and its version; a valid component is
accepted in the real mode of the dataset (a binary-only loss on a binary dataset).

Every row loads the plugin below as the module ``sbpreflight_contracts`` (``-p`` by module
name, so that its provider reads the same in every case's folder).
"""

from __future__ import annotations

import sys

import pytest

from .harness import Case, check_case, tiny

PLUGIN = "sbpreflight_contracts"
SOURCE = '''
import math

import numpy as np
import torch
from torch import nn

from segbench import hookimpl
from segbench.data import SegmentationData, TensorPairs
from segbench.metrics import ConfusionMatrixMetric, Metric


class Returns(nn.Module):
    """A loss computing ``make(logits, target)``."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def forward(self, logits, target):
        return self.make(logits, target)


def fail(message):
    raise RuntimeError(message)


def binary_bce(logits, target):
    valid = target != 255
    summed = nn.functional.binary_cross_entropy_with_logits(logits[:, 0][valid], target[valid].float(), reduction="sum")
    return summed / valid.sum().clamp(min=1) + 0 * logits.sum()  # finite when every pixel is ignored


LOSSES = {
    "per_pixel_loss": lambda logits, target: nn.functional.cross_entropy(logits, target, reduction="none", ignore_index=255),
    "per_image_loss": lambda logits, target: logits.mean((1, 2, 3)),
    "one_element_loss": lambda logits, target: logits.mean().reshape(1),
    "nan_loss": lambda logits, target: logits.sum() * math.nan,
    "inf_loss": lambda logits, target: logits.sum() * 0 + math.inf,
    "float_loss": lambda logits, target: 0.5,
    "detached_loss": lambda logits, target: torch.tensor(0.5, requires_grad=True),
    "constant_loss": lambda logits, target: torch.tensor(0.5),
    "raising_loss": lambda logits, target: fail("boom in the loss"),
    "binary_only_loss": binary_bce,
}


def loss_factory(name):
    def factory(mode, num_classes, ignore_index):
        if name == "binary_only_loss" and mode != "binary":
            raise ValueError(f"binary_only_loss needs a binary dataset, got {mode}")
        return Returns(LOSSES[name])
    return factory


def set_default_loss(mode, num_classes, ignore_index, *, classes={1, 2}):
    return nn.CrossEntropyLoss(ignore_index=ignore_index)


class Opaque:
    pass


def object_default_loss(mode, num_classes, ignore_index, *, reduction=Opaque()):
    return nn.CrossEntropyLoss(ignore_index=ignore_index)


class Upsampler(nn.Module):
    def __init__(self, in_channels, out_channels, scale_factor, kind):
        super().__init__()
        self.kind, self.scale_factor = kind, scale_factor
        self.conv = nn.Conv2d(in_channels, out_channels + (kind == "wrong_channels"), 1)

    def forward(self, x):
        x = self.conv(x)
        if self.kind == "no_upsampling":
            return x
        x = nn.functional.interpolate(x, scale_factor=self.scale_factor)
        return (x, x) if self.kind == "tuple_upsampler" else x


def upsampler_factory(kind):
    return lambda in_channels, out_channels, scale_factor: Upsampler(in_channels, out_channels, scale_factor, kind)


class Architecture(nn.Module):
    def __init__(self, out_channels, kind):
        super().__init__()
        self.kind = kind
        channels = 3 if kind == "three_channels" else out_channels
        self.conv = nn.Conv2d(3, channels, 3, stride=2 if kind == "half_size" else 1, padding=1)

    def forward(self, images):
        if self.kind == "raising_architecture":
            raise RuntimeError("boom in the model")
        logits = self.conv(images)
        return {"out": logits} if self.kind == "dict_architecture" else logits


def architecture_factory(kind):
    return lambda out_channels, make_upsampler: Architecture(out_channels, kind)


class Fixed(Metric):
    def __init__(self, value, per_image=None, per_class=None, raises=False):
        self.value, self.images, self.classes, self.raises, self.seen = value, per_image, per_class, raises, 0

    def update(self, pred, target):
        if self.raises:
            raise ValueError("boom in the metric")
        self.seen += len(pred)

    def compute(self):
        return self.value

    def per_image(self):
        return self.images if self.images is not None else [0.5] * self.seen

    def per_class(self):
        return self.classes


METRICS = {
    "tensor_metric": lambda: Fixed(torch.tensor(0.5)),
    "inf_metric": lambda: Fixed(math.inf),
    "float32_metric": lambda: Fixed(np.float32(0.5)),
    "text_metric": lambda: Fixed("high"),
    "bool_metric": lambda: Fixed(True),
    "short_per_image_metric": lambda: Fixed(0.5, per_image=[0.5]),
    "tensor_per_class_metric": lambda: Fixed(0.5, per_class=torch.zeros(7)),
    "raising_metric": lambda: Fixed(0.5, raises=True),
    "nan_metric": lambda: Fixed(math.nan),
    "array_per_image_metric": lambda: Fixed(0.5, per_image=np.array([0.5, 0.5])),
    "dict_metric": lambda: Fixed({"miou": 0.5}),
}


class ErrorRate(ConfusionMatrixMetric):
    """1 - pixel accuracy, left at the default direction (higher is better): wrong."""

    def score(self, confusion):
        return confusion.diagonal() / confusion.sum(1)

    def reduce(self, per_class, confusion):
        return float(1 - confusion.trace() / confusion.sum())


CACHED = {}


def cached_metric(num_classes, ignore_index):
    return CACHED.setdefault("metric", ErrorRate(num_classes, ignore_index))


def metric_factory(name):
    return lambda num_classes, ignore_index: METRICS[name]()


def set_default_metric(num_classes, ignore_index, *, classes={1}):
    return Fixed(0.5)


def stray_labels(cache_dir, *, label: int = 3, binary: bool = False):
    """Three classes (two if binary), one pixel of each split labelled ``label``."""
    generator = torch.Generator().manual_seed(0)
    classes = ["background", "a"] if binary else ["background", "a", "b"]

    def split(count):
        images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
        masks = torch.randint(0, len(classes), (count, 32, 32), generator=generator).to(torch.int16)
        masks[-1, 5, 5] = label
        return TensorPairs(images, masks)

    return SegmentationData(classes, split(8), split(4), 255, "binary" if binary else "multiclass")


def set_default_dataset(cache_dir, *, tags={"x"}):
    return stray_labels(cache_dir, label=0)


def mask_dtype(cache_dir, *, dtype: str = "float32"):
    """Labels in range, stored as ``dtype``."""
    data = stray_labels(cache_dir, label=0)
    for split in (data.train, data.val):
        split.masks = split.masks.to(getattr(torch, dtype))
    return data


@hookimpl
def segbench_losses(register):
    for name in LOSSES:
        register.add_loss(name, loss_factory(name))
    register.add_loss("set_default_loss", set_default_loss)
    register.add_loss("object_default_loss", object_default_loss)


@hookimpl
def segbench_upsamplers(register):
    for kind in ("no_upsampling", "wrong_channels", "tuple_upsampler"):
        register.add_upsampler(kind, upsampler_factory(kind))


@hookimpl
def segbench_architectures(register):
    for kind in ("half_size", "three_channels", "dict_architecture", "raising_architecture"):
        register.add_architecture(kind, architecture_factory(kind), provides=["interpolate:nearest", "interpolate:bilinear"])


@hookimpl
def segbench_metrics(register):
    for name in METRICS:
        register.add_metric(name, metric_factory(name), higher_is_better=True)
    register.add_metric("set_default_metric", set_default_metric, higher_is_better=True)
    register.add_metric("wrong_direction_metric", ErrorRate)
    register.add_metric("cached_metric", cached_metric, higher_is_better=False)


@hookimpl
def segbench_datasets(register):
    register.add_dataset("stray_labels", stray_labels)
    register.add_dataset("set_default_dataset", set_default_dataset)
    register.add_dataset("mask_dtype", mask_dtype)
'''

BY = f"({PLUGIN} local)"
VALIDATE = ["validate", "{suite}", "-p", PLUGIN]
RUN = ["run", "{suite}", "-p", PLUGIN, "-o", "{tmp}/out", "-q"]
TINY = tiny()
BINARY = tiny(num_val='4\nforeground = "disc"')
OWN_MODEL = tiny(drop=("encoder", "decoder_channels"))  # no U-Net parameters: any architecture fits


def loss(name, *more):
    return [*VALIDATE, "--set", f"train.loss={name}", *more]


def upsampler(name):
    return [*VALIDATE, "--set", f'ablate."model.upsampler"=["nearest", "{name}"]']


def metric(name):
    return [*VALIDATE, "--set", f'eval.metrics=["miou", "{name}"]']


def dataset(table):
    return [*VALIDATE, "--set", "dataset={{ " + table + " }}"]


def value(metric_name, call, shown):
    return f"metric '{metric_name}' {BY}: {call} returned {shown}"


CASES = [
    # losses: a finite scalar tensor whose gradient reaches the model
    Case("loss-per-pixel", loss("per_pixel_loss"), 2, f"loss 'per_pixel_loss' {BY}: returned a tensor of shape (2, 32, 32); a loss must return a scalar", suite=TINY),
    Case("loss-per-image", loss("per_image_loss"), 2, f"loss 'per_image_loss' {BY}: returned a tensor of shape (2,); a loss must return a scalar", suite=TINY),
    Case("loss-one-element", loss("one_element_loss"), 2, f"loss 'one_element_loss' {BY}: returned a tensor of shape (1,)", suite=TINY),
    Case("loss-nan", loss("nan_loss"), 2, f"loss 'nan_loss' {BY}: returned nan on 2 real images of the dataset; a loss must be finite", suite=TINY),
    Case("loss-inf", loss("inf_loss"), 2, f"loss 'inf_loss' {BY}: returned inf", suite=TINY),
    Case("loss-float", loss("float_loss"), 2, f"loss 'float_loss' {BY}: returned a float; a loss must return a scalar tensor", suite=TINY),
    Case("loss-detached", loss("detached_loss"), 2, f"loss 'detached_loss' {BY}: its gradient does not reach the model's parameters", suite=TINY),
    Case("loss-constant", loss("constant_loss"), 2, f"loss 'constant_loss' {BY}: returned a tensor without a gradient", suite=TINY),
    Case("loss-raising", loss("raising_loss"), 2,
         f"loss 'raising_loss' {BY}: failed on logits of shape (2, 7, 32, 32) and targets of shape (2, 32, 32) (multiclass, 7 classes): "
         "RuntimeError: boom in the loss", suite=TINY),
    Case("loss-binary-only-on-binary", loss("binary_only_loss"), 0, "2 variant(s) x 2 seed(s)", suite=BINARY),
    Case("loss-binary-only-on-multiclass", loss("binary_only_loss"), 2,
         "loss binary_only_loss() cannot be built: ValueError: binary_only_loss needs a binary dataset, got multiclass", suite=TINY),
    Case("loss-binary-on-binary-train-only", ["validate", "{suite}", "--set", "train.loss=bce"], 0, "2 variant(s)", suite=BINARY),
    Case("loss-set-default", loss("set_default_loss"), 2,
         f"loss 'set_default_loss' {BY}: parameter classes has the default {{1, 2}} (set), which a JSON record cannot hold", suite=TINY),
    Case("loss-object-default", loss("object_default_loss"), 2, "(Opaque), which a JSON record cannot hold", suite=TINY),
    Case("loss-per-pixel-on-run", [*RUN, "--set", "train.loss=per_pixel_loss"], 2, f"loss 'per_pixel_loss' {BY}: returned a tensor of shape", suite=TINY),
    Case("loss-shared-line", loss("per_pixel_loss"), 2, "variants 'upsampler=nearest', 'upsampler=bilinear': loss 'per_pixel_loss'", suite=TINY),
    # upsamplers: (N, C_in, H, W) -> (N, out_channels, s*H, s*W), named rather than the model they break
    Case("upsampler-no-upsampling", upsampler("no_upsampling"), 2,
         f"upsampler 'no_upsampling' {BY}: returned a tensor of shape (2, 16, 1, 1) for input (2, 16, 1, 1) with out_channels=16, scale_factor=2", suite=TINY),
    Case("upsampler-wrong-channels", upsampler("wrong_channels"), 2,
         f"upsampler 'wrong_channels' {BY}: returned a tensor of shape (2, 17, 2, 2) for input (2, 16, 1, 1) with out_channels=16", suite=TINY),
    Case("upsampler-tuple", upsampler("tuple_upsampler"), 2, f"upsampler 'tuple_upsampler' {BY}: returned a tuple", suite=TINY),
    Case("upsampler-contract-said", upsampler("no_upsampling"), 2,
         "an upsampler must return (N, out_channels, H*scale_factor, W*scale_factor)", suite=TINY),
    # architectures: logits (N, C, H, W), C = 1 for a binary dataset, else its class count
    Case("architecture-half-size", [*VALIDATE, "--set", "model.architecture=half_size"], 2,
         f"architecture 'half_size' {BY} with upsampler 'nearest': returned logits of shape (2, 7, 16, 16) for images of shape (2, 3, 32, 32); "
         "expected (2, 7, 32, 32)", suite=OWN_MODEL),
    Case("architecture-channels", [*VALIDATE, "--set", "model.architecture=three_channels"], 2,
         f"architecture 'three_channels' {BY} with upsampler 'nearest': returned logits of shape (2, 3, 32, 32)", suite=OWN_MODEL),
    Case("architecture-channels-binary", [*VALIDATE, "--set", "model.architecture=three_channels"], 2,
         "expected (2, 1, 32, 32) (N, 1 logit channel for a binary dataset, H, W)",
         suite=tiny(drop=("encoder", "decoder_channels"), num_val='4\nforeground = "disc"')),
    Case("architecture-dict", [*VALIDATE, "--set", "model.architecture=dict_architecture"], 2,
         f"architecture 'dict_architecture' {BY} with upsampler 'nearest': returned a dict in evaluation mode (model.eval()); expected logits", suite=OWN_MODEL),
    Case("architecture-raising", [*VALIDATE, "--set", "model.architecture=raising_architecture"], 2,
         f"architecture 'raising_architecture' {BY} with upsampler 'nearest': forward on images of shape (2, 3, 32, 32) failed: "
         "RuntimeError: boom in the model", suite=OWN_MODEL),
    # metrics: floats, finite or NaN, that a JSON record can hold
    Case("metric-tensor", metric("tensor_metric"), 2, value("tensor_metric", "compute()", "tensor(0.5000) (Tensor)"), suite=TINY),
    Case("metric-inf", metric("inf_metric"), 2, value("inf_metric", "compute()", "inf (float)"), suite=TINY),
    Case("metric-float32", metric("float32_metric"), 2, "(float32); a metric value must be a float, finite or NaN", suite=TINY),
    Case("metric-text", metric("text_metric"), 2, value("text_metric", "compute()", "'high' (str)"), suite=TINY),
    Case("metric-bool", metric("bool_metric"), 2, value("bool_metric", "compute()", "True (bool)"), suite=TINY),
    Case("metric-short-per-image", metric("short_per_image_metric"), 2,
         value("short_per_image_metric", "per_image()", "1 values for 2; expected a list of 2 floats, one per image"), suite=TINY),
    Case("metric-tensor-per-class", metric("tensor_per_class_metric"), 2, value("tensor_per_class_metric", "per_class()", "a Tensor for 7"), suite=TINY),
    Case("metric-raising", metric("raising_metric"), 2,
         f"metric 'raising_metric' {BY}: failed on label maps of shape (2, 32, 32): ValueError: boom in the metric", suite=TINY),
    Case("metric-nan-is-valid", metric("nan_metric"), 0, "2 variant(s) x 2 seed(s)", suite=TINY),
    Case("metric-array-per-image", metric("array_per_image_metric"), 2,
         value("array_per_image_metric", "per_image()", "a ndarray for 2; expected a list of 2 floats"), suite=TINY),
    Case("metric-dict", metric("dict_metric"), 2, value("dict_metric", "compute()", "{'miou': 0.5} (dict)"), suite=TINY),
    Case("metric-wrong-direction", metric("wrong_direction_metric"), 2,
         f"metric 'wrong_direction_metric' {BY}: declared higher is better (higher_is_better=True), but a perfect prediction on 2 "
         "label maps scores 0 and a wrong one 1; register it with higher_is_better=False", suite=TINY),
    Case("metric-wrong-direction-on-run", [*RUN, "--set", 'eval.metrics=["miou", "wrong_direction_metric"]'], 2,
         "register it with higher_is_better=False", suite=TINY),
    Case("metric-cached-instance", metric("cached_metric"), 2,
         f"metric 'cached_metric' {BY}: its factory returned the same object twice", suite=TINY),
    Case("metric-cached-instance-on-run", [*RUN, "--set", 'eval.metrics=["miou", "cached_metric"]'], 2,
         "must return a new instance each call", suite=TINY),
    Case("metric-set-default", metric("set_default_metric"), 2, f"metric 'set_default_metric' {BY}: parameter classes has the default {{1}} (set)", suite=TINY),
    # datasets: every label a class index or ignore_index
    Case("labels-above", dataset('name = "stray_labels", label = 7'), 2,
         f"dataset 'stray_labels' {BY}: its train and val masks hold label 7; a label must be a class index in [0, 3) for its 3 classes, "
         "or its ignore_index 255", suite=TINY),
    Case("labels-equal-to-class-count", dataset('name = "stray_labels", label = 3'), 2, "hold label 3; a label must be a class index in [0, 3)", suite=TINY),
    Case("labels-negative", dataset('name = "stray_labels", label = -1'), 2, "hold label -1; a label must be a class index in [0, 3)", suite=TINY),
    Case("labels-binary", dataset('name = "stray_labels", label = 2, binary = true'), 2, "hold label 2; a label must be a class index in [0, 2)", suite=TINY),
    Case("labels-ignore-index-valid", dataset('name = "stray_labels", label = 255'), 0, "2 variant(s) x 2 seed(s)", suite=TINY),
    Case("labels-on-run", [*RUN, "--set", 'dataset={{ name = "stray_labels", label = 7 }}'], 2, f"dataset 'stray_labels' {BY}: its train and val masks", suite=TINY),
    Case("dataset-set-default", dataset('name = "set_default_dataset"'), 2, f"dataset 'set_default_dataset' {BY}: parameter tags has the default {{'x'}} (set)", suite=TINY),
    # datasets: masks of an integer dtype
    Case("masks-float32", dataset('name = "mask_dtype"'), 2,
         f"dataset 'mask_dtype' {BY}: train sample 0: the mask is float32; masks hold integer class indices, so their dtype must be "
         "one of uint8, int8, int16, uint16, int32, int64", suite=TINY),
    Case("masks-bool", dataset('name = "mask_dtype", dtype = "bool"'), 2, "train sample 0: the mask is bool", suite=TINY),
    Case("masks-float-on-run", [*RUN, "--set", 'dataset={{ name = "mask_dtype" }}'], 2, "the mask is float32", suite=TINY),
    Case("masks-int64-valid", dataset('name = "mask_dtype", dtype = "int64"'), 0, "2 variant(s) x 2 seed(s)", suite=TINY),
    # the training step takes as few images as a variant's steps get: batch norm cannot train on one
    Case("batch-size-one", ["validate", "{suite}", "--set", "train.batch_size=1"], 2,
         "cannot train on a batch of one image (ValueError: Expected more than 1 value per channel when training", suite=TINY),
    Case("batch-size-one-fix", ["validate", "{suite}", "--set", "train.batch_size=1"], 2,
         "train.batch_size = 1: batch norm needs 2 or more values per channel; set train.batch_size = 2 or more, or use a norm layer "
         "that trains on one image (e.g. GroupNorm)", suite=TINY),
    Case("batch-size-one-on-run", ["run", "{suite}", "-o", "{tmp}/out", "-q", "--set", "train.batch_size=1"], 2,
         "variant 'upsampler=nearest': architecture 'unet'", suite=TINY),
    Case("last-batch-of-one", ["validate", "{suite}", "--set", "train.batch_size=7"], 2,
         "train.batch_size = 7 ends each epoch of its 8 training images with a batch of one", suite=TINY),
    Case("last-batch-never-reached", ["validate", "{suite}", "--set", "train.batch_size=7", "--set", "train.iterations=1"], 0,
         "2 variant(s)", suite=TINY),
    # the standard components pass in both modes
    Case("standard-binary", ["validate", "{suite}", "--set", 'eval.metrics=["fg_iou", "dice", "boundary_iou"]'], 0, "2 variant(s)", suite=BINARY),
    Case("standard-multiclass-losses", ["validate", "{suite}", "--set", 'train.loss={{ name = "compound", terms = ["dice", "focal"] }}'], 0,
         "2 variant(s)", suite=TINY),
]


@pytest.fixture(autouse=True)
def plugin_module(tmp_path, monkeypatch):
    """The plugin as an importable module in the case's folder, forgotten afterwards."""
    (tmp_path / f"{PLUGIN}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop(PLUGIN, None)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case, tmp_path):
    check_case(case, tmp_path)
