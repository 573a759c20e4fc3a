"""FPN with a pluggable upsampler: an smp encoder, a feature pyramid and panoptic FPN's
semantic head.

Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017 (arXiv:1612.03144);
Kirillov et al., "Panoptic Feature Pyramid Networks", CVPR 2019 (arXiv:1901.02446).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ...capabilities import PLUGGABLE
from ..base import UpsampledLogitsModel, check_bool, check_int, make_aux_head, make_encoder
from .decoder import FPNDecoder


class FPN(UpsampledLogitsModel):
    """FPN with panoptic FPN's semantic head (Lin et al., 2017; Kirillov et al., 2019)."""

    provides = PLUGGABLE


def build_fpn(
    out_channels: int,
    make_upsampler: Callable[[int, int, int], nn.Module],
    *,
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    pyramid_channels: int = 128,
    segmentation_channels: int = 64,
    aux_head: bool = False,
) -> FPN:
    """FPN: a top-down feature pyramid, each level brought to stride 4 and summed (panoptic FPN).

    Every upsampling is the suite's upsampler: make_upsampler(P, P, 2) three times in the
    top-down pathway (P = ``pyramid_channels``), make_upsampler(S, S, 2) in each of the
    3 + 2 + 1 stages that bring the stride-32, -16 and -8 levels to stride 4 (S =
    ``segmentation_channels``), then make_upsampler(K, K, 4) on the class scores. ``encoder``
    is any segmentation_models_pytorch encoder name; ``encoder_weights`` is None (random
    init, nothing downloads), a pretrained name such as "imagenet" or a path to a
    .pth/.safetensors state dict.
    ``aux_head = true`` adds mmsegmentation's auxiliary FCN head on the encoder's
    second-deepest feature, trained with ``[train] aux_weight`` and dropped at evaluation.
    """
    check_bool("fpn", "aux_head", aux_head)
    check_int("fpn", "pyramid_channels", pyramid_channels)
    check_int("fpn", "segmentation_channels", segmentation_channels)
    backbone = make_encoder(encoder, depth=5, weights=encoder_weights)
    decoder = FPNDecoder(backbone.out_channels, make_upsampler, pyramid_channels, segmentation_channels)
    head = nn.Conv2d(segmentation_channels, out_channels, kernel_size=1)
    upsample = make_upsampler(out_channels, out_channels, 4)
    return FPN(backbone, decoder, head, upsample, make_aux_head(backbone, out_channels) if aux_head else None)
