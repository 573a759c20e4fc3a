"""Sub-pixel convolution with ICNR initialisation.

Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network", CVPR 2016: a convolution at the input resolution
predicts s^2 values per output channel, which ``nn.PixelShuffle`` rearranges into s x s
blocks. Aitken et al., "Checkerboard artifact free sub-pixel convolution" (arXiv:1707.02937,
2017): initialised independently, the s^2 sub-pixels of a block differ from the start and
paint checkerboards; ICNR gives them one shared kernel, so the initial output is a
nearest-neighbour upsampling of a convolution.
"""

from __future__ import annotations

import torch
from torch import nn

from .validation import check_bool, check_odd, check_scale_factor

NAME = "pixel_shuffle"


class SubPixelConv(nn.Module):
    """A 'same' convolution to ``out_channels * s**2`` channels, then ``nn.PixelShuffle(s)``."""

    def __init__(self, in_channels: int, out_channels: int, scale_factor: int, kernel_size: int, icnr: bool):
        super().__init__()
        channels = out_channels * scale_factor**2
        self.conv = nn.Conv2d(in_channels, channels, kernel_size, padding=kernel_size // 2)
        self.shuffle = nn.PixelShuffle(scale_factor)
        if icnr:
            icnr_(self.conv, scale_factor)

    def forward(self, x):
        return self.shuffle(self.conv(x))


@torch.no_grad()
def icnr_(conv: nn.Conv2d, scale_factor: int) -> None:
    """ICNR: one Kaiming-normal kernel per output channel, repeated for its s^2 sub-pixels.

    ``nn.PixelShuffle`` reads channel ``c * s**2 + i * s + j`` into sub-pixel (i, j) of
    output channel c, so repeating each kernel s^2 times consecutively gives every
    sub-pixel of a block the same value. The bias is zeroed for the same reason.
    """
    sub_pixels = scale_factor**2
    out_channels = conv.out_channels // sub_pixels
    kernel = torch.empty(out_channels, *conv.weight.shape[1:])
    nn.init.kaiming_normal_(kernel)
    conv.weight.copy_(kernel.repeat_interleave(sub_pixels, dim=0))
    if conv.bias is not None:
        conv.bias.zero_()


def pixel_shuffle(
    in_channels: int, out_channels: int, scale_factor: int, *, kernel_size: int = 3, icnr: bool = True
) -> SubPixelConv:
    """Sub-pixel convolution (Shi et al., 2016): conv to C_out*s^2 channels, then PixelShuffle(s).

    ``kernel_size`` (odd) is the convolution's, at the input resolution. ``icnr`` starts
    all s^2 sub-pixels of a block from one shared kernel with zero bias (Aitken et al.,
    2017), so the initial output is checkerboard-free; false keeps PyTorch's default init.
    """
    check_scale_factor(NAME, scale_factor)
    check_odd(NAME, "kernel_size", kernel_size)
    check_bool(NAME, "icnr", icnr)
    return SubPixelConv(in_channels, out_channels, scale_factor, kernel_size, icnr)
