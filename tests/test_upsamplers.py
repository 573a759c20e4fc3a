"""The standard upsamplers: the shared contract plus what each one promises."""

import pytest
import torch
import torch.nn.functional as F
from contracts.upsampler import UpsamplerContract
from torch import nn

from segbench_plugins.upsamplers import bilinear_kernel_1d, transposed, transposed_padding


class TestNearest(UpsamplerContract):
    name = "nearest"

    def reference(self, x, scale_factor):
        return F.interpolate(x, scale_factor=scale_factor, mode="nearest")


class TestBilinear(UpsamplerContract):
    name = "bilinear"

    def reference(self, x, scale_factor):
        return F.interpolate(x, scale_factor=scale_factor, mode="bilinear", align_corners=False)


class TestBilinearAlignCorners(UpsamplerContract):
    name = "bilinear"
    params = {"align_corners": True}

    def reference(self, x, scale_factor):
        return F.interpolate(x, scale_factor=scale_factor, mode="bilinear", align_corners=True)


class TestTransposed(UpsamplerContract):
    name = "transposed"


class TestTransposedKernel2(UpsamplerContract):
    name = "transposed"
    params = {"kernel_size": 2}
    scale_factors = (2,)


class TestTransposedOddKernel(UpsamplerContract):
    name = "transposed"
    params = {"kernel_size": 3}
    scale_factors = (2, 3)


class TestTransposedBilinearInit(UpsamplerContract):
    name = "transposed"
    params = {"bilinear_init": True}


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_interpolation_with_a_channel_change_is_a_1x1_conv_and_the_interpolation(mode):
    upsampler = TestNearest().build(4, 6, 2) if mode == "nearest" else TestBilinear().build(4, 6, 2)
    projection = next(m for m in upsampler.modules() if isinstance(m, nn.Conv2d))
    assert projection.kernel_size == (1, 1)
    x = torch.randn(2, 4, 5, 7)
    # Interpolating first and projecting after gives the same: the order is only a cost choice.
    expected = projection(F.interpolate(x, scale_factor=2, mode=mode))
    torch.testing.assert_close(upsampler(x), expected)


def test_channel_preserving_interpolation_has_no_parameters():
    assert not list(TestNearest().build(8, 8, 2).parameters())
    assert not list(TestBilinear().build(8, 8, 2).parameters())


@pytest.mark.parametrize(
    "kernel_size, stride, padding, output_padding",
    [(4, 2, 1, 0), (2, 2, 0, 0), (3, 2, 1, 1), (6, 2, 2, 0), (8, 4, 2, 0), (4, 4, 0, 0), (3, 1, 1, 0)],
)
def test_transposed_padding_gives_exactly_scale_times_the_input(kernel_size, stride, padding, output_padding):
    assert transposed_padding(kernel_size, stride) == (padding, output_padding)


def test_transposed_kernel_4_is_the_lecture_configuration():
    conv = transposed(8, 8, 2)
    assert (conv.kernel_size, conv.stride, conv.padding, conv.output_padding) == ((4, 4), (2, 2), (1, 1), (0, 0))


@pytest.mark.parametrize("kernel_size, scale", [(1, 2), (3, 4), (2, 1)])
def test_transposed_rejects_kernels_that_cannot_give_the_scale(kernel_size, scale):
    with pytest.raises(ValueError, match="kernel_size"):
        transposed(4, 4, scale, kernel_size=kernel_size)


@pytest.mark.parametrize("kernel_size, scale", [(4, 2), (6, 2), (8, 4)])
def test_bilinear_init_interpolates_bilinearly_away_from_the_border(kernel_size, scale):
    x = torch.randn(2, 3, 7, 9)
    output = transposed(3, 3, scale, kernel_size=kernel_size, bilinear_init=True)(x)
    expected = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    inner = (..., slice(scale, -scale), slice(scale, -scale))  # borders see zero padding
    torch.testing.assert_close(output[inner], expected[inner])


def test_bilinear_init_with_a_kernel_as_short_as_the_stride_is_nearest_neighbour():
    x = torch.randn(2, 3, 5, 6)
    output = transposed(3, 3, 2, kernel_size=2, bilinear_init=True)(x)
    torch.testing.assert_close(output, F.interpolate(x, scale_factor=2, mode="nearest"))


def test_bilinear_kernel_sums_to_one_per_output_phase():
    for kernel_size, stride in [(3, 2), (4, 2), (5, 3), (8, 4)]:
        padding, _ = transposed_padding(kernel_size, stride)
        weights = bilinear_kernel_1d(kernel_size, stride, padding)
        for phase in range(stride):
            assert float(weights[phase::stride].sum()) == pytest.approx(1.0)


def test_bilinear_init_only_links_channel_c_to_channel_c():
    conv = transposed(3, 5, 2, bilinear_init=True)
    weight = conv.weight.detach()  # (in, out, k, k)
    off_diagonal = [(i, o) for i in range(3) for o in range(5) if i != o]
    assert all(weight[i, o].abs().sum() == 0 for i, o in off_diagonal)
    assert all(weight[c, c].sum() > 0 for c in range(3)) and conv.bias.abs().sum() == 0


@pytest.mark.parametrize("scale", [0, -1, 1.5, True])
def test_a_bad_scale_factor_is_refused(scale):
    with pytest.raises(ValueError, match="scale_factor"):
        TestNearest().build(4, 4, scale)
