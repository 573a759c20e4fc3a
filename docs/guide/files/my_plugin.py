"""A local plugin with a broken loss, for the preflight example in docs/guide/suites.md
(python docs/console.py runs it): its loss returns one value per pixel, not a scalar."""

from torch import nn

from segbench import hookimpl


def per_pixel_loss(mode: str, num_classes: int, ignore_index: int) -> nn.Module:
    """Cross-entropy left unreduced (the bug)."""
    return nn.CrossEntropyLoss(ignore_index=ignore_index, reduction="none")


@hookimpl
def segbench_losses(register):
    register.add_loss("per_pixel_loss", per_pixel_loss)
