"""Checks that need a CUDA device: ``pytest -m gpu tests/gpu``, which
``benchmarks/gpu_check.sh`` runs on a lent GPU (docs/gpu.md).

A check that means something on the CPU too is parametrised over ``DEVICES``: its CPU case
runs with the ordinary test command, its CUDA case is marked ``gpu`` and skipped where
there is no CUDA (tests/conftest.py). Checks that only a GPU can make (bf16 kernels,
``set_sync_debug_mode``, CUDA's memory statistics) are marked ``gpu`` as a whole.

The runs are test_engine's ``AUGMENTED`` suite: a U-Net at 32 px, 8 training images in
batches of 4 (2 steps per epoch), flips and zoom on; its encoder is resnet18 on CUDA and
the light one on the CPU (mixed precision is slow there), so that a CPU case takes seconds.
"""

from __future__ import annotations

import json

import pytest

CPU = pytest.param("cpu", id="cpu")
CUDA = pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)
DEVICES = [CPU, CUDA]
STEPS_PER_EPOCH = 2  # AUGMENTED: 8 training images, batch 4


def train_suite(device: str, epochs: int = 2, **train) -> str:
    """test_engine's AUGMENTED suite on ``device`` for ``epochs``, with more ``[train]``
    settings (Python values written as TOML: str, bool, int, float)."""
    from test_engine import AUGMENTED

    text = AUGMENTED.replace("epochs = 1\n", f"epochs = {epochs}\n")
    if device == "cpu":
        text = text.replace('encoder = "resnet18"', 'encoder = "lite"')
    assert text.rstrip().splitlines()[-1].startswith("augment"), "AUGMENTED no longer ends in its [train] table"
    settings = {"device": device, **train}
    return text + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())


def one_run(write_suite, text: str, name: str) -> dict:
    """The measured part of the record of seed 0 of the suite's first variant."""
    from test_engine import _one_run

    return _one_run(write_suite, text, name)
