"""Cross-entropy: softmax CE in multiclass mode, BCE with logits in binary and multilabel mode."""

from __future__ import annotations

from torch import nn

from .bce import MaskedBCEWithLogits, check_label_smoothing
from .targets import check_mode


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


def cross_entropy_loss(
    mode: str, num_classes: int, ignore_index: int, *, label_smoothing: float = 0.0
) -> nn.Module:
    """Cross-entropy (multiclass) or binary cross-entropy with logits (binary, multilabel).

    Averaged over the pixels whose target is not ``ignore_index``. ``label_smoothing``
    follows ``torch.nn.CrossEntropyLoss``: targets become (1 - e) one-hot + e / K; with
    one sigmoid per channel (binary, multilabel) that is 1 - e/2 and e/2.
    """
    check_mode("ce", mode)
    check_label_smoothing("ce", label_smoothing)
    if mode == "multiclass":
        return CrossEntropy(ignore_index, label_smoothing)
    return MaskedBCEWithLogits(mode, ignore_index, smooth_factor=label_smoothing / 2 or None)
