"""Cost of a trained model: parameters, FLOPs, latency and peak memory."""

from __future__ import annotations

import resource
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .device import synchronize

LATENCY_WARMUP = 3
LATENCY_REPEATS = 10


def measure_cost(model: torch.nn.Module, runnable: torch.nn.Module, data, device: torch.device) -> dict:
    """Cost of ``model``; latency is timed on ``runnable`` (the compiled model if any)."""
    model.eval()
    runnable.eval()
    image, _ = data.val.batch(torch.tensor([0]), device)
    image = image.contiguous(memory_format=_memory_format(model))
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "flops_per_image": count_flops(model, image),
        "latency_ms": inference_latency_ms(runnable, image, device),
        "peak_memory_mb": peak_memory_mb(device),
        "image_size": list(image.shape[-2:]),
    }


def _memory_format(model):
    """channels_last when the model's convolutions were converted to it."""
    weights = [p for p in model.parameters() if p.ndim == 4]
    if weights and weights[0].is_contiguous(memory_format=torch.channels_last) and not weights[0].is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


@torch.no_grad()
def count_flops(model, image) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        model(image)
    return int(counter.get_total_flops())


@torch.no_grad()
def inference_latency_ms(model, image, device) -> float:
    """Median of repeated single-image forward passes after a warm-up, CUDA-synchronised."""
    for _ in range(LATENCY_WARMUP):
        model(image)
    timings = []
    for _ in range(LATENCY_REPEATS):
        synchronize(device)
        started = time.perf_counter()
        model(image)
        synchronize(device)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def peak_memory_mb(device) -> float:
    """CUDA max allocated on a GPU; otherwise the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
