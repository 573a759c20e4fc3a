"""Per-run costs: a run's peak memory is its own, not the process's high-water mark, and
latency is timed under the run's own precision; the record says how each was measured."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

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


# --- costs at the size evaluation feeds the model ---------------------------------------------

STORED = (30, 40)  # the first validation image as stored


class _Conv(torch.nn.Module):
    """A 3x3 conv, 3 -> 4 channels, keeping every input it is called with."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.conv(x)


class _StoredSplit:
    image = torch.randn(1, 3, *STORED, generator=torch.Generator().manual_seed(0))

    def batch(self, indices, device):
        assert indices.tolist() == [0]
        return self.image.clone(), torch.zeros(1, *STORED, dtype=torch.long)


class _StoredData:
    val = _StoredSplit()


def _conv_flops(height, width):
    """2 x multiply-adds of a 3x3 conv, 3 -> 4 channels (torch's FLOP counter leaves the bias out)."""
    return 2 * 3 * 4 * 3 * 3 * height * width


def _measured(inference):
    model = _Conv()
    cost = measure_cost(model, model, _StoredData(), CPU, Precision.for_run("off", CPU), MemoryWindow(CPU), batch_size=3,
                        inference=inference)
    return cost, model.inputs


@pytest.mark.parametrize("inference", [None, {"mode": "stored"}])
def test_stored_inference_measures_the_image_as_stored(inference):
    cost, inputs = _measured(inference)
    assert cost["image_size"] == list(STORED) and cost["flops_per_image"] == _conv_flops(*STORED)
    assert cost["input"] == "stored: first validation image as stored (30x40)"
    assert all(torch.equal(x, _StoredSplit.image.expand(len(x), -1, -1, -1)) for x in inputs)


def test_whole_inference_with_a_scale_measures_at_the_rescaled_size():
    cost, inputs = _measured({"mode": "whole", "scale": [64, 48]})
    # 30x40 to fit long side 64, short side 48: factor min(64 / 40, 48 / 30) = 1.6 -> 48x64
    assert cost["image_size"] == [48, 64]
    assert cost["flops_per_image"] == _conv_flops(48, 64)
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            torch.nn.Conv2d(3, 4, 3, padding=1)(torch.zeros(1, 3, 48, 64))
    assert cost["flops_per_image"] == counter.get_total_flops()
    assert cost["input"] == "whole: first validation image (30x40) rescaled to fit [64, 48] -> 48x64"
    rescaled = F.interpolate(_StoredSplit.image, size=(48, 64), mode="bilinear", align_corners=False)
    assert {tuple(x.shape) for x in inputs} == {(1, 3, 48, 64), (3, 3, 48, 64)}  # latency at batch 1, throughput at batch 3
    torch.testing.assert_close(inputs[0], rescaled)


def test_whole_inference_without_a_scale_measures_the_native_size():
    cost, _ = _measured({"mode": "whole", "scale": None})
    assert cost["image_size"] == list(STORED) and cost["flops_per_image"] == _conv_flops(*STORED)
    assert cost["input"] == "whole: first validation image (30x40) at its native size"


def test_slide_inference_measures_one_window_of_the_rescaled_image():
    cost, inputs = _measured({"mode": "slide", "scale": [64, 48], "crop": [64, 20], "stride": [32, 16]})
    # rescaled to 48x64; a window is min(crop, side) per side: 48x20; columns at x = 0, 16, 32, 44 (the last pushed back)
    assert cost["image_size"] == [48, 20] and cost["flops_per_image"] == _conv_flops(48, 20)
    assert cost["input"] == ("slide: first validation image (30x40) rescaled to fit [64, 48] -> 48x64, "
                             "one of its 4 windows (crop [64, 20]) -> 48x20")
    rescaled = F.interpolate(_StoredSplit.image, size=(48, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(inputs[0], rescaled[..., :48, :20])


def test_a_run_records_its_costs_at_the_evaluation_input(write_suite):
    from test_engine import AUGMENTED, _one_run

    record = _one_run(write_suite, AUGMENTED + '\n[eval]\ninference = { mode = "whole", scale = [64, 48] }\n', "whole.toml")
    # the 32x32 validation images fit [64, 48] at 1.5x
    assert record["cost"]["image_size"] == [48, 48]
    assert record["cost"]["input"] == "whole: first validation image (32x32) rescaled to fit [64, 48] -> 48x48"
