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
from .inference import describe_forward_input, forward_input

LATENCY_WARMUP = 3
LATENCY_REPEATS = 10
THROUGHPUT_WARMUP = 1  # the batch-1 latency already warmed the kernels up; one call for the new shape
THROUGHPUT_REPEATS = 3  # a batch is N images: fewer repeats than at batch 1 for the same time


def measure_cost(model: torch.nn.Module, runnable: torch.nn.Module, data, device: torch.device, precision=None,
                 memory: "MemoryWindow | None" = None, batch_size: int = 1, inference: dict | None = None) -> dict:
    """Cost of ``model``; latency (batch 1) and throughput (batch ``batch_size``, the
    training batch) are timed on ``runnable`` (the compiled model if any) under the run's
    own precision and memory format, as training and evaluation ran. FLOPs, latency and
    throughput are measured at the input one evaluation forward receives for the first
    validation image under ``inference`` (the resolved ``eval.inference``): as stored,
    rescaled, or one slide window. The peak memory is read first, so these forwards do not
    count in it."""
    model.eval()
    runnable.eval()
    peak_memory_mb = (memory or MemoryWindow(device)).peak_mb()
    stored, _ = data.val.batch(torch.tensor([0]), device)
    image = forward_input(stored, inference).contiguous(memory_format=_memory_format(model))
    batch = image.expand(batch_size, -1, -1, -1).contiguous(memory_format=_memory_format(model))
    autocast = precision.autocast() if precision is not None else contextlib.nullcontext()
    with autocast:
        latency = inference_latency_ms(runnable, image, device)
        throughput = batch_size * 1000 / inference_latency_ms(runnable, batch, device, THROUGHPUT_WARMUP, THROUGHPUT_REPEATS)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "flops_per_image": count_flops(model, image),
        "latency_ms": latency,
        "inference_images_per_s": throughput,
        "peak_memory_mb": peak_memory_mb,
        "image_size": list(image.shape[-2:]),
        "input": describe_forward_input(*stored.shape[-2:], inference),
    }


def how_measured(model: torch.nn.Module, precision, memory: "MemoryWindow", batch_size: int = 1, resident_mb: float | None = None) -> dict:
    """What the latency, throughput and peak memory of a record mean, in words (the
    record's ``cost_measured_with``): they differ by device and platform."""
    layout = "channels_last" if _memory_format(model) is torch.channels_last else "contiguous"
    precision_name = precision.name if precision else "fp32"
    peak = memory.kind
    if resident_mb is not None:
        peak += f", including the dataset resident on the device ({resident_mb:.0f} MB)"
    return {"latency_ms": f"median of {LATENCY_REPEATS} forwards at batch 1, {precision_name}, {layout}",
            "inference_images_per_s": f"batch {batch_size} (one validation image repeated) / median of {THROUGHPUT_REPEATS} "
                                      f"forwards, {precision_name}, {layout}",
            "peak_memory_mb": peak}


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
def inference_latency_ms(model, images, device, warmup: int = LATENCY_WARMUP, repeats: int = LATENCY_REPEATS) -> float:
    """Median of repeated forward passes of ``images`` after a warm-up, synchronised."""
    for _ in range(warmup):
        model(images)
    timings = []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        model(images)
        synchronize(device)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)
