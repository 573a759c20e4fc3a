"""Light encoders for CPU-sized experiments, beside segmentation_models_pytorch's.

``lite``: a VGG-style encoder (two 3x3 conv-BN-ReLU per stage, 2x2 max-pool between
stages) with 16 to 128 channels: about 0.4 M parameters at depth 5, against 11 M for
resnet18, so that a U-Net on 64 px images converges in a few CPU minutes. As in smp's VGG
encoders, feature ``i`` is the last activation at stride ``2**i`` (the input of the next
max-pool), so SegNet's max-unpooling gets the encoder's own pool indices.

``output_stride`` 16 or 8 replaces the last one or two max-pools by dilation (rates 2 and
4), as dilated ResNets do for DeepLab, keeping the feature list's length.
"""

from __future__ import annotations

import torch
from torch import nn

# name -> channels per stage (stride 1, 2, 4, ...); a suite picks the first depth + 1.
LIGHT_ENCODERS = {"lite": (16, 24, 32, 64, 96, 128)}


def conv_block(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Sequential:
    layers = []
    for channels_in in (in_channels, out_channels):
        layers += [nn.Conv2d(channels_in, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
                   nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class LightEncoder(nn.Module):
    """Stages of two 3x3 convs, a 2x2 max-pool before every stage but the first."""

    def __init__(self, channels, depth: int = 5, output_stride: int = 32):
        super().__init__()
        if depth + 1 > len(channels):
            raise ValueError(f"encoder lite: depth {depth} needs {depth + 1} stage widths, it has {len(channels)}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"encoder lite: output_stride must be 8, 16 or 32, got {output_stride!r}")
        self.out_channels = tuple(channels[: depth + 1])
        undilated = {32: depth, 16: depth - 1, 8: depth - 2}[output_stride]
        self.pools = [0 < stage <= undilated for stage in range(depth + 1)]
        dilations = [1 if stage <= undilated else 2 ** (stage - undilated) for stage in range(depth + 1)]
        widths = (3, *self.out_channels)
        self.stages = nn.ModuleList(conv_block(widths[i], widths[i + 1], dilations[i]) for i in range(depth + 1))
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> list:
        features = []
        for stage, pool in zip(self.stages, self.pools):
            x = stage(self.pool(x) if pool else x)
            features.append(x)
        return features


def light_encoder(name: str, depth: int, output_stride: int = 32) -> nn.Module | None:
    """The light encoder called ``name``, or None when it is not one (an smp name)."""
    channels = LIGHT_ENCODERS.get(name)
    return None if channels is None else LightEncoder(channels, depth, output_stride)
