"""Standard losses: cross-entropy, Dice, Jaccard and BCE + Dice."""

from segbench.hookspecs import hookimpl

from .ce import cross_entropy_loss
from .compound import WeightedSum, bce_dice_loss
from .dice import dice_loss
from .jaccard import jaccard_loss

__all__ = ["WeightedSum", "bce_dice_loss", "cross_entropy_loss", "dice_loss", "jaccard_loss", "segbench_losses"]


@hookimpl
def segbench_losses(register):
    register.add_loss("ce", cross_entropy_loss)
    register.add_loss("dice", dice_loss)
    register.add_loss("jaccard", jaccard_loss)
    register.add_loss("bce_dice", bce_dice_loss)
