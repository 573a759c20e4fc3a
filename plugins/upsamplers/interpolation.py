"""Parameter-free upsamplers: ``F.interpolate`` in the nearest, nearest-exact, bilinear and
bicubic modes.

Each returns an ``Interpolate`` module (with ``mode`` and ``align_corners`` attributes,
which ready architectures read to configure their own decoders) when the channels are
preserved, and a 1x1 convolution followed by the interpolation when they change.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .validation import check_bool, check_scale_factor


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


def interpolating_upsampler(
    upsampler: str, in_channels: int, out_channels: int, scale_factor: int, mode: str, align_corners=None
) -> nn.Module:
    """``Interpolate``, preceded by a 1x1 conv when the channel count changes."""
    check_scale_factor(upsampler, scale_factor)
    if align_corners is not None:
        check_bool(upsampler, "align_corners", align_corners)
    upsample = Interpolate(scale_factor, mode, align_corners)
    if in_channels == out_channels:
        return upsample
    # Every mode here is linear with weights summing to one per output pixel, so a 1x1
    # conv (bias included) commutes with it: projecting first is equivalent and s^2
    # times cheaper.
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1), upsample)


def nearest(in_channels: int, out_channels: int, scale_factor: int) -> nn.Module:
    """Nearest-neighbour interpolation (no parameters; 1x1 conv if channels change).

    Each output pixel copies its nearest input pixel (``F.interpolate`` mode "nearest",
    which picks input index floor(o / s)). When ``in_channels != out_channels`` a 1x1
    convolution maps the channels before interpolating.
    """
    return interpolating_upsampler("nearest", in_channels, out_channels, scale_factor, "nearest")


def nearest_exact(in_channels: int, out_channels: int, scale_factor: int) -> nn.Module:
    """Nearest-neighbour interpolation, pixel-centre aligned (F.interpolate "nearest-exact").

    Picks input index floor((o + 0.5) / s), the pixel whose centre is nearest: the
    rounding PIL and scikit-image use. For integer scale factors it equals "nearest".
    When ``in_channels != out_channels`` a 1x1 convolution maps the channels first.
    """
    return interpolating_upsampler("nearest_exact", in_channels, out_channels, scale_factor, "nearest-exact")


def bilinear(in_channels: int, out_channels: int, scale_factor: int, *, align_corners: bool = False) -> nn.Module:
    """Bilinear interpolation (no parameters; 1x1 conv if channels change).

    ``align_corners`` is passed to ``F.interpolate``. When ``in_channels !=
    out_channels`` a 1x1 convolution maps the channels before interpolating.
    """
    return interpolating_upsampler("bilinear", in_channels, out_channels, scale_factor, "bilinear", align_corners)


def bicubic(in_channels: int, out_channels: int, scale_factor: int, *, align_corners: bool = False) -> nn.Module:
    """Bicubic interpolation (no parameters; 1x1 conv if channels change).

    Cubic convolution over a 4x4 neighbourhood (``F.interpolate`` mode "bicubic"); sharper
    than bilinear and may overshoot the input range. ``align_corners`` is passed to
    ``F.interpolate``. When ``in_channels != out_channels`` a 1x1 convolution maps the
    channels before interpolating.
    """
    return interpolating_upsampler("bicubic", in_channels, out_channels, scale_factor, "bicubic", align_corners)
