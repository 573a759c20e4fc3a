"""U-Net decoder: at every level, upsample x2, concatenate the skip, two 3x3 convs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..base import conv_bn_relu, match_size


class UNetDecoderBlock(nn.Module):
    """upsample (channel-preserving) -> concat skip (if any) -> 2 x (3x3 conv, BN, ReLU)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, upsample: nn.Module):
        super().__init__()
        self.upsample = upsample
        self.conv1 = conv_bn_relu(in_channels + skip_channels, out_channels)
        self.conv2 = conv_bn_relu(out_channels, out_channels)

    def forward(self, x, target_size, skip: torch.Tensor | None = None):
        x = match_size(self.upsample(x), target_size)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNetDecoder(nn.Module):
    """Decodes encoder features [input, stride 2, ..., stride 2**depth] to full resolution.

    A 1x1 projection first reduces the deepest feature to ``decoder_channels[0]``; block
    i then upsamples by 2 with ``make_upsampler(c, c, 2)`` and fuses the encoder feature
    at that resolution. The last block reaches the input resolution and has no skip (the
    encoder's full-resolution "feature" is the image itself).
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        decoder_channels: Sequence[int],
        make_upsampler: Callable[[int, int, int], nn.Module],
        skip_connections: bool = True,
    ):
        super().__init__()
        depth = len(encoder_channels) - 1
        if len(decoder_channels) != depth:
            raise ValueError(
                f"unet: decoder_channels needs one width per encoder stage ({depth}), "
                f"got {len(decoder_channels)}: {list(decoder_channels)}"
            )
        self.skip_connections = skip_connections
        deepest_first = list(encoder_channels[1:])[::-1]  # drop the input image, start at the bottom
        skip_channels = deepest_first[1:] + [0] if skip_connections else [0] * depth
        in_channels = [decoder_channels[0], *decoder_channels[:-1]]

        self.project = conv_bn_relu(deepest_first[0], decoder_channels[0], kernel_size=1)
        self.blocks = nn.ModuleList(
            UNetDecoderBlock(c_in, c_skip, c_out, make_upsampler(c_in, c_in, 2))
            for c_in, c_skip, c_out in zip(in_channels, skip_channels, decoder_channels, strict=True)
        )

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        deepest_first = list(features)[::-1]
        sizes = [f.shape[-2:] for f in deepest_first[1:]]  # the resolution after each block
        skips = deepest_first[1:-1] if self.skip_connections else []
        x = self.project(deepest_first[0])
        for i, block in enumerate(self.blocks):
            x = block(x, sizes[i], skips[i] if i < len(skips) else None)
        return x
