"""DeepLabV3+ with a pluggable upsampler: a dilated smp encoder, ASPP and a light decoder.

Chen, Zhu, Papandreou, Schroff and Adam, "Encoder-Decoder with Atrous Separable
Convolution for Semantic Image Segmentation", ECCV 2018 (arXiv:1802.02611).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ...capabilities import PLUGGABLE
from ..base import UpsampledLogitsModel, check_bool, check_choice, check_int, make_aux_head, make_encoder
from .decoder import DeepLabV3PlusDecoder

OUTPUT_STRIDES = (8, 16)


class DeepLabV3Plus(UpsampledLogitsModel):
    """DeepLabV3+ (Chen et al., 2018) on a segmentation_models_pytorch encoder."""

    provides = PLUGGABLE


def build_deeplabv3plus(
    out_channels: int,
    make_upsampler: Callable[[int, int, int], nn.Module],
    *,
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    output_stride: int = 16,
    atrous_rates: tuple[int, ...] | list[int] = (6, 12, 18),
    aspp_channels: int = 256,
    aux_head: bool = False,
) -> DeepLabV3Plus:
    """DeepLabV3+: ASPP on a dilated encoder, fused with the stride-4 feature.

    ``output_stride`` (8 or 16) is the encoder's deepest stride; its last stages dilate
    instead of striding (encoders that downsample by max-pooling, such as VGG, cannot).
    ``atrous_rates`` are the ASPP's 3x3 dilations, used as given: the paper's [6, 12, 18]
    are for output stride 16 and it doubles them ([12, 24, 36]) at output stride 8.
    ``aspp_channels`` is the width of ASPP and decoder. Upsamplings, all the suite's:
    make_upsampler(C, C, output_stride // 4) from the ASPP output to stride 4 (C =
    ``aspp_channels``), then make_upsampler(K, K, 4) on the class scores. ``encoder`` is any
    segmentation_models_pytorch encoder name; ``encoder_weights`` is None (random init,
    nothing downloads), a pretrained name such as "imagenet" or a path to a
    .pth/.safetensors state dict.
    ``aux_head = true`` adds mmsegmentation's auxiliary FCN head on the encoder's
    second-deepest feature, trained with ``[train] aux_weight`` and dropped at evaluation.
    """
    check_bool("deeplabv3plus", "aux_head", aux_head)
    check_choice("deeplabv3plus", "output_stride", output_stride, OUTPUT_STRIDES)
    rates = _checked_rates(atrous_rates)
    check_int("deeplabv3plus", "aspp_channels", aspp_channels)
    backbone = make_encoder(encoder, depth=5, weights=encoder_weights, output_stride=output_stride)
    decoder = DeepLabV3PlusDecoder(backbone.out_channels, make_upsampler, output_stride, rates, aspp_channels)
    head = nn.Conv2d(aspp_channels, out_channels, kernel_size=1)
    upsample = make_upsampler(out_channels, out_channels, 4)
    return DeepLabV3Plus(backbone, decoder, head, upsample, make_aux_head(backbone, out_channels) if aux_head else None)


def _checked_rates(atrous_rates) -> list[int]:
    rates = list(atrous_rates) if isinstance(atrous_rates, (list, tuple)) else None
    valid = rates and all(isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in rates)
    if not valid:
        raise ValueError(
            f"deeplabv3plus: atrous_rates must be a non-empty list of positive integers "
            f"(e.g. [6, 12, 18] at output stride 16), got {atrous_rates!r}"
        )
    return rates
