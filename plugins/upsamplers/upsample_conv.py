"""Resize-convolution: interpolate, then a learned 3x3 convolution.

Odena, Dumoulin and Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016. A
transposed convolution whose kernel is not divisible by its stride overlaps unevenly and
paints checkerboards; resizing first and convolving after cannot, since every output
pixel sees the same kind of neighbourhood.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from torch import nn

from .interpolation import Interpolate
from .validation import check_choice, check_scale_factor

NAME = "upsample_conv"
MODES = ("nearest", "bilinear", "bicubic")


def upsample_conv(
    in_channels: int,
    out_channels: int,
    scale_factor: int,
    *,
    mode: Literal["nearest", "bilinear", "bicubic"] = "nearest",
) -> nn.Sequential:
    """Resize-convolution (Odena et al., 2016): interpolate, then a 3x3 conv; no checkerboards.

    ``mode`` is the interpolation, "nearest" (as in the paper), "bilinear" or "bicubic"
    (both with align_corners=False). The 3x3 convolution (padding 1) maps in_channels
    to out_channels at the output resolution.
    """
    check_scale_factor(NAME, scale_factor)
    check_choice(NAME, "mode", mode, MODES)
    align_corners = None if mode == "nearest" else False
    return nn.Sequential(
        OrderedDict(
            upsample=Interpolate(scale_factor, mode, align_corners),
            conv=nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        )
    )
