"""Per-run costs: a run's peak memory is its own, not the process's high-water mark, and
latency is timed under the run's own precision; the record says how each was measured."""

import numpy as np
import pytest
import torch

from segbench.engine.cost import LATENCY_REPEATS, LATENCY_WARMUP, THROUGHPUT_REPEATS, THROUGHPUT_WARMUP, MemoryWindow, how_measured, measure_cost
from segbench.engine.precision import Precision

CPU = torch.device("cpu")
BIG_MB = 400


def _touch(megabytes):
    block = np.ones(megabytes * 2**20, dtype=np.uint8)  # every page written: resident
    return int(block[:: 4096].sum())


@pytest.mark.skipif(not MemoryWindow(CPU).kind.endswith("during the run"), reason="the peak RSS cannot be reset here")
def test_a_run_after_a_larger_one_reports_its_own_peak_memory():
    first = MemoryWindow(CPU)
    _touch(BIG_MB)
    first_peak = first.peak_mb()
    second = MemoryWindow(CPU)  # the next run's window opens after the first freed its memory
    _touch(8)
    second_peak = second.peak_mb()
    assert first_peak - second_peak >= 0.8 * BIG_MB
    assert second.kind == "peak resident set size of the process during the run"


class _Recorder(torch.nn.Module):
    """Notes, at each forward, whether CPU autocast was on and in which dtype."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)
        self.seen = []

    def forward(self, x):
        self.seen.append((x.shape[0], torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return self.conv(x)


class _Split:
    def batch(self, indices, device):
        return torch.randn(len(indices), 3, 8, 8), torch.zeros(len(indices), 8, 8, dtype=torch.long)


class _Data:
    val = _Split()


def test_latency_and_throughput_are_timed_under_the_runs_own_precision_at_batch_1_and_the_training_batch():
    model = _Recorder()
    cost = measure_cost(model, model, _Data(), CPU, Precision.for_run("bf16", CPU), MemoryWindow(CPU), batch_size=6)
    latency = model.seen[:LATENCY_WARMUP + LATENCY_REPEATS]
    throughput = model.seen[LATENCY_WARMUP + LATENCY_REPEATS:-1]  # the FLOP count's forward comes last, in fp32
    assert set(latency) == {(1, True, torch.bfloat16)}
    assert len(throughput) == THROUGHPUT_WARMUP + THROUGHPUT_REPEATS and set(throughput) == {(6, True, torch.bfloat16)}
    assert model.seen[-1][:2] == (1, False)  # FLOPs counted once, in fp32
    assert cost["latency_ms"] > 0 and cost["peak_memory_mb"] > 0
    # images per second at batch 6 against ms per image at batch 1: same order of magnitude on a tiny conv
    assert cost["inference_images_per_s"] > 0.1 * 1000 / cost["latency_ms"]


def test_a_resident_dataset_is_named_in_the_peak_memory_it_inflates():
    text = how_measured(torch.nn.Conv2d(3, 2, 1), Precision.for_run("off", CPU), MemoryWindow(CPU), 16, resident_mb=812.4)
    assert text["peak_memory_mb"].endswith("including the dataset resident on the device (812 MB)")
    assert text["inference_images_per_s"] == "batch 16 (one validation image repeated) / median of 3 forwards, fp32, contiguous"


def test_the_record_says_how_latency_and_memory_were_measured():
    model, precision = torch.nn.Conv2d(3, 2, 1), Precision.for_run("bf16", CPU)
    text = how_measured(model, precision, MemoryWindow(CPU))
    assert text["latency_ms"] == "median of 10 forwards at batch 1, bf16, contiguous"
    assert text["peak_memory_mb"].startswith("peak resident set size of the process")
