"""Shared by the standard losses: the supported modes and target preparation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("binary", "multiclass")


def check_mode(loss_name: str, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"loss {loss_name!r} supports modes {' and '.join(MODES)}, got {mode!r}")


def dense_targets(target: torch.Tensor, valid: torch.Tensor, channels: int, mode: str) -> torch.Tensor:
    """Float targets shaped like the logits (N, C, H, W); ignored pixels become 0.

    Binary: the 0/1 mask as one channel. Multiclass: one-hot over ``channels`` classes.
    Zeroing ignored pixels keeps the per-pixel loss finite there, so masking it later
    gives exactly zero value and zero gradient.
    """
    target = torch.where(valid, target, torch.zeros_like(target)).long()
    if mode == "binary":
        return target.unsqueeze(1).float()
    return F.one_hot(target, channels).permute(0, 3, 1, 2).float()
