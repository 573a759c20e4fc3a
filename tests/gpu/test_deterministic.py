"""``[train] deterministic = true``: two runs of the same variant and seed give the same
record (metrics, curves, per-image scores) and the same final weights, bit for bit. On
CUDA this needs deterministic kernels, no cuDNN benchmarking and the cuBLAS workspace
setting (engine/precision.py, ``configure_backends``). On the CPU every run repeats anyway
(test_engine, test_determinism), so there is no CPU case here.

The loss is Dice, not cross-entropy: torch has no deterministic CUDA kernel for NLLLoss
and refuses it in this mode (its documentation lists it), as it does the backward of
bilinear interpolation and grid_sample, so the upsampler is nearest."""

from __future__ import annotations

import json

import pytest
import torch

import segbench.engine.run as engine_run

from . import one_run, train_suite

pytestmark = pytest.mark.gpu


@pytest.fixture
def restored_backends(monkeypatch):
    """The run switches the process into deterministic mode; later tests must not inherit it."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")  # records the value to restore, then clears it
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    saved = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    yield
    torch.use_deterministic_algorithms(saved[0])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[1:]


def _run_keeping_weights(monkeypatch, write_suite, text, name):
    """The record and the final weights (the model as the cost is measured on it)."""
    weights = {}
    measure_cost = engine_run.measure_cost

    def measure_and_keep(model, *args, **kwargs):
        weights.update({key: value.detach().cpu().clone() for key, value in model.state_dict().items()})
        return measure_cost(model, *args, **kwargs)

    monkeypatch.setattr(engine_run, "measure_cost", measure_and_keep)
    return one_run(write_suite, text, name), weights


def test_deterministic_runs_repeat_bit_for_bit(write_suite, monkeypatch, restored_backends):
    text = train_suite("cuda", epochs=2, deterministic=True, loss="dice")
    first, first_weights = _run_keeping_weights(monkeypatch, write_suite, text, "first.toml")
    second, second_weights = _run_keeping_weights(monkeypatch, write_suite, text, "second.toml")
    flags = first["determinism"]
    assert flags["deterministic_algorithms"] is True
    assert flags["cudnn_benchmark"] is False and flags["cudnn_deterministic"] is True
    assert flags["cublas_workspace_config"] == ":4096:8"
    for key in ("metrics", "curves", "per_image"):  # as JSON, so that a NaN equals itself
        assert _json(first[key]) == _json(second[key]), f"{key} differ between the two runs"
    assert first_weights and first_weights.keys() == second_weights.keys()
    differing = [key for key in first_weights if not torch.equal(first_weights[key], second_weights[key])]
    assert not differing, f"weights differ between the two runs: {differing[:5]}"


def test_a_deterministic_run_with_an_op_that_has_no_deterministic_kernel_fails_naming_it(write_suite, restored_backends):
    """Cross-entropy reduces with atomics on CUDA (nll_loss2d): in this mode torch refuses
    it, and the run fails naming the op, as [train] deterministic promises."""
    with pytest.raises(RuntimeError, match=r"nll_loss2d\w* has no deterministic implementation on this device.*\"warn\""):
        one_run(write_suite, train_suite("cuda", epochs=1, deterministic=True, loss="ce"), "ce.toml")


def test_warn_mode_runs_cross_entropy_and_lists_its_op_in_the_record(write_suite, restored_backends):
    record = one_run(write_suite, train_suite("cuda", epochs=1, deterministic="warn", loss="ce"), "ce-warn.toml")
    assert record["determinism"]["warn_only"] is True
    assert any(op.startswith("nll_loss2d") for op in record["determinism"]["nondeterministic_ops"])


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)
