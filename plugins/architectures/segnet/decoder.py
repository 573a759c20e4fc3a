"""SegNet decoder (Badrinarayanan, Kendall and Cipolla, "SegNet: A Deep Convolutional
Encoder-Decoder Architecture for Image Segmentation", TPAMI 2017): the encoder mirrored,
upsampling with the encoder's max-pooling indices, without skip connections.

Each decoder stage, deepest first: a 3x3 conv block to the width of the next finer encoder
level, the suite's x2 upsampling to that level's resolution, another 3x3 conv block.
When the upsampler takes pool indices (``takes_pool_indices = True``, e.g. max
unpooling) it is called as ``upsample(x, indices)`` with the indices of a 2x2, stride-2
max-pool over the encoder feature at the target level:

- with a ``vgg*_bn`` encoder, that feature is the input of the encoder's own 2x2
  max-pool, so these are exactly SegNet's stored argmax positions;
- with other encoders (which downsample by strided convs), they are the argmax of a 2x2
  max-pool over the encoder's feature at that level: where that feature peaks;
- the last step, stride 2 to stride 1, has no encoder feature to pool when the encoder's
  stride-1 output is the image itself (every smp encoder but VGG). Its indices come from
  a 2x2 max-pool over the image's channel mean (the brightest pixel of each 2x2 cell),
  shared by all channels. This needs no parameters: a learned stem would get no gradient,
  since pooling indices are not differentiable.

The pooled feature is first cropped or edge-padded to exactly twice the size (h, w) of
the map being upsampled, so odd sizes work whether the encoder rounds sizes up or down:
the indices are flat positions in that (2h, 2w) grid, what ``F.max_unpool2d`` expects
without ``output_size``. The upsampled map is then cropped back to the target level's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..base import conv_bn_relu, match_size

IMAGE_CHANNELS = 3


def takes_pool_indices(upsample: nn.Module) -> bool:
    return bool(getattr(upsample, "takes_pool_indices", False))


def pool_indices(feature: torch.Tensor, pooled_size) -> torch.Tensor:
    """Indices of a 2x2 stride-2 max-pool of ``feature`` resized to twice ``pooled_size``."""
    height, width = pooled_size
    feature = match_size(feature, (2 * height, 2 * width))
    return F.max_pool2d(feature, kernel_size=2, stride=2, return_indices=True)[1]


class SegNetStage(nn.Module):
    """conv block to the target width -> x2 upsample (with pool indices if taken) -> conv block."""

    def __init__(self, in_channels: int, out_channels: int, make_upsampler: Callable[[int, int, int], nn.Module]):
        super().__init__()
        self.reduce = conv_bn_relu(in_channels, out_channels)
        self.upsample = make_upsampler(out_channels, out_channels, 2)
        self.refine = conv_bn_relu(out_channels, out_channels)

    def forward(self, x: torch.Tensor, target_size, pool_source: torch.Tensor) -> torch.Tensor:
        """``pool_source``: the map whose 2x2 max-pool indices an unpooling upsampler gets
        (the target level's feature, or a one-channel map whose indices every channel shares)."""
        x = self.reduce(x)
        if takes_pool_indices(self.upsample):
            indices = pool_indices(pool_source, x.shape[-2:]).expand_as(x).contiguous()
            x = self.upsample(x, indices)
        else:
            x = self.upsample(x)
        return self.refine(match_size(x, target_size))


class SegNetDecoder(nn.Module):
    """Decodes encoder features [stride 1, 2, ..., 2**depth] back to stride 1.

    Stage widths mirror the encoder's: the stage reaching level i outputs that level's
    channel count. When the stride-1 "feature" is the image, the full-resolution width is
    the stride-2 level's.
    """

    def __init__(self, encoder_channels: Sequence[int], make_upsampler: Callable[[int, int, int], nn.Module]):
        super().__init__()
        self.image_first = image_is_first_feature(encoder_channels)
        widths = list(encoder_channels)
        if self.image_first:
            widths[0] = widths[1]
        self.out_channels = widths[0]
        # Stage for level L -> L - 1, deepest first.
        self.stages = nn.ModuleList(
            SegNetStage(widths[level], widths[level - 1], make_upsampler) for level in range(len(widths) - 1, 0, -1)
        )

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for stage, level in zip(self.stages, range(len(features) - 2, -1, -1), strict=True):
            target = features[level]
            x = stage(x, target.shape[-2:], self._pool_source(target, level))
        return x

    def _pool_source(self, target: torch.Tensor, level: int) -> torch.Tensor:
        if level == 0 and self.image_first:
            return target.mean(dim=1, keepdim=True)  # the image's channel mean
        return target


def image_is_first_feature(encoder_channels: Sequence[int]) -> bool:
    """smp encoders return the input image as feature 0, except VGG's (a 64-channel map)."""
    return encoder_channels[0] == IMAGE_CHANNELS
