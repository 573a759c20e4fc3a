"""Binary cross-entropy with logits, one sigmoid per channel, from segmentation_models_pytorch."""

from __future__ import annotations

from typing import Literal

from torch import nn

from .targets import check_mode, dense_targets, valid_mask


AVERAGES = ("valid", "all")
Average = Literal["valid", "all"]


class MaskedBCEWithLogits(nn.Module):
    """BCE with logits per channel, averaged over the non-ignored (pixel, channel) pairs.

    Binary mode: one logit channel against the 0/1 mask. Multiclass mode: one sigmoid per
    class against one-hot targets. Multilabel mode: one sigmoid per channel against its
    0/1 target. Ignored pixels never contribute to the sum; with ``average = "valid"``
    they do not count either (0 if all pixels are ignored), with ``"all"`` they count as
    zeros (the sum over every (pixel, channel) pair).
    """

    def __init__(self, mode: str, ignore_index: int, smooth_factor: float | None = None, average: str = "valid"):
        super().__init__()
        self.mode = mode
        self.ignore_index = ignore_index
        self.average = average
        from segmentation_models_pytorch.losses import SoftBCEWithLogitsLoss  # heavy: import on build

        # smp's own ignore_index compares the dense (one-hot) targets, not the label map: mask here.
        self.bce = SoftBCEWithLogitsLoss(reduction="none", ignore_index=None, smooth_factor=smooth_factor)

    def forward(self, logits, target):
        dense = dense_targets(target, self.ignore_index, logits.shape[1], self.mode)
        per_element = self.bce(logits, dense)
        mask = valid_mask(target, self.ignore_index, self.mode).expand_as(per_element).type_as(per_element)
        count = mask.sum().clamp(min=1) if self.average == "valid" else mask.numel()
        return (per_element * mask).sum() / count


def check_label_smoothing(loss_name: str, label_smoothing: float) -> None:
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{loss_name}: label_smoothing must be in [0, 1], got {label_smoothing}")


def check_average(loss_name: str, average: str) -> None:
    if average not in AVERAGES:
        raise ValueError(f"{loss_name}: average must be one of {', '.join(map(repr, AVERAGES))}, got {average!r}")


def bce_loss(mode: str, num_classes: int, ignore_index: int, *, label_smoothing: float = 0.0, average: Average = "valid") -> nn.Module:
    """Binary cross-entropy with logits, one sigmoid per channel (one-vs-all in multiclass).

    Binary: the single logit channel against the 0/1 mask. Multiclass: every class is its
    own binary problem against the one-hot targets (one-vs-all; unlike ``ce`` the classes
    do not compete through a softmax). Multilabel: every channel against its 0/1 target.
    ``average = "valid"`` averages over the non-ignored (pixel, channel) pairs; ``"all"``
    over every pair, the ignored ones counted as zeros (mmsegmentation's
    ``avg_non_ignore=False``). ``label_smoothing`` e turns the targets 1 and 0 into
    1 - e/2 and e/2, as ``torch.nn.CrossEntropyLoss`` does for two classes.
    """
    check_mode("bce", mode)
    check_label_smoothing("bce", label_smoothing)
    check_average("bce", average)
    return MaskedBCEWithLogits(mode, ignore_index, smooth_factor=label_smoothing / 2 or None, average=average)
