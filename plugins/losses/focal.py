"""Focal loss (Lin et al., 2017), from segmentation_models_pytorch."""

from __future__ import annotations

from torch import nn

from .targets import ZeroWhenAllIgnored, check_mode


def focal_loss(
    mode: str, num_classes: int, ignore_index: int, *, alpha: float | None = None, gamma: float = 2.0
) -> nn.Module:
    """Focal loss: sigmoid BCE scaled by (1 - p_t)^gamma, down-weighting easy pixels.

    As in segmentation_models_pytorch: binary mode scores the one logit channel;
    multiclass mode scores each class one-vs-all with a sigmoid and averages over the
    classes; multilabel mode scores every (pixel, channel) pair as one binary decision.
    Each is averaged over the non-ignored pixels (0 if all are ignored). ``alpha`` (in
    [0, 1]) weighs positives by alpha and negatives by 1 - alpha; None: no weighting.
    """
    check_mode("focal", mode)
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"focal: alpha must be in [0, 1] or unset, got {alpha}")
    if gamma < 0:
        raise ValueError(f"focal: gamma must be >= 0, got {gamma}")
    from segmentation_models_pytorch.losses import FocalLoss  # heavy: import on build

    # smp's multilabel path indexes each channel with the (N, C, H, W) ignore mask and
    # fails; its binary path flattens logits and targets alike, which is what multilabel needs.
    smp_mode = "binary" if mode == "multilabel" else mode
    return ZeroWhenAllIgnored(FocalLoss(smp_mode, alpha=alpha, gamma=gamma, ignore_index=ignore_index), ignore_index)
