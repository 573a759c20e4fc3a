"""Mixed precision through the engine's whole run (``run_one``): the loss stays finite,
the record names the precision the run trained in, and an fp16 run counts the steps its
GradScaler skipped. On the CPU only fp16 is new here (bf16: test_training_options)."""

from __future__ import annotations

import math

import pytest
import torch

from . import STEPS_PER_EPOCH, one_run, train_suite

EPOCHS = {"cpu": 1, "cuda": 3}  # fp16 convolutions are slow on the CPU
gpu = pytest.mark.gpu


@pytest.mark.parametrize("device, amp", [
    pytest.param("cpu", "fp16", id="cpu-fp16"),
    pytest.param("cuda", "bf16", id="cuda-bf16", marks=gpu),
    pytest.param("cuda", "fp16", id="cuda-fp16", marks=gpu),
    pytest.param("cuda", "auto", id="cuda-auto", marks=gpu),
])
def test_a_mixed_precision_run_trains_and_records_its_precision(write_suite, device, amp):
    epochs = EPOCHS[device]
    text = train_suite(device, epochs=epochs, amp=amp, grad_clip_norm=1.0)
    record = one_run(write_suite, text, f"amp-{device}-{amp}.toml")
    expected = amp if amp != "auto" else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert record["device"].startswith(device)
    assert record["precision"] == expected
    assert f", {expected}, " in record["cost_measured_with"]["latency_ms"]  # latency timed in the run's precision
    losses = record["curves"]["train_loss"]
    assert len(losses) == epochs and all(math.isfinite(loss) for loss in losses), losses
    assert math.isfinite(record["curves"]["val_loss"][-1])
    assert 0 <= record["metrics"]["miou"] <= 1
    skipped = record["skipped_steps"]
    assert isinstance(skipped, int)
    if expected == "fp16":  # some early steps may overflow at the first loss scale, not all of them
        assert 0 <= skipped < epochs * STEPS_PER_EPOCH, f"the GradScaler skipped {skipped} of {epochs * STEPS_PER_EPOCH} steps"
    else:
        assert skipped == 0
