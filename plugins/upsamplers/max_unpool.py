"""Max unpooling with the encoder's pooling indices (SegNet).

Badrinarayanan, Kendall and Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder
Architecture for Image Segmentation", TPAMI 2017: each value goes back to the position
its 2x2 max-pool took it from, the other three positions of the cell get zero. The
indices come from the architecture (capability ``pool_indices``): it calls
``upsampler(x, indices)`` because the module has ``takes_pool_indices = True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .validation import check_scale_factor

NAME = "max_unpool"
POOL_SCALE = 2  # the 2x2, stride-2 max-pool whose indices this inverts


class MaxUnpool(nn.Module):
    """``F.max_unpool2d`` by 2 with given pool indices, then a 1x1 conv if channels change."""

    takes_pool_indices = True

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        # Projecting after unpooling: each channel's indices differ, so a 1x1 conv does
        # not commute with the unpooling.
        self.project = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None = None, output_size=None) -> torch.Tensor:
        """``indices``: from ``F.max_pool2d(feature, 2, 2, return_indices=True)``, shaped like ``x``.

        They are flat positions in the pooled feature's (H_f, W_f) grid; by default that
        grid is (2H, 2W), else pass ``output_size`` = (H_f, W_f).
        """
        if indices is None:
            raise TypeError(
                f"{NAME} needs the 2x2 max-pool indices: call it as upsampler(x, indices), from an "
                "architecture that provides pool_indices (e.g. segnet)"
            )
        if indices.shape != x.shape:
            raise ValueError(f"{NAME}: indices of shape {tuple(indices.shape)} must match the input's {tuple(x.shape)}")
        height, width = x.shape[-2:]
        size = (POOL_SCALE * height, POOL_SCALE * width) if output_size is None else tuple(output_size)[-2:]
        unpooled = F.max_unpool2d(x, indices, POOL_SCALE, POOL_SCALE, output_size=size)
        return self.project(unpooled)


def max_unpool(in_channels: int, out_channels: int, scale_factor: int) -> MaxUnpool:
    """Max unpooling with the encoder's 2x2 pool indices (SegNet); x2 only, needs pool_indices.

    Called as ``upsampler(x, indices)`` by architectures that provide ``pool_indices``
    (segnet). Each value returns to the position of its pooled maximum, zeros elsewhere;
    a 1x1 convolution follows when ``in_channels != out_channels``.
    """
    check_scale_factor(NAME, scale_factor)
    if scale_factor != POOL_SCALE:
        raise ValueError(
            f"{NAME}: scale_factor must be {POOL_SCALE} to match a 2x2, stride-2 max-pool, got {scale_factor}"
        )
    return MaxUnpool(in_channels, out_channels)
