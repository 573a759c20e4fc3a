"""SegNet with a pluggable upsampler: an smp encoder and a mirrored decoder that can
max-unpool with the encoder's pooling indices.

Badrinarayanan, Kendall and Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder
Architecture for Image Segmentation", TPAMI 2017 (arXiv:1511.00561).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ...capabilities import PLUGGABLE, POOL_INDICES
from ..base import SegmentationModel, check_int, make_encoder
from .decoder import SegNetDecoder


class SegNet(SegmentationModel):
    """SegNet (Badrinarayanan et al., 2017) on a segmentation_models_pytorch encoder.

    Provides ``pool_indices``: an upsampler with ``takes_pool_indices = True`` is called
    as ``upsample(x, indices)``, the indices of a 2x2 max-pool over the encoder feature
    at the target level (see ``segnet/decoder.py``).
    """

    provides = PLUGGABLE | {POOL_INDICES}


def build_segnet(
    out_channels: int,
    make_upsampler: Callable[[int, int, int], nn.Module],
    *,
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    depth: int = 5,
) -> SegNet:
    """SegNet: a mirrored decoder without skips that can max-unpool with pool indices.

    ``depth`` decoder stages (5, as in the paper, unless set), each: 3x3 conv block to the next finer encoder level's width
    C, make_upsampler(C, C, 2) (called with pool indices when the upsampler takes them),
    3x3 conv block; then a 1x1 class head at full resolution. A ``vgg*_bn`` encoder gives
    true SegNet indices (its own max-pools); others give the argmax of a 2x2 max-pool
    over their feature at each level. ``encoder`` is any segmentation_models_pytorch
    encoder name; ``encoder_weights`` is None (random init, nothing downloads), a
    pretrained name such as "imagenet" or a path to a .pth/.safetensors state dict.
    SegNet decodes through its bottleneck alone, so at small inputs a shallower ``depth``
    keeps that map from shrinking to 2x2 (the paper's is 15x11 at 480x360).
    """
    check_int("segnet", "depth", depth)
    backbone = make_encoder(encoder, depth=depth, weights=encoder_weights)
    _check_levels(encoder, backbone.out_channels)
    decoder = SegNetDecoder(backbone.out_channels, make_upsampler)
    head = nn.Conv2d(decoder.out_channels, out_channels, kernel_size=1)
    return SegNet(backbone, decoder, head)


def _check_levels(encoder: str, encoder_channels) -> None:
    empty = [stride for stride, channels in zip((1, 2, 4, 8, 16, 32), encoder_channels) if channels == 0]
    if empty:
        raise ValueError(
            f"segnet: encoder {encoder!r} has no feature at stride {empty[0]} (0 channels), "
            "and SegNet decodes through every level; choose another encoder"
        )
