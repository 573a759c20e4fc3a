"""The cost fields a finished run records, and which way each is better.

This module owns the list: the engine measures these fields, the report tabulates them,
the gate may write rules on them and ``compare`` marks them. It imports nothing heavy, so
the suite loader and the gate can use it without torch.
"""

from __future__ import annotations

# field -> True when a larger value is better
COST_HIGHER_IS_BETTER = {
    "params": False,
    "flops_per_image": False,
    "latency_ms": False,
    "inference_images_per_s": True,
    "peak_memory_mb": False,
    "train_images_per_s": True,
    "train_seconds": False,
}
COST_FIELDS = tuple(COST_HIGHER_IS_BETTER)
# The cost columns of the report's tables (train_seconds is in the timing section).
REPORTED_COSTS = ("params", "flops_per_image", "latency_ms", "inference_images_per_s", "train_images_per_s", "peak_memory_mb")


def direction_word(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"
