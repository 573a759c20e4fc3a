"""A run's peak memory is its own: after the process held a large block (as a larger run
before it would), a small run reports its own peak, not the process's high-water mark.
test_run_costs checks the window on its own; here ``run_one`` must open it in time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segbench.engine.cost import MemoryWindow

from . import DEVICES, one_run, train_suite

BIG_MB = 1024
KIND = {"cuda": "CUDA max allocated during the run", "cpu": "peak resident set size of the process during the run"}


def _hold_and_free(device: torch.device, megabytes: int) -> float:
    """Hold ``megabytes`` on ``device`` (every page written), free them, and return the
    process's peak while they were held."""
    window = MemoryWindow(device)
    if device.type == "cuda":
        block = torch.ones(megabytes * 2**20, dtype=torch.uint8, device=device)
        torch.cuda.synchronize(device)
    else:
        block = np.ones(megabytes * 2**20, dtype=np.uint8)
    peak = window.peak_mb()
    del block
    return peak


@pytest.mark.parametrize("device", DEVICES)
def test_a_run_after_a_large_allocation_reports_its_own_peak(write_suite, device):
    device = torch.device(device)
    if device.type == "cpu" and MemoryWindow(device).kind != KIND["cpu"]:
        pytest.skip("the peak RSS cannot be reset here")
    process_peak = _hold_and_free(device, BIG_MB)
    assert process_peak >= BIG_MB
    record = one_run(write_suite, train_suite(device.type, epochs=1), f"memory-{device.type}.toml")
    peak = record["cost"]["peak_memory_mb"]
    assert record["cost_measured_with"]["peak_memory_mb"].startswith(KIND[device.type])  # on CUDA: and the resident dataset
    assert 0 < peak <= process_peak - BIG_MB / 2, f"the run reports {peak:.0f} MB; the process peaked at {process_peak:.0f} MB"
