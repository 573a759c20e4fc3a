"""DeepLabV3+ decoder (Chen et al., "Encoder-Decoder with Atrous Separable Convolution for
Semantic Image Segmentation", ECCV 2018): ASPP on the deepest feature, upsampled to
stride 4 and fused with a reduced low-level feature.

ASPP (atrous spatial pyramid pooling, Chen et al., "Rethinking Atrous Convolution", 2017):
parallel branches on the encoder output (a 1x1 conv, one 3x3 conv per atrous rate, and
image pooling), concatenated and projected by a 1x1 conv. Plain (not depthwise-separable)
convolutions throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..base import conv_bn_relu, upsample_to

LOW_LEVEL_CHANNELS = 48  # the paper's reduction of the stride-4 feature
LOW_LEVEL_INDEX = 2  # encoder feature 2: stride 4


class PooledBatchNorm(nn.BatchNorm2d):
    """BatchNorm for the image-pooling branch, whose maps are 1x1.

    Training on a single image leaves one value per channel, which BatchNorm cannot
    normalise (PyTorch raises); that batch is then normalised with the running statistics,
    as in eval mode, and does not update them. Batches of 2 or more train normally.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] * x.shape[-2] * x.shape[-1] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class ImagePooling(nn.Module):
    """Global average pool, 1x1 conv, BN, ReLU, broadcast back to the input's size.

    The broadcast of a 1x1 map (what bilinear upsampling of it gives) adds no spatial
    detail, so it is not an upsampling the suite's upsampler should do.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.norm = PooledBatchNorm(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.relu(self.norm(self.conv(F.adaptive_avg_pool2d(x, 1))))
        return pooled.expand(-1, -1, *x.shape[-2:])


def atrous_conv(in_channels: int, out_channels: int, rate: int) -> nn.Sequential:
    """3x3 conv with dilation ``rate`` (padding keeps the size), BN, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=rate, dilation=rate, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ASPP(nn.Module):
    """1x1 conv + one atrous 3x3 conv per rate + image pooling, concatenated, 1x1 projection."""

    def __init__(self, in_channels: int, out_channels: int, atrous_rates: Sequence[int]):
        super().__init__()
        self.branches = nn.ModuleList(
            [
                conv_bn_relu(in_channels, out_channels, kernel_size=1),
                *(atrous_conv(in_channels, out_channels, rate) for rate in atrous_rates),
                ImagePooling(in_channels, out_channels),
            ]
        )
        self.project = conv_bn_relu(out_channels * len(self.branches), out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class DeepLabV3PlusDecoder(nn.Module):
    """ASPP -> upsample to stride 4 -> concat the reduced stride-4 feature -> two 3x3 convs."""

    def __init__(
        self,
        encoder_channels: Sequence[int],
        make_upsampler: Callable[[int, int, int], nn.Module],
        output_stride: int = 16,
        atrous_rates: Sequence[int] = (6, 12, 18),
        aspp_channels: int = 256,
    ):
        super().__init__()
        self.aspp = ASPP(encoder_channels[-1], aspp_channels, atrous_rates)
        self.upsample = make_upsampler(aspp_channels, aspp_channels, output_stride // 4)
        self.reduce_low_level = conv_bn_relu(encoder_channels[LOW_LEVEL_INDEX], LOW_LEVEL_CHANNELS, kernel_size=1)
        self.fuse = nn.Sequential(
            conv_bn_relu(aspp_channels + LOW_LEVEL_CHANNELS, aspp_channels),
            conv_bn_relu(aspp_channels, aspp_channels),
        )

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        low_level = features[LOW_LEVEL_INDEX]
        context = upsample_to(self.upsample, self.aspp(features[-1]), low_level.shape[-2:])
        return self.fuse(torch.cat([context, self.reduce_low_level(low_level)], dim=1))
