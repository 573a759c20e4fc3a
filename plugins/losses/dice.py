"""Dice loss: 1 - soft Dice coefficient, from segmentation_models_pytorch."""

from __future__ import annotations

from torch import nn

from .targets import check_mode


def dice_loss(
    mode: str, num_classes: int, ignore_index: int, *, smooth: float = 0.0, log_loss: bool = False
) -> nn.Module:
    """Soft Dice loss (1 - Dice, or -log Dice with log_loss), averaged over classes.

    Probabilities are softmax (multiclass) or sigmoid (binary, multilabel) of the
    logits, pooled over the batch. Ignored pixels are masked out of prediction and
    target. As in segmentation_models_pytorch, a class (multilabel: a channel) with no
    true pixels in the batch contributes 0.
    """
    check_mode("dice", mode)
    from segmentation_models_pytorch.losses import DiceLoss  # heavy: import on build

    return DiceLoss(mode, ignore_index=ignore_index, smooth=smooth, log_loss=log_loss)
