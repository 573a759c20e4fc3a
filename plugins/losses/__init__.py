"""Standard losses, built on segmentation_models_pytorch and torch: cross-entropy, BCE,
focal, Dice, Jaccard, Lovasz, Tversky, weighted compounds of them and the BCE/CE + Dice
presets. Every loss supports the binary, multiclass and multilabel modes and leaves
pixels whose target is ``ignore_index`` out of both value and gradient."""

from segbench import hookimpl

from .bce import bce_loss
from .ce import cross_entropy_loss
from .compound import TERMS, WeightedSum, bce_dice_loss, ce_dice_loss, compound_loss
from .dice import dice_loss
from .focal import focal_loss
from .jaccard import jaccard_loss
from .lovasz import lovasz_loss
from .tversky import tversky_loss

STANDARD_LOSSES = {**TERMS, "compound": compound_loss, "bce_dice": bce_dice_loss, "ce_dice": ce_dice_loss}
ID_NEUTRAL = {"ce": ("average",), "bce": ("average",)}  # added with the reference recipes: earlier ids stay

__all__ = [
    "STANDARD_LOSSES",
    "WeightedSum",
    "bce_dice_loss",
    "bce_loss",
    "ce_dice_loss",
    "compound_loss",
    "cross_entropy_loss",
    "dice_loss",
    "focal_loss",
    "jaccard_loss",
    "lovasz_loss",
    "segbench_losses",
    "tversky_loss",
]


@hookimpl
def segbench_losses(register):
    for name, factory in STANDARD_LOSSES.items():
        register.add_loss(name, factory, id_neutral=ID_NEUTRAL.get(name, ()))
