"""Shared by the standard losses: the supported modes, target preparation and the guard
for batches in which every pixel is ignored.

Targets per mode: ``binary`` and ``multiclass`` take an int64 label map (N, H, W);
``multilabel`` takes int64 0/1 targets shaped like the logits (N, C, H, W). In every mode
target values equal to ``ignore_index`` must not count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("binary", "multiclass", "multilabel")


def check_mode(loss_name: str, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"loss {loss_name!r} supports modes {', '.join(MODES)}; got {mode!r}")


def valid_mask(target: torch.Tensor, ignore_index: int, mode: str) -> torch.Tensor:
    """Which logits count, broadcastable to the logits: (N, 1, H, W) for a label map,
    (N, C, H, W) for multilabel targets."""
    valid = target != ignore_index
    return valid if mode == "multilabel" else valid.unsqueeze(1)


def dense_targets(target: torch.Tensor, ignore_index: int, channels: int, mode: str) -> torch.Tensor:
    """Float 0/1 targets shaped like the logits (N, C, H, W); ignored pixels become 0.

    Binary: the mask as one channel. Multiclass: one-hot over ``channels`` classes.
    Multilabel: the targets as they are. Zeroing ignored pixels keeps the per-pixel loss
    finite there, so masking it afterwards gives exactly zero value and zero gradient.
    """
    target = target.masked_fill(target == ignore_index, 0).long()
    if mode == "multiclass":
        return F.one_hot(target, channels).permute(0, 3, 1, 2).float()
    return target.unsqueeze(1).float() if mode == "binary" else target.float()


class ZeroWhenAllIgnored(nn.Module):
    """Runs ``loss``, except on a batch whose every target is ignored: then 0, with a zero
    gradient.

    segmentation_models_pytorch's focal loss averages an empty selection there (NaN) and
    its Lovasz-Softmax returns an empty tensor instead of a scalar.
    """

    def __init__(self, loss: nn.Module, ignore_index: int):
        super().__init__()
        self.loss = loss
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        if bool((target == self.ignore_index).all()):
            return logits.sum() * 0.0  # keeps the graph, so backward() still works
        return self.loss(logits, target)
