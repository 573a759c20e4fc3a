"""Mixed precision and backend switches for a run.

``train.amp``: ``auto`` uses bf16 on a CUDA device that supports it, else fp16 there, and
full precision on the CPU; ``bf16`` / ``fp16`` force autocast (on the CPU too, where
PyTorch supports it, which is how the tests exercise this path); ``off`` disables it.
fp16 needs loss scaling against underflow, so it comes with a GradScaler; bf16 keeps
float32's range and needs none.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Precision:
    device_type: str
    dtype: torch.dtype | None  # None: full precision
    scaler: torch.amp.GradScaler

    @classmethod
    def for_run(cls, amp: str, device: torch.device) -> "Precision":
        mode = resolve_amp(amp, device)
        dtype = DTYPES.get(mode)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
        return cls(device.type, dtype, scaler)

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def resolve_amp(amp: str, device: torch.device) -> str:
    if amp != "auto":
        return amp
    if device.type != "cuda":
        return "off"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def configure_backends(device: torch.device, cudnn_benchmark: bool) -> None:
    """cudnn.benchmark picks the fastest convolution algorithms for fixed input sizes
    (ours are fixed); it costs bitwise run-to-run reproducibility on the GPU."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark
