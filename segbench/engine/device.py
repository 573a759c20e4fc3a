"""Device choice and seeding."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from ..errors import SegbenchError


def resolve_device(requested: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; asking for CUDA without it is bad input."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise SegbenchError(f'train.device = "{requested}" but CUDA is not available here; use "auto" or "cpu"')
    return torch.device(requested)


def seed_everything(seed: int) -> torch.Generator:
    """Seed every global generator and return a private one for data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def synchronize(device: torch.device):
    """Wait for queued CUDA work so that timings measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def single_torch_thread():
    """Run torch on one thread. Small CPU models and batches of a few images gain little
    from two, and when the cores are shared with other processes OpenMP's barrier waits
    make them many times slower (a preflight of 0.3 s took 10 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def torch_threads(setting):
    """Run torch on the ``[train] threads`` the suite asks for (``"auto"`` or None: as the
    executor left this process), and yield the count in effect. CPU reductions split their
    work by thread, so this count, not the executor or the node's cores, decides a CPU
    run's last bits. The process's own count is restored after (the local executor runs in
    the driver). Inter-op threads are left alone: torch fixes them once parallel work has
    started, and they schedule whole ops, so they change no number."""
    before = torch.get_num_threads()
    if isinstance(setting, int) and not isinstance(setting, bool):
        torch.set_num_threads(setting)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
