"""Lovasz loss (Berman et al., 2018): a convex surrogate of IoU, from segmentation_models_pytorch."""

from __future__ import annotations

import torch
from torch import nn

from .targets import ZeroWhenAllIgnored, check_mode


class PerImage(nn.Module):
    """The mean of ``loss`` over the images of the batch, one at a time.

    smp's own ``per_image=True`` returns an empty tensor in multiclass mode as soon as one
    image is entirely ignored; here such an image contributes 0, as in smp's binary mode.
    """

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, logits, target):
        per_image = [self.loss(logits[i : i + 1], target[i : i + 1]) for i in range(logits.shape[0])]
        return torch.stack(per_image).mean()


def lovasz_loss(mode: str, num_classes: int, ignore_index: int, *, per_image: bool = False) -> nn.Module:
    """Lovasz loss: the Lovasz extension of the Jaccard loss, optimising IoU directly.

    Multiclass: Lovasz-Softmax over the classes present in the batch. Binary and
    multilabel: Lovasz hinge on the logits (every (pixel, channel) pair of a multilabel
    target is one binary decision); being a hinge, it is 0 once every pixel is right by a
    logit margin of 1. Ignored pixels are left out; ``per_image`` computes the loss per
    image and averages, instead of over the whole batch.
    """
    check_mode("lovasz", mode)
    from segmentation_models_pytorch.losses import LovaszLoss  # heavy: import on build

    batch_loss = ZeroWhenAllIgnored(LovaszLoss(mode, per_image=False, ignore_index=ignore_index), ignore_index)
    return PerImage(batch_loss) if per_image else batch_loss
