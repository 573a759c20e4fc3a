"""Cost of a trained model: parameters, FLOPs, latency and peak memory."""

from __future__ import annotations

import contextlib
import resource
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .device import synchronize

LATENCY_WARMUP = 3
LATENCY_REPEATS = 10


def measure_cost(model: torch.nn.Module, runnable: torch.nn.Module, data, device: torch.device, precision=None,
                 memory: "MemoryWindow | None" = None) -> dict:
    """Cost of ``model``; latency is timed on ``runnable`` (the compiled model if any), at
    batch 1, under the run's own precision and memory format, as training and evaluation ran."""
    model.eval()
    runnable.eval()
    image, _ = data.val.batch(torch.tensor([0]), device)
    image = image.contiguous(memory_format=_memory_format(model))
    autocast = precision.autocast() if precision is not None else contextlib.nullcontext()
    with autocast:
        latency = inference_latency_ms(runnable, image, device)
    memory = memory or MemoryWindow(device)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "flops_per_image": count_flops(model, image),
        "latency_ms": latency,
        "peak_memory_mb": memory.peak_mb(),
        "image_size": list(image.shape[-2:]),
    }


def how_measured(model: torch.nn.Module, precision, memory: "MemoryWindow") -> dict:
    """What the latency and the peak memory of a record mean, in words (the record's
    ``cost_measured_with``): they differ by device and platform."""
    layout = "channels_last" if _memory_format(model) is torch.channels_last else "contiguous"
    return {"latency_ms": f"median of {LATENCY_REPEATS} forwards at batch 1, {precision.name if precision else 'fp32'}, {layout}",
            "peak_memory_mb": memory.kind}


class MemoryWindow:
    """The peak memory of one run, not of the process so far: opened when the run starts.

    On a GPU, CUDA's peak statistics are reset (the dataset, when resident on the device,
    is allocated before the window opens and so counts in the peak). On Linux the process's
    peak resident set size is reset through /proc/self/clear_refs (kernel 4.0+). Elsewhere
    only the process's high-water mark is known, and the record says so."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            self.kind = "CUDA max allocated during the run"
        elif _reset_peak_rss():
            self.kind = "peak resident set size of the process during the run"
        else:
            self.kind = "peak resident set size of the process so far (not resettable here)"

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return _peak_rss_mb()


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # 5: reset the peak RSS (VmHWM) to the current RSS
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


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
