"""FCN with a pluggable upsampler: an smp encoder, FCN-32s, -16s or -8s skip fusion.

Long, Shelhamer and Darrell, "Fully Convolutional Networks for Semantic Segmentation",
CVPR 2015 (arXiv:1411.4038).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import nn

from ...capabilities import PLUGGABLE
from ...upsamplers.transposed import transposed
from ..base import UpsampledLogitsModel, check_bool, check_choice, check_int, make_aux_head, make_encoder
from .decoder import SKIP_FUSIONS, FCNDecoder, output_stride

FINAL_UPSAMPLINGS = ("suite", "fixed_bilinear")
SCORE_INITS = ("default", "zeros")


class FCN(UpsampledLogitsModel):
    """FCN (Long et al., 2015) on a segmentation_models_pytorch encoder.

    The decoder holds every class-scoring layer (one per fused level), so ``head`` is
    the identity; ``upsample`` brings the fused scores to the input size.
    """

    provides = PLUGGABLE


def build_fcn(
    out_channels: int,
    make_upsampler: Callable[[int, int, int], nn.Module],
    *,
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    variant: str = "8s",
    head_channels: int = 0,
    aux_head: bool = False,
    final_upsampling: Literal["suite", "fixed_bilinear"] = "suite",
    score_init: Literal["default", "zeros"] = "default",
) -> FCN:
    """FCN: class scores on the deepest feature, fused with stride-16/8 scores (skip fusion).

    ``variant`` is "32s" (score the stride-32 feature, one x32 upsampling to the input
    size), "16s" (x2, add the stride-16 feature's score, then x16) or "8s" (x2, +stride
    16, x2, +stride 8, then x8). Every upsampling is the suite's upsampler on K-channel
    score maps: make_upsampler(K, K, 2) per fusion, then make_upsampler(K, K, 32|16|8).
    ``head_channels > 0`` adds a 3x3 conv block of that width before the deepest score
    (0: score the encoder feature directly). ``encoder`` is any segmentation_models_pytorch
    encoder name; ``encoder_weights`` is None (random init, nothing downloads), a
    pretrained name such as "imagenet" or a path to a .pth/.safetensors state dict.
    ``aux_head = true`` adds mmsegmentation's auxiliary FCN head on the encoder's
    second-deepest feature, trained with ``[train] aux_weight`` and dropped at evaluation.

    As the paper trains it: ``final_upsampling = "fixed_bilinear"`` makes the last
    upsampling (x32, x16 or x8) a transposed convolution fixed to bilinear interpolation,
    without bias and never trained ("suite": the suite's upsampler, as the fusions use);
    ``score_init = "zeros"`` starts every class-scoring layer (the deepest score and the
    skip scores) at zero weights and biases.
    """
    check_bool("fcn", "aux_head", aux_head)
    check_choice("fcn", "variant", variant, tuple(SKIP_FUSIONS))
    check_int("fcn", "head_channels", head_channels, minimum=0)
    check_choice("fcn", "final_upsampling", final_upsampling, FINAL_UPSAMPLINGS)
    check_choice("fcn", "score_init", score_init, SCORE_INITS)
    backbone = make_encoder(encoder, depth=5, weights=encoder_weights)
    decoder = FCNDecoder(backbone.out_channels, out_channels, make_upsampler, variant, head_channels)
    if score_init == "zeros":
        decoder.zero_scores_()
    final_scale = output_stride(variant)
    if final_upsampling == "fixed_bilinear":
        upsample = fixed_bilinear(out_channels, final_scale)
    else:
        upsample = make_upsampler(out_channels, out_channels, final_scale)
    return FCN(backbone, decoder, nn.Identity(), upsample, make_aux_head(backbone, out_channels) if aux_head else None)


def fixed_bilinear(channels: int, scale_factor: int) -> nn.ConvTranspose2d:
    """FCN's final layer: a k = 2 x scale transposed convolution set to bilinear
    interpolation channel by channel, without bias, frozen (Caffe's lr_mult 0)."""
    return transposed(channels, channels, scale_factor, bilinear_init=True, bias=False).requires_grad_(False)
