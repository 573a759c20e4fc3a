"""FPN decoder: a feature pyramid (Lin et al., "Feature Pyramid Networks for Object
Detection", CVPR 2017) read by the semantic-segmentation branch of panoptic FPN
(Kirillov et al., "Panoptic Feature Pyramid Networks", CVPR 2019).

Pyramid: 1x1 lateral convs on the encoder features at strides 4, 8, 16 and 32; a
top-down pathway that upsamples x2 and adds the next lateral; a 3x3 conv smoothing each
merged map. Semantic branch: each level goes through as many "3x3 conv, BN, ReLU, x2
upsampling" stages as it takes to reach stride 4 (one plain conv at stride 4 itself),
and the four maps are summed. Panoptic FPN uses GroupNorm and bilinear upsampling; here
BatchNorm (as in the other standard decoders) and the suite's upsampler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..base import conv_bn_relu, upsample_to

PYRAMID_LEVELS = 4  # strides 4, 8, 16, 32: encoder features 2..5


class UpsamplingStage(nn.Module):
    """3x3 conv, BN, ReLU, then the suite's x2 upsampling (channel-preserving)."""

    def __init__(self, in_channels: int, out_channels: int, make_upsampler: Callable[[int, int, int], nn.Module]):
        super().__init__()
        self.conv = conv_bn_relu(in_channels, out_channels)
        self.upsample = make_upsampler(out_channels, out_channels, 2)

    def forward(self, x: torch.Tensor, size) -> torch.Tensor:
        return upsample_to(self.upsample, self.conv(x), size)


class SemanticBranch(nn.Module):
    """Brings one pyramid level to stride 4 in ``upsamplings`` stages (a 3x3 conv if none)."""

    def __init__(self, in_channels: int, out_channels: int, upsamplings: int, make_upsampler):
        super().__init__()
        widths = [in_channels] + [out_channels] * upsamplings
        self.stages = nn.ModuleList(UpsamplingStage(c, out_channels, make_upsampler) for c in widths[:-1])
        self.conv = None if upsamplings else conv_bn_relu(in_channels, out_channels)

    def forward(self, x: torch.Tensor, sizes: Sequence) -> torch.Tensor:
        """``sizes``: the size after each stage, i.e. of each finer pyramid level."""
        if self.conv is not None:
            return self.conv(x)
        for stage, size in zip(self.stages, sizes, strict=True):
            x = stage(x, size)
        return x


class FPNDecoder(nn.Module):
    """Encoder features -> pyramid -> summed semantic branches at stride 4."""

    def __init__(
        self,
        encoder_channels: Sequence[int],
        make_upsampler: Callable[[int, int, int], nn.Module],
        pyramid_channels: int = 128,
        segmentation_channels: int = 64,
    ):
        super().__init__()
        deepest_first = list(encoder_channels[-PYRAMID_LEVELS:])[::-1]
        self.laterals = nn.ModuleList(nn.Conv2d(c, pyramid_channels, kernel_size=1) for c in deepest_first)
        self.top_down = nn.ModuleList(
            make_upsampler(pyramid_channels, pyramid_channels, 2) for _ in range(PYRAMID_LEVELS - 1)
        )
        self.smooth = nn.ModuleList(
            nn.Conv2d(pyramid_channels, pyramid_channels, kernel_size=3, padding=1) for _ in range(PYRAMID_LEVELS)
        )
        # Level i (deepest first, stride 32 / 2**i) needs 3 - i x2 stages to reach stride 4.
        self.branches = nn.ModuleList(
            SemanticBranch(pyramid_channels, segmentation_channels, PYRAMID_LEVELS - 1 - i, make_upsampler)
            for i in range(PYRAMID_LEVELS)
        )

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        levels = list(features[-PYRAMID_LEVELS:])[::-1]  # strides 32, 16, 8, 4
        sizes = [level.shape[-2:] for level in levels]
        pyramid = self._smoothed_pyramid(levels)
        return sum(branch(p, sizes[i + 1 :]) for i, (branch, p) in enumerate(zip(self.branches, pyramid)))

    def _smoothed_pyramid(self, levels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        merged = [self.laterals[0](levels[0])]
        for lateral, upsample, level in zip(self.laterals[1:], self.top_down, levels[1:], strict=True):
            merged.append(lateral(level) + upsample_to(upsample, merged[-1], level.shape[-2:]))
        return [smooth(m) for smooth, m in zip(self.smooth, merged, strict=True)]
