"""FCN decoder (Long, Shelhamer and Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015): class scores on the deepest feature, refined by skip fusion.

FCN-32s scores only the stride-32 feature. FCN-16s upsamples those scores x2 and adds a
1x1 score of the stride-16 feature; FCN-8s repeats the step with the stride-8 feature.
The decoder returns the fused score map (stride 32, 16 or 8); the model upsamples it to
the input size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..base import conv_bn_relu, upsample_to

# How many finer encoder features each variant fuses (stride 16, then stride 8).
SKIP_FUSIONS = {"32s": 0, "16s": 1, "8s": 2}


def output_stride(variant: str) -> int:
    """The stride of the fused score map: 32 halved once per skip fusion."""
    return 32 // 2 ** SKIP_FUSIONS[variant]


class FCNDecoder(nn.Module):
    """Scores the deepest feature, then per skip: upsample x2, add the skip's 1x1 score.

    ``head_channels > 0`` puts a 3x3 conv block (conv, BN, ReLU) before the deepest
    score, a small stand-in for FCN's fc6/fc7 layers.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        num_classes: int,
        make_upsampler: Callable[[int, int, int], nn.Module],
        variant: str = "8s",
        head_channels: int = 0,
    ):
        super().__init__()
        deepest = encoder_channels[-1]
        self.block = conv_bn_relu(deepest, head_channels) if head_channels else nn.Identity()
        self.score = nn.Conv2d(head_channels or deepest, num_classes, kernel_size=1)
        fusions = SKIP_FUSIONS[variant]
        # Skip i fuses encoder feature -2 - i: stride 16, then stride 8.
        self.upsamples = nn.ModuleList(make_upsampler(num_classes, num_classes, 2) for _ in range(fusions))
        self.skip_scores = nn.ModuleList(
            nn.Conv2d(encoder_channels[-2 - i], num_classes, kernel_size=1) for i in range(fusions)
        )

    @torch.no_grad()
    def zero_scores_(self) -> None:
        """Zero every class-scoring layer, weights and biases, as FCN starts them: "random
        initialization [yields] neither better performance nor faster convergence"."""
        for score in (self.score, *self.skip_scores):
            score.weight.zero_()
            score.bias.zero_()

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        scores = self.score(self.block(features[-1]))
        for i, (upsample, skip_score) in enumerate(zip(self.upsamples, self.skip_scores, strict=True)):
            skip = features[-2 - i]
            scores = upsample_to(upsample, scores, skip.shape[-2:]) + skip_score(skip)
        return scores
