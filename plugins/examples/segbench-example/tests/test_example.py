"""Tests of the segbench-example plugin: call each hook with a Registrar, then build and
run what it registered. Run with ``pip install -e .[test]`` and ``pytest``, which also runs
segbench's contract tests on every component at its defaults (``--segbench-contracts`` in
pyproject.toml); a subclass of a contract class checks other parameters."""

import math

import pytest
import torch

import segbench
import segbench_example
from segbench.testing import UpsamplerContract


def registered(hook):
    """The components one hook adds, by name."""
    register = segbench.Registrar("segbench-example", "test")
    hook(register=register)
    return {component.name: component for component in register.components}


def test_each_hook_registers_its_components():
    assert list(registered(segbench_example.segbench_upsamplers)) == ["example_pixel_shuffle"]
    assert list(registered(segbench_example.segbench_losses)) == ["example_focal"]
    assert list(registered(segbench_example.segbench_metrics)) == ["example_recall", "example_error_rate"]


def test_keyword_only_parameters_are_what_a_suite_can_set():
    upsampler = registered(segbench_example.segbench_upsamplers)["example_pixel_shuffle"]
    assert {name: p.default for name, p in upsampler.params.items()} == {"kernel_size": 3, "icnr": True}
    loss = registered(segbench_example.segbench_losses)["example_focal"]
    assert {name: p.default for name, p in loss.params.items()} == {"gamma": 2.0}
    assert upsampler.description.startswith("Sub-pixel convolution")


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("kernel_size", [1, 3])
def test_upsampler_maps_c_in_h_w_to_c_out_sh_sw(scale, kernel_size):
    upsampler = registered(segbench_example.segbench_upsamplers)["example_pixel_shuffle"]
    module = upsampler.build(8, 5, scale, kernel_size=kernel_size)
    assert module(torch.randn(2, 8, 6, 7)).shape == (2, 5, 6 * scale, 7 * scale)


class TestPixelShuffleWithoutICNR(UpsamplerContract):
    """The upsampler contract with parameters other than the defaults."""

    name = "example_pixel_shuffle"
    params = {"kernel_size": 1, "icnr": False}


def test_upsampler_rejects_a_fractional_scale():
    upsampler = registered(segbench_example.segbench_upsamplers)["example_pixel_shuffle"]
    with pytest.raises(ValueError, match="integer scale_factor"):
        upsampler.build(8, 5, 1.5)


def test_icnr_starts_every_sub_pixel_equal():
    upsampler = registered(segbench_example.segbench_upsamplers)["example_pixel_shuffle"]
    module = upsampler.build(4, 3, 2, icnr=True)
    torch.nn.init.zeros_(module.conv.bias)
    out = module(torch.randn(1, 4, 5, 5))
    assert torch.allclose(out[..., 0::2, 0::2], out[..., 1::2, 1::2])


@pytest.mark.parametrize("mode, channels", [("multiclass", 3), ("binary", 1)])
def test_focal_loss_is_a_finite_scalar_that_skips_ignored_pixels(mode, channels):
    loss = registered(segbench_example.segbench_losses)["example_focal"].build(mode, 3, 255)
    logits = torch.randn(2, channels, 8, 8, requires_grad=True)
    target = torch.randint(0, channels if mode == "multiclass" else 2, (2, 8, 8))
    target[:, :2] = 255
    value = loss(logits, target)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert torch.all(logits.grad[:, :, :2] == 0)  # ignored pixels get no gradient


def test_focal_loss_refuses_multilabel_and_is_zero_when_all_pixels_are_ignored():
    component = registered(segbench_example.segbench_losses)["example_focal"]
    with pytest.raises(ValueError, match="multilabel"):
        component.build("multilabel", 3, 255)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    value = component.build("multiclass", 3, 255)(logits, torch.full((2, 4, 4), 255))
    assert value.item() == 0.0
    value.backward()
    assert torch.all(logits.grad == 0)


def test_recall_is_tp_over_tp_plus_fn_per_class():
    metric = registered(segbench_example.segbench_metrics)["example_recall"].build(3, 255)
    target = torch.tensor([[[0, 0, 1, 1], [1, 1, 255, 255]]])
    pred = torch.tensor([[[0, 1, 1, 1], [0, 2, 2, 2]]])
    metric.update(pred, target)
    per_class = metric.per_class()
    assert per_class[:2] == [0.5, 0.5]  # class 0: 1 of 2 found; class 1: 2 of 4
    assert math.isnan(per_class[2])  # class 2 never in the target: undefined, not 0
    assert metric.compute() == pytest.approx(0.5)
    assert metric.per_image() == [pytest.approx(0.5)]


def test_error_rate_is_one_minus_pixel_accuracy_and_lower_is_better():
    component = registered(segbench_example.segbench_metrics)["example_error_rate"]
    assert component.higher_is_better is False  # read off the class the factory returns
    metric = component.build(3, 255)
    target = torch.tensor([[[0, 0, 1, 1], [1, 1, 255, 255]]])
    pred = torch.tensor([[[0, 1, 1, 1], [0, 2, 2, 2]]])
    metric.update(pred, target)
    assert metric.higher_is_better is False
    assert metric.compute() == pytest.approx(1 - 3 / 6)  # 3 of the 6 scored pixels right
