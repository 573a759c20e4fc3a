"""DySample's sampling grid on CUDA: with zero offsets DySample is bilinear upsampling
(align_corners=False), in fp32 to rounding and under bf16 autocast to bf16 rounding, on
the map sizes where bf16 pixel coordinates would be half a pixel off (160 px: the
coco-voc20 suite's decoder; 256 px: the upsampler contract's map). The CPU cases are in
test_upsamplers (160 px) and the contract (256 px against fp32)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from test_upsamplers import build, zero_offsets

pytestmark = pytest.mark.gpu
BF16_TOLERANCE = 0.02  # of the output's largest value, as the upsampler contract


def _upsampler(style, channels, scale):
    return zero_offsets(build("dysample", channels, channels, scale, style=style)).cuda().eval()


def _input(channels, size, dtype):
    generator = torch.Generator(device="cuda").manual_seed(0)
    return torch.randn(1, channels, size, size, device="cuda", generator=generator).to(dtype)


@pytest.mark.parametrize("size", [160, 256])
@pytest.mark.parametrize("style, channels, scale", [("lp", 8, 2), ("pl", 16, 2), ("lp", 8, 4)])
def test_zero_offsets_are_bilinear_under_bf16_autocast(size, style, channels, scale):
    upsampler = _upsampler(style, channels, scale)
    x = _input(channels, size, torch.bfloat16)  # as the layer before hands it over
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        sampled = upsampler(x).float()
        expected = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False).float()
    assert sampled.shape == expected.shape == (1, channels, scale * size, scale * size)
    error = ((sampled - expected).abs().max() / expected.abs().max()).item()
    assert error <= BF16_TOLERANCE, f"bf16 DySample off bilinear by {error:.3f} of the output's range"


@pytest.mark.parametrize("size", [160, 256])
def test_zero_offsets_are_bilinear_in_fp32(size):
    upsampler = _upsampler("lp", 8, 2)
    x = _input(8, size, torch.float32)
    with torch.no_grad():
        sampled = upsampler(x)
        expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(sampled, expected, atol=1e-4, rtol=1e-4)
