"""Compound losses: weighted sums of other losses."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .ce import MaskedBCEWithLogits
from .dice import dice_loss
from .targets import check_mode


class WeightedSum(nn.Module):
    """sum_i weight_i * loss_i(logits, target) over (weight, loss) pairs."""

    def __init__(self, terms: Sequence[tuple[float, nn.Module]]):
        super().__init__()
        if not terms:
            raise ValueError("WeightedSum needs at least one (weight, loss) term")
        self.weights = [float(weight) for weight, _ in terms]
        self.losses = nn.ModuleList(loss for _, loss in terms)

    def forward(self, logits, target):
        return sum(weight * loss(logits, target) for weight, loss in zip(self.weights, self.losses, strict=True))

    def extra_repr(self):
        return f"weights={self.weights}"


def bce_dice_loss(mode: str, num_classes: int, ignore_index: int, *, beta: float = 0.5) -> WeightedSum:
    """beta * Dice + (1 - beta) * BCE: a region term plus a per-pixel distribution term.

    Dice is the ``dice`` loss. BCE is binary cross-entropy with logits on the single
    channel (binary) or on one-hot targets per class (multiclass), averaged over the
    non-ignored pixels.
    """
    check_mode("bce_dice", mode)
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"bce_dice: beta must be in [0, 1], got {beta}")
    region = dice_loss(mode, num_classes, ignore_index)
    distribution = MaskedBCEWithLogits(mode, ignore_index)
    return WeightedSum([(beta, region), (1.0 - beta, distribution)])
