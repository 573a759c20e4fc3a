"""The standard upsamplers: the shared contract plus what each one promises."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segbench.components import Catalogue, Registrar
from segbench.testing import UpsamplerContract
from segbench_plugins.capabilities import ANY_INTERPOLATION, MODULE, POOL_INDICES, interpolate
from segbench_plugins.upsamplers import (
    Interpolate,
    bilinear_kernel_1d,
    segbench_upsamplers,
    transposed,
    transposed_padding,
)


def catalogue() -> Catalogue:
    register = Registrar("test")
    segbench_upsamplers(register)
    return Catalogue(register.components)


def build(name, in_channels, out_channels, scale_factor, **params):
    torch.manual_seed(0)
    return catalogue().get("upsampler", name).build(in_channels, out_channels, scale_factor, **params)


def interpolated(x, scale_factor, mode, align_corners=None):
    return F.interpolate(x, scale_factor=scale_factor, mode=mode, align_corners=align_corners)


# --- the catalogue ----------------------------------------------------------------------

EXPECTED_REQUIRES = {
    "nearest": {interpolate("nearest")},
    "nearest_exact": {interpolate("nearest-exact")},
    "bilinear": {interpolate("bilinear")},
    "bicubic": {interpolate("bicubic")},
    "transposed": {MODULE},
    "upsample_conv": {MODULE},
    "pixel_shuffle": {MODULE},
    "max_unpool": {MODULE, POOL_INDICES},
    "dysample": {MODULE},
    "carafe": {MODULE},
}
VOCABULARY = ANY_INTERPOLATION | {MODULE, POOL_INDICES}


def test_the_catalogue_is_complete_and_each_declares_what_it_requires():
    components = {component.name: component for component in catalogue().all("upsampler")}
    assert {name: set(c.requires) for name, c in components.items()} == EXPECTED_REQUIRES


def test_every_upsampler_requires_only_capabilities_of_the_vocabulary():
    for component in catalogue().all("upsampler"):
        assert component.requires, f"{component.name} declares no requires"
        assert component.requires <= VOCABULARY, f"{component.name}: {set(component.requires - VOCABULARY)}"


def test_the_import_paths_other_plugins_use_still_work():
    from segbench_plugins.upsamplers import (  # noqa: F401
        Interpolate,
        bilinear,
        bilinear_kernel_1d,
        init_bilinear_,
        nearest,
        segbench_upsamplers,
        transposed,
        transposed_padding,
    )


# --- interpolation ----------------------------------------------------------------------


class TestNearest(UpsamplerContract):
    name = "nearest"

    def reference(self, x, scale_factor):
        return interpolated(x, scale_factor, "nearest")


class TestNearestExact(UpsamplerContract):
    name = "nearest_exact"

    def reference(self, x, scale_factor):
        return interpolated(x, scale_factor, "nearest-exact")


class TestBilinear(UpsamplerContract):
    name = "bilinear"

    def reference(self, x, scale_factor):
        return interpolated(x, scale_factor, "bilinear", align_corners=False)


class TestBilinearAlignCorners(UpsamplerContract):
    name = "bilinear"
    params = {"align_corners": True}

    def reference(self, x, scale_factor):
        return interpolated(x, scale_factor, "bilinear", align_corners=True)


class TestBicubic(UpsamplerContract):
    name = "bicubic"

    def reference(self, x, scale_factor):
        return interpolated(x, scale_factor, "bicubic", align_corners=False)


class TestBicubicAlignCorners(UpsamplerContract):
    name = "bicubic"
    params = {"align_corners": True}

    def reference(self, x, scale_factor):
        return interpolated(x, scale_factor, "bicubic", align_corners=True)


INTERPOLATIONS = {"nearest": "nearest", "nearest_exact": "nearest-exact", "bilinear": "bilinear", "bicubic": "bicubic"}


@pytest.mark.parametrize("name", INTERPOLATIONS)
def test_interpolation_with_a_channel_change_is_a_1x1_conv_and_the_interpolation(name):
    upsampler = build(name, 4, 6, 2)
    projection = next(m for m in upsampler.modules() if isinstance(m, nn.Conv2d))
    assert projection.kernel_size == (1, 1)
    x = torch.randn(2, 4, 5, 7)
    # Interpolating first and projecting after gives the same: the order is only a cost choice.
    mode = INTERPOLATIONS[name]
    expected = projection(interpolated(x, 2, mode, None if "nearest" in mode else False))
    torch.testing.assert_close(upsampler(x), expected)


@pytest.mark.parametrize("name", INTERPOLATIONS)
def test_channel_preserving_interpolation_has_no_parameters_and_exposes_its_mode(name):
    upsampler = build(name, 8, 8, 2)
    assert not list(upsampler.parameters())
    assert isinstance(upsampler, Interpolate) and upsampler.mode == INTERPOLATIONS[name]


# --- transposed convolution ---------------------------------------------------------------


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


class TestTransposedExplicitGeometry(UpsamplerContract):
    name = "transposed"
    params = {"kernel_size": 8, "stride": 4, "padding": 3}
    scale_factors = (4,)


class TestTransposedBilinearInit(UpsamplerContract):
    name = "transposed"
    params = {"bilinear_init": True}


class TestTransposedWithoutBias(UpsamplerContract):
    name = "transposed"
    params = {"bilinear_init": True, "bias": False}


def test_transposed_without_bias_has_none_and_maps_zero_to_zero():
    conv = transposed(3, 3, 2, bias=False)
    assert conv.bias is None and [name for name, _ in conv.named_parameters()] == ["weight"]
    assert torch.equal(conv(torch.zeros(1, 3, 4, 4)), torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize(
    "kernel_size, stride, padding, output_padding",
    [(4, 2, 1, 0), (2, 2, 0, 0), (3, 2, 1, 1), (6, 2, 2, 0), (8, 4, 2, 0), (4, 4, 0, 0), (3, 1, 1, 0), (64, 32, 16, 0)],
)
def test_transposed_padding_gives_exactly_scale_times_the_input(kernel_size, stride, padding, output_padding):
    assert transposed_padding(kernel_size, stride) == (padding, output_padding)


@pytest.mark.parametrize("scale, kernel, padding", [(1, 3, 1), (2, 4, 1), (4, 8, 2), (8, 16, 4), (32, 64, 16)])
def test_transposed_kernel_defaults_to_twice_the_scale(scale, kernel, padding):
    conv = transposed(8, 8, scale)
    assert (conv.kernel_size, conv.stride, conv.padding, conv.output_padding) == (
        (kernel, kernel), (scale, scale), (padding, padding), (0, 0))


def test_transposed_kernel_4_is_the_lecture_configuration():
    conv = transposed(8, 8, 2)
    assert (conv.kernel_size, conv.stride, conv.padding, conv.output_padding) == ((4, 4), (2, 2), (1, 1), (0, 0))


@pytest.mark.parametrize("kernel_size, scale", [(1, 2), (3, 4), (2, 1)])
def test_transposed_rejects_kernels_that_cannot_give_the_scale(kernel_size, scale):
    with pytest.raises(ValueError, match="kernel_size"):
        transposed(4, 4, scale, kernel_size=kernel_size)


def test_transposed_accepts_every_padding_that_gives_the_scale():
    x = torch.randn(1, 2, 5, 7)
    for padding in (1, 2):  # kernel 6, stride 4: output paddings 0 and 2
        assert transposed(2, 2, 4, kernel_size=6, padding=padding)(x).shape == (1, 2, 20, 28)


def test_transposed_refuses_a_padding_that_misses_the_scale_and_names_the_one_that_works():
    with pytest.raises(ValueError, match=r"transposed: padding 2 with kernel_size 4 .* use padding 1"):
        transposed(4, 4, 2, kernel_size=4, padding=2)


def test_transposed_refuses_a_stride_other_than_the_scale_factor():
    with pytest.raises(ValueError, match=r"transposed: stride 2 must equal the scale factor 4.*stride = 4"):
        transposed(4, 4, 4, stride=2)


@pytest.mark.parametrize("kernel_size, scale", [(4, 2), (6, 2), (8, 4), (None, 8)])
def test_bilinear_init_interpolates_bilinearly_away_from_the_border(kernel_size, scale):
    x = torch.randn(2, 3, 7, 9)
    output = transposed(3, 3, scale, kernel_size=kernel_size, bilinear_init=True)(x)
    expected = interpolated(x, scale, "bilinear", align_corners=False)
    inner = (..., slice(scale, -scale), slice(scale, -scale))  # borders see zero padding
    torch.testing.assert_close(output[inner], expected[inner])


def test_bilinear_init_with_a_kernel_as_short_as_the_stride_is_nearest_neighbour():
    x = torch.randn(2, 3, 5, 6)
    output = transposed(3, 3, 2, kernel_size=2, bilinear_init=True)(x)
    torch.testing.assert_close(output, interpolated(x, 2, "nearest"))


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


# --- resize-convolution and sub-pixel convolution -----------------------------------------


class TestUpsampleConv(UpsamplerContract):
    name = "upsample_conv"


class TestUpsampleConvBilinear(UpsamplerContract):
    name = "upsample_conv"
    params = {"mode": "bilinear"}


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_upsample_conv_is_the_interpolation_then_a_3x3_conv(mode):
    upsampler = build("upsample_conv", 4, 6, 2, mode=mode)
    x = torch.randn(2, 4, 5, 7)
    align_corners = None if mode == "nearest" else False
    expected = F.conv2d(interpolated(x, 2, mode, align_corners), upsampler.conv.weight, upsampler.conv.bias, padding=1)
    torch.testing.assert_close(upsampler(x), expected)
    assert not hasattr(upsampler, "mode")  # learned: not usable as a bare interpolation


class TestPixelShuffle(UpsamplerContract):
    name = "pixel_shuffle"


class TestPixelShuffleWithoutICNR(UpsamplerContract):
    name = "pixel_shuffle"
    params = {"icnr": False, "kernel_size": 1}


@pytest.mark.parametrize("scale", [2, 4])
def test_icnr_starts_every_s_by_s_block_constant(scale):
    def block_spread(module):
        output = module(torch.randn(2, 4, 5, 7)).detach()
        blocks = output.unfold(2, scale, scale).unfold(3, scale, scale)  # (N, C, H, W, s, s)
        return (blocks - blocks[..., :1, :1]).abs().max()

    assert block_spread(build("pixel_shuffle", 4, 3, scale, icnr=True)) < 1e-6
    assert block_spread(build("pixel_shuffle", 4, 3, scale, icnr=False)) > 1e-2


# --- max unpooling ------------------------------------------------------------------------


class TestMaxUnpool(UpsamplerContract):
    name = "max_unpool"

    def reference(self, x, scale_factor, indices):
        return nn.MaxUnpool2d(2, 2)(x, indices, output_size=(2 * x.shape[-2], 2 * x.shape[-1]))


def test_max_unpool_puts_each_value_back_where_the_pool_took_it_from():
    feature = torch.randn(2, 3, 10, 14)
    pooled, indices = F.max_pool2d(feature, 2, 2, return_indices=True)
    restored = build("max_unpool", 3, 3, 2)(pooled, indices)
    torch.testing.assert_close(restored, torch.where(restored != 0, feature, torch.zeros_like(feature)))
    assert int((restored != 0).sum()) == pooled.numel()


def test_max_unpool_takes_an_explicit_output_size_for_odd_feature_maps():
    feature = torch.randn(2, 3, 11, 15)
    pooled, indices = F.max_pool2d(feature, 2, 2, return_indices=True)  # (5, 7): the last row and column dropped
    output = build("max_unpool", 3, 3, 2)(pooled, indices, output_size=(11, 15))
    torch.testing.assert_close(output, nn.MaxUnpool2d(2, 2)(pooled, indices, output_size=(11, 15)))


def test_max_unpool_called_without_indices_says_it_needs_them():
    upsampler = build("max_unpool", 4, 4, 2)
    assert upsampler.takes_pool_indices is True
    with pytest.raises(TypeError, match=r"pool indices.*segnet"):
        upsampler(torch.randn(1, 4, 3, 3))


def test_max_unpool_only_inverts_a_2x2_pool():
    with pytest.raises(ValueError, match=r"max_unpool: scale_factor must be 2 to match a 2x2.*max-pool, got 4"):
        build("max_unpool", 4, 4, 4)


# --- DySample -----------------------------------------------------------------------------


class TestDySample(UpsamplerContract):
    name = "dysample"


class TestDySamplePixelShuffleFirst(UpsamplerContract):
    name = "dysample"
    params = {"style": "pl"}
    channel_pairs = ((16, 16), (16, 6), (32, 3))  # divisible by scale**2 for scales 2 and 4


class TestDySampleDynamicScope(UpsamplerContract):
    name = "dysample"
    params = {"dyscope": True, "groups": 2}


def zero_offsets(module):
    with torch.no_grad():
        module.offset.weight.zero_()
        module.offset.bias.zero_()
    return module


@pytest.mark.parametrize("style, channels", [("lp", 8), ("pl", 16)])
@pytest.mark.parametrize("dyscope", [False, True])
@pytest.mark.parametrize("scale", [2, 4])
def test_dysample_with_zero_offsets_is_bilinear_interpolation(style, channels, dyscope, scale):
    # Pins the coordinate conventions: sub-pixel centres, axis order, normalisation, border.
    upsampler = zero_offsets(build("dysample", channels, channels, scale, style=style, dyscope=dyscope))
    x = torch.randn(2, channels, 5, 7)
    expected = interpolated(x, scale, "bilinear", align_corners=False)
    torch.testing.assert_close(upsampler(x), expected, atol=1e-5, rtol=1e-5)


def test_dysample_with_zero_offsets_stays_bilinear_under_bf16_on_a_160_px_map():
    """The map of coco-voc20-upsampling: bf16 pixel centres would put 32 of 160 rows and
    columns half a pixel off; the grid is built in float32, so DySample and bilinear
    interpolation of the same bf16 input agree to bf16 rounding."""
    upsampler = zero_offsets(build("dysample", 8, 8, 2))
    x = torch.randn(1, 8, 160, 160).bfloat16()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        sampled = upsampler(x).float()
        expected = interpolated(x, 2, "bilinear", align_corners=False).float()
    assert (sampled - expected).abs().max() <= 0.02 * expected.abs().max()


def test_dysample_changes_channels_with_a_1x1_conv_after_sampling():
    upsampler = zero_offsets(build("dysample", 8, 5, 2))
    x = torch.randn(2, 8, 5, 7)
    expected = upsampler.project(interpolated(x, 2, "bilinear", align_corners=False))
    torch.testing.assert_close(upsampler(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("axis", ["x", "y"])
def test_dysample_offsets_are_in_input_pixels_x_first(axis):
    scale, groups = 2, 4
    upsampler = zero_offsets(build("dysample", 8, 8, scale, groups=groups))
    half = groups * scale**2  # the x offsets come first, then the y offsets
    with torch.no_grad():  # a raw offset of 4 is one input pixel after the static scope 0.25
        upsampler.offset.bias[:half] = 4.0 if axis == "x" else 0.0
        upsampler.offset.bias[half:] = 4.0 if axis == "y" else 0.0
    x = torch.randn(1, 8, 5, 7)
    output, bilinear_output = upsampler(x), interpolated(x, scale, "bilinear", align_corners=False)
    if axis == "x":  # one input pixel right is `scale` output pixels right
        torch.testing.assert_close(output[..., :-scale], bilinear_output[..., scale:], atol=1e-5, rtol=1e-5)
    else:
        torch.testing.assert_close(output[..., :-scale, :], bilinear_output[..., scale:, :], atol=1e-5, rtol=1e-5)


def test_dysample_initialisation_follows_the_paper():
    upsampler = build("dysample", 8, 8, 2, dyscope=True)
    assert upsampler.offset.weight.std().item() == pytest.approx(0.001, rel=0.3)
    assert upsampler.offset.bias.abs().sum() == 0 and upsampler.scope.weight.abs().sum() == 0
    assert upsampler.offset.out_channels == 2 * 4 * 2**2  # (x, y) x groups x s^2
    positions = upsampler.init_pos.view(2, 4, 2, 2)  # (x/y, group, row i, column j)
    torch.testing.assert_close(positions[0, 0], torch.tensor([[-0.25, 0.25], [-0.25, 0.25]]))
    torch.testing.assert_close(positions[1, 3], torch.tensor([[-0.25, -0.25], [0.25, 0.25]]))
    assert "init_pos" in dict(upsampler.named_buffers())


def test_dysample_pl_predicts_one_offset_per_output_pixel_from_the_shuffled_input():
    upsampler = build("dysample", 16, 16, 2, style="pl")
    assert (upsampler.offset.in_channels, upsampler.offset.out_channels) == (4, 2 * 4)


@pytest.mark.parametrize("channels, groups", [(8, 4), (6, 3), (3, 3), (10, 2), (1, 1)])
def test_dysample_uses_the_papers_four_groups_where_the_channels_allow(channels, groups):
    assert build("dysample", channels, channels, 2).groups == groups


@pytest.mark.parametrize(
    "in_channels, params, message",
    [
        (6, {"groups": 4}, r"dysample: in_channels \(6\) must be divisible by groups \(4\)"),
        (8, {"style": "pl"}, r'dysample: style "pl" .* \(8\) must be divisible by scale_factor\*\*2 \(16\)'),
        (8, {"style": "lp-"}, r"dysample: style must be one of 'lp', 'pl'"),
        (8, {"groups": 0}, r"dysample: groups must be a positive integer"),
    ],
)
def test_dysample_refuses_what_the_paper_cannot_do(in_channels, params, message):
    with pytest.raises(ValueError, match=message):
        build("dysample", in_channels, in_channels, 4, **params)


# --- CARAFE -------------------------------------------------------------------------------


class TestCARAFE(UpsamplerContract):
    name = "carafe"
    params = {"compressed_channels": 8}


class TestCARAFESmallKernels(UpsamplerContract):
    name = "carafe"
    params = {"up_kernel": 3, "encoder_kernel": 1, "compressed_channels": 4}


@pytest.mark.parametrize("up_kernel, scale", [(5, 2), (3, 4)])
def test_carafe_with_uniform_kernels_averages_each_neighbourhood(up_kernel, scale):
    upsampler = build("carafe", 3, 3, scale, up_kernel=up_kernel)
    with torch.no_grad():  # equal logits: every tap weighs 1 / k^2
        upsampler.encoder.weight.zero_()
        upsampler.encoder.bias.zero_()
    x = torch.randn(2, 3, 5, 7)
    average = F.avg_pool2d(x, up_kernel, stride=1, padding=up_kernel // 2, count_include_pad=True)
    torch.testing.assert_close(upsampler(x), interpolated(average, scale, "nearest"))


def test_carafe_reassembles_like_a_per_pixel_loop():
    upsampler = build("carafe", 2, 2, 2, up_kernel=3, compressed_channels=4)
    with torch.no_grad():
        upsampler.encoder.weight.normal_()  # far from uniform
    x = torch.randn(1, 2, 3, 4)
    kernels = upsampler.kernels(x)  # (1, k^2, s^2, H, W)
    padded = F.pad(x, (1, 1, 1, 1))
    expected = torch.zeros(1, 2, 6, 8)
    for row in range(6):
        for col in range(8):
            source_row, source_col, sub_pixel = row // 2, col // 2, (row % 2) * 2 + col % 2
            window = padded[0, :, source_row : source_row + 3, source_col : source_col + 3].reshape(2, 9)
            expected[0, :, row, col] = window @ kernels[0, :, sub_pixel, source_row, source_col]
    torch.testing.assert_close(upsampler(x), expected)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"up_kernel": 4}, r"carafe: up_kernel must be odd"),
        ({"encoder_kernel": 0}, r"carafe: encoder_kernel must be a positive integer"),
        ({"compressed_channels": 0}, r"carafe: compressed_channels must be a positive integer"),
    ],
)
def test_carafe_refuses_invalid_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        build("carafe", 4, 4, 2, **params)


# --- every upsampler ----------------------------------------------------------------------

LARGE_SCALE_PARAMS = {"carafe": {"up_kernel": 3, "compressed_channels": 4}}


@pytest.mark.parametrize("name", [n for n in EXPECTED_REQUIRES if n != "max_unpool"])
@pytest.mark.parametrize("scale", [8, 16, 32])
def test_every_upsampler_but_unpooling_reaches_fcn_scale_factors(name, scale):
    upsampler = build(name, 4, 4, scale, **LARGE_SCALE_PARAMS.get(name, {}))
    assert upsampler(torch.randn(1, 4, 3, 2)).shape == (1, 4, 3 * scale, 2 * scale)


@pytest.mark.parametrize("name", EXPECTED_REQUIRES)
@pytest.mark.parametrize("scale", [0, -1, 1.5, True])
def test_a_bad_scale_factor_is_refused_naming_the_upsampler(name, scale):
    with pytest.raises(ValueError, match=rf"{name}: scale_factor must be"):
        build(name, 4, 4, scale)


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("bilinear", {"align_corners": "yes"}, r"bilinear: align_corners must be true or false"),
        ("transposed", {"kernel_size": 0}, r"transposed: kernel_size must be a positive integer"),
        ("transposed", {"padding": -1}, r"transposed: padding must be an integer >= 0"),
        ("transposed", {"bias": 0}, r"transposed: bias must be true or false, got 0"),
        ("upsample_conv", {"mode": "area"}, r"upsample_conv: mode must be one of 'nearest', 'bilinear', 'bicubic'"),
        ("pixel_shuffle", {"kernel_size": 2}, r"pixel_shuffle: kernel_size must be odd"),
        ("pixel_shuffle", {"icnr": 1}, r"pixel_shuffle: icnr must be true or false"),
    ],
)
def test_invalid_parameters_name_the_upsampler_the_parameter_and_what_is_valid(name, params, message):
    with pytest.raises(ValueError, match=message):
        build(name, 4, 4, 2, **params)
