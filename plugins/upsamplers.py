"""Standard upsamplers: nearest and bilinear interpolation, and transposed convolution.

Every factory is called as ``factory(in_channels, out_channels, scale_factor, **params)``
and returns a module mapping (N, C_in, H, W) to (N, C_out, s*H, s*W).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from segbench.hookspecs import hookimpl

from .capabilities import MODULE, interpolate


@hookimpl
def segbench_upsamplers(register):
    register.add_upsampler("nearest", nearest, requires=[interpolate("nearest")])
    register.add_upsampler("bilinear", bilinear, requires=[interpolate("bilinear")])
    register.add_upsampler("transposed", transposed, requires=[MODULE])


# --- interpolation -----------------------------------------------------------------


class Interpolate(nn.Module):
    """``F.interpolate`` by a fixed scale factor, as a module (no parameters)."""

    def __init__(self, scale_factor: int, mode: str, align_corners: bool | None = None):
        super().__init__()
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners)

    def extra_repr(self):
        extra = f", align_corners={self.align_corners}" if self.align_corners is not None else ""
        return f"scale_factor={self.scale_factor}, mode={self.mode!r}{extra}"


def _interpolation(in_channels, out_channels, scale_factor, mode, align_corners=None) -> nn.Module:
    _check_scale(scale_factor)
    upsample = Interpolate(scale_factor, mode, align_corners)
    if in_channels == out_channels:
        return upsample
    # A 1x1 conv commutes with nearest and bilinear interpolation (both are convex
    # combinations of input pixels), so projecting first is equivalent and s^2 times cheaper.
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1), upsample)


def nearest(in_channels: int, out_channels: int, scale_factor: int) -> nn.Module:
    """Nearest-neighbour interpolation (no parameters; 1x1 conv if channels change).

    Each output pixel copies its nearest input pixel. When ``in_channels !=
    out_channels`` a 1x1 convolution maps the channels before interpolating.
    """
    return _interpolation(in_channels, out_channels, scale_factor, "nearest")


def bilinear(in_channels: int, out_channels: int, scale_factor: int, *, align_corners: bool = False) -> nn.Module:
    """Bilinear interpolation (no parameters; 1x1 conv if channels change).

    ``align_corners`` is passed to ``F.interpolate``. When ``in_channels !=
    out_channels`` a 1x1 convolution maps the channels before interpolating.
    """
    return _interpolation(in_channels, out_channels, scale_factor, "bilinear", align_corners)


# --- transposed convolution ----------------------------------------------------------


def transposed(
    in_channels: int,
    out_channels: int,
    scale_factor: int,
    *,
    kernel_size: int = 4,
    bilinear_init: bool = False,
) -> nn.Module:
    """Learned transposed convolution (stride = scale factor, padding derived from the kernel).

    The stride is the scale factor; padding and output padding are chosen so the output
    is exactly ``scale_factor`` times the input (kernel 4 gives stride 2, padding 1).
    ``kernel_size`` must be at least the scale factor. ``bilinear_init`` starts the
    weights as bilinear interpolation (FCN-style) on the first ``min(in, out)`` channels,
    zero elsewhere, with zero bias; otherwise PyTorch's default initialisation is used.
    """
    _check_scale(scale_factor)
    padding, output_padding = transposed_padding(kernel_size, scale_factor)
    conv = nn.ConvTranspose2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=scale_factor,
        padding=padding,
        output_padding=output_padding,
    )
    if bilinear_init:
        init_bilinear_(conv)
    return conv


def transposed_padding(kernel_size: int, stride: int) -> tuple[int, int]:
    """(padding, output_padding) that make a transposed conv output exactly stride * H.

    Output size is (H - 1) * stride - 2 * padding + kernel_size + output_padding, so we
    need kernel_size - 2 * padding + output_padding == stride.
    """
    if kernel_size < stride:
        raise ValueError(f"transposed: kernel_size {kernel_size} must be >= the scale factor {stride}")
    padding = math.ceil((kernel_size - stride) / 2)
    output_padding = stride - kernel_size + 2 * padding
    if output_padding >= stride:  # only when stride is 1 and the kernel is even
        raise ValueError(f"transposed: kernel_size {kernel_size} must be odd for scale factor {stride}")
    return padding, output_padding


@torch.no_grad()
def init_bilinear_(conv: nn.ConvTranspose2d) -> None:
    """Set ``conv`` to bilinear interpolation from channel c to channel c (FCN-style)."""
    kernel_1d = bilinear_kernel_1d(conv.kernel_size[0], conv.stride[0], conv.padding[0])
    kernel = torch.outer(kernel_1d, kernel_1d)
    conv.weight.zero_()  # weight shape: (in_channels, out_channels, k, k)
    for channel in range(min(conv.in_channels, conv.out_channels)):
        conv.weight[channel, channel] = kernel
    if conv.bias is not None:
        conv.bias.zero_()


def bilinear_kernel_1d(kernel_size: int, stride: int, padding: int) -> torch.Tensor:
    """Tent weights of bilinear upsampling by ``stride`` for one transposed-conv tap row.

    Tap t of input pixel i lands on output o = stride * i + t - padding; the input pixel's
    centre sits at output coordinate stride * i + (stride - 1) / 2 (align_corners=False).
    Weights are renormalised per output phase (t mod stride) so every output pixel is a
    convex combination even when the kernel is too short for exact bilinear weights
    (kernel 2, stride 2 gives nearest-neighbour).
    """
    centre = padding + (stride - 1) / 2
    taps = torch.arange(kernel_size, dtype=torch.float64)
    weights = (1 - (taps - centre).abs() / stride).clamp(min=0)
    for phase in range(stride):
        total = weights[phase::stride].sum()
        if total > 0:
            weights[phase::stride] /= total
    return weights.float()


def _check_scale(scale_factor) -> None:
    if isinstance(scale_factor, bool) or not isinstance(scale_factor, int) or scale_factor < 1:
        raise ValueError(f"scale_factor must be a positive integer, got {scale_factor!r}")
