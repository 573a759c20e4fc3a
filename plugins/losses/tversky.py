"""Tversky loss (Salehi et al., 2017) and its focal variant, from segmentation_models_pytorch."""

from __future__ import annotations

from torch import nn

from .targets import ZeroWhenAllIgnored, check_mode


def tversky_loss(
    mode: str, num_classes: int, ignore_index: int, *, alpha: float = 0.5, beta: float = 0.5, gamma: float = 1.0
) -> nn.Module:
    """Tversky loss: 1 - TP / (TP + alpha FP + beta FN), averaged over classes, to the gamma.

    ``alpha`` weighs false positives, ``beta`` false negatives; alpha = beta = 0.5 is the
    Dice loss. ``gamma`` != 1 gives the focal Tversky loss (mean over classes)^gamma.
    Probabilities and pooling are as for ``dice``: ignored pixels are masked out, and a
    class with no true pixels in the batch contributes 0.
    """
    check_mode("tversky", mode)
    if alpha < 0 or beta < 0 or alpha + beta == 0:
        raise ValueError(f"tversky: alpha and beta must be >= 0 and not both 0, got alpha={alpha}, beta={beta}")
    if gamma <= 0:
        raise ValueError(f"tversky: gamma must be > 0, got {gamma}")
    from segmentation_models_pytorch.losses import TverskyLoss  # heavy: import on build

    loss = TverskyLoss(mode, alpha=alpha, beta=beta, gamma=gamma, ignore_index=ignore_index)
    # With gamma < 1 the derivative of x^gamma is infinite at 0, the value of an
    # all-ignored batch: its gradient would be NaN rather than 0.
    return ZeroWhenAllIgnored(loss, ignore_index) if gamma < 1 else loss
