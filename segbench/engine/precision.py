"""Mixed precision and backend switches for a run.

``train.amp``: ``auto`` uses bf16 on a CUDA device that supports it, else fp16 there, and
full precision on the CPU; ``bf16`` / ``fp16`` force autocast (on the CPU too, where
PyTorch supports it, which is how the tests exercise this path); ``off`` disables it.
fp16 needs loss scaling against underflow, so it comes with a GradScaler; bf16 keeps
float32's range and needs none.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
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


def configure_backends(device: torch.device, cudnn_benchmark: bool, deterministic: bool | str = False) -> dict:
    """cudnn.benchmark picks the fastest convolution algorithms for fixed input sizes
    (ours are fixed); it costs bitwise run-to-run reproducibility on the GPU.

    ``deterministic`` asks for bit-identical runs on the GPU too: deterministic algorithms
    only, no cudnn benchmarking, and the cuBLAS workspace setting CUDA requires for it.
    With ``true`` an op without a deterministic kernel fails the run, naming itself; with
    ``"warn"`` it runs, and :func:`watch_nondeterminism` lists it in the record. Set for
    every run, so that one run's choice never leaks into the next. Returns the flags."""
    torch.use_deterministic_algorithms(bool(deterministic), warn_only=deterministic == WARN)
    if deterministic:
        os.environ.setdefault(CUBLAS_WORKSPACE, CUBLAS_DETERMINISTIC)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark and not deterministic
        torch.backends.cudnn.deterministic = bool(deterministic)
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if device.type == "cuda" else None,
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic) if device.type == "cuda" else None,
        "cublas_workspace_config": os.environ.get(CUBLAS_WORKSPACE),
    }


WARN = "warn"
_ALERT = re.compile(r"^(\S+) does not have a deterministic implementation")


class NondeterministicOp(RuntimeError):
    """An op without a deterministic kernel ran under ``[train] deterministic = true``."""


@contextlib.contextmanager
def watch_nondeterminism(found: list | None):
    """In strict mode, an op's "no deterministic implementation" error becomes a
    :class:`NondeterministicOp` that says what to do. With ``found`` (``"warn"`` mode), the
    ops torch warns about are appended to it; without, warnings are left alone."""
    try:
        with _alerts_into(found) if found is not None else contextlib.nullcontext():
            yield
    except RuntimeError as error:
        match = _ALERT.match(str(error))
        if match is None:
            raise
        raise NondeterministicOp(
            f"{match.group(1)} has no deterministic implementation on this device, and [train] deterministic = true "
            'requires one; set deterministic = "warn" to run anyway and list such ops in the record, '
            "or false (on a GPU: the default cross-entropy and bilinear upsampling's backward are such ops)") from None


@contextlib.contextmanager
def _alerts_into(found: list):
    """Records the run's warnings: torch's determinism alerts go to ``found``, the others
    reach the user afterwards, once per message and place, as the default filter shows them."""
    caught = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always")  # every alert, even from a place that warned before
            try:
                yield
            finally:
                caught = list(recorded)
    finally:
        shown = set()
        for warning in caught:  # outside the recording context
            match = _ALERT.match(str(warning.message))
            where = (str(warning.message), warning.category, warning.filename, warning.lineno)
            if match:
                found.append(match.group(1))
            elif where not in shown:
                shown.add(where)
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


CUBLAS_WORKSPACE = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_DETERMINISTIC = ":4096:8"  # what CUDA's reproducibility notes ask for with deterministic cuBLAS
