"""Train and evaluate one run: device, seeding, the loop, evaluation and cost."""

from .device import resolve_device
from .run import run_one

__all__ = ["resolve_device", "run_one"]
