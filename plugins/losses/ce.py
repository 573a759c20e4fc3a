"""Cross-entropy: softmax CE in multiclass mode, BCE with logits in binary mode."""

from __future__ import annotations

from torch import nn

from .targets import check_mode, dense_targets


class CrossEntropy(nn.Module):
    """Softmax cross-entropy averaged over the non-ignored pixels (0 if all are ignored)."""

    def __init__(self, ignore_index: int, label_smoothing: float = 0.0):
        super().__init__()
        self.ignore_index = ignore_index
        self.ce = nn.CrossEntropyLoss(ignore_index=ignore_index, reduction="sum", label_smoothing=label_smoothing)

    def forward(self, logits, target):
        # Sum / count equals torch's "mean" but gives 0 instead of NaN for an all-ignored batch.
        valid_pixels = (target != self.ignore_index).sum()
        return self.ce(logits, target.long()) / valid_pixels.clamp(min=1)


class MaskedBCEWithLogits(nn.Module):
    """BCE with logits per channel, averaged over the non-ignored pixels and channels.

    Binary mode: one logit channel against the 0/1 mask. Multiclass mode: one sigmoid per
    class against one-hot targets. Ignored pixels contribute neither to the sum nor to
    the count (0 if all pixels are ignored).
    """

    def __init__(self, mode: str, ignore_index: int, smooth_factor: float | None = None):
        super().__init__()
        self.mode = mode
        self.ignore_index = ignore_index
        from segmentation_models_pytorch.losses import SoftBCEWithLogitsLoss  # heavy: import on build

        self.bce = SoftBCEWithLogitsLoss(reduction="none", ignore_index=None, smooth_factor=smooth_factor)

    def forward(self, logits, target):
        valid = target != self.ignore_index
        per_element = self.bce(logits, dense_targets(target, valid, logits.shape[1], self.mode))
        mask = valid.unsqueeze(1).type_as(per_element)
        scored = mask.sum() * logits.shape[1]
        return (per_element * mask).sum() / scored.clamp(min=1)


def cross_entropy_loss(
    mode: str, num_classes: int, ignore_index: int, *, label_smoothing: float = 0.0
) -> nn.Module:
    """Cross-entropy (multiclass) or binary cross-entropy with logits (binary).

    Averaged over the pixels whose target is not ``ignore_index``. ``label_smoothing``
    follows ``torch.nn.CrossEntropyLoss``: targets become (1 - e) one-hot + e / K; in
    binary mode that is 1 - e/2 and e/2.
    """
    check_mode("ce", mode)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"ce: label_smoothing must be in [0, 1], got {label_smoothing}")
    if mode == "binary":
        return MaskedBCEWithLogits(mode, ignore_index, smooth_factor=label_smoothing / 2 or None)
    return CrossEntropy(ignore_index, label_smoothing)
