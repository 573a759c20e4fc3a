"""U-Net with a pluggable upsampler: an smp encoder and a light decoder."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ...capabilities import PLUGGABLE
from ..base import SegmentationModel, check_bool, make_aux_head, make_encoder
from .decoder import UNetDecoder


class UNet(SegmentationModel):
    """U-Net (Ronneberger et al., 2015) on a segmentation_models_pytorch encoder."""

    provides = PLUGGABLE


def build_unet(
    out_channels: int,
    make_upsampler: Callable[[int, int, int], nn.Module],
    *,
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    decoder_channels: tuple[int, ...] | list[int] = (128, 64, 48, 32, 16),
    skip_connections: bool = True,
    aux_head: bool = False,
) -> UNet:
    """U-Net: encoder features fused by skip connections, the suite's upsampler at every level.

    ``encoder`` is any segmentation_models_pytorch encoder name. ``encoder_weights`` is
    None (random init, nothing downloads), a pretrained name such as "imagenet" (needs
    the Hugging Face cache or internet) or a path to a .pth/.safetensors state dict.
    ``decoder_channels`` gives one width per decoder block, deepest first; its length is
    the encoder depth (5 halvings for 5 widths). ``skip_connections=False`` drops the
    concatenation of encoder features (a plain encoder-decoder).
    ``aux_head = true`` adds mmsegmentation's auxiliary FCN head on the encoder's
    second-deepest feature, trained with ``[train] aux_weight`` and dropped at evaluation.
    """
    check_bool("unet", "aux_head", aux_head)
    decoder_channels = [int(c) for c in decoder_channels]
    backbone = make_encoder(encoder, depth=len(decoder_channels), weights=encoder_weights)
    decoder = UNetDecoder(backbone.out_channels, decoder_channels, make_upsampler, skip_connections)
    head = nn.Conv2d(decoder_channels[-1], out_channels, kernel_size=1)
    return UNet(backbone, decoder, head, make_aux_head(backbone, out_channels) if aux_head else None)
