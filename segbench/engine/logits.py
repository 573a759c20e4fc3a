"""What a model returns: logits, or in training torchvision's ``{"out": ..., "aux": ...}``.

An architecture with an auxiliary head (mmsegmentation's FCN head on an intermediate
feature) returns both maps in training mode; the engine trains the sum
``loss(out) + aux_weight * loss(aux)`` and evaluates ``out`` only.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

MAIN, AUX = "out", "aux"


def split_logits(outputs) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, auxiliary logits or None) from a model's output."""
    if isinstance(outputs, Mapping):
        return outputs[MAIN], outputs.get(AUX)
    return outputs, None
