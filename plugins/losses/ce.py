"""Cross-entropy: softmax CE in multiclass mode, BCE with logits in binary and multilabel mode."""

from __future__ import annotations

from torch import nn

from .bce import Average, MaskedBCEWithLogits, check_average, check_label_smoothing
from .targets import check_mode


class CrossEntropy(nn.Module):
    """Softmax cross-entropy summed over the non-ignored pixels, divided by their count
    (``average = "valid"``, 0 if all are ignored) or by every pixel's (``"all"``)."""

    def __init__(self, ignore_index: int, label_smoothing: float = 0.0, average: str = "valid"):
        super().__init__()
        self.ignore_index = ignore_index
        self.average = average
        self.ce = nn.CrossEntropyLoss(ignore_index=ignore_index, reduction="sum", label_smoothing=label_smoothing)

    def forward(self, logits, target):
        # "valid": torch's "mean", but 0 instead of NaN for an all-ignored batch.
        pixels = (target != self.ignore_index).sum().clamp(min=1) if self.average == "valid" else target.numel()
        return self.ce(logits, target.long()) / pixels


def cross_entropy_loss(
    mode: str, num_classes: int, ignore_index: int, *, label_smoothing: float = 0.0, average: Average = "valid"
) -> nn.Module:
    """Cross-entropy (multiclass) or binary cross-entropy with logits (binary, multilabel).

    ``average = "valid"`` averages over the pixels whose target is not ``ignore_index``;
    ``"all"`` over every pixel, the ignored ones counted as zeros (mmsegmentation's
    ``avg_non_ignore=False``, with which its published models were trained).
    ``label_smoothing`` follows ``torch.nn.CrossEntropyLoss``: targets become
    (1 - e) one-hot + e / K; with one sigmoid per channel (binary, multilabel) that is
    1 - e/2 and e/2.
    """
    check_mode("ce", mode)
    check_label_smoothing("ce", label_smoothing)
    check_average("ce", average)
    if mode == "multiclass":
        return CrossEntropy(ignore_index, label_smoothing, average)
    return MaskedBCEWithLogits(mode, ignore_index, smooth_factor=label_smoothing / 2 or None, average=average)
