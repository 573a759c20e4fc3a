"""The engine's training throughput next to a hand-written PyTorch loop, and re-running
a finished suite.

*Hand loop*: the same U-Net (resnet18) at 64 px, AdamW, batch 16, the same in-memory
uint8 samples gathered by index and normalised, channels_last as the engine uses by
default: the loop a user would write. *Engine*: segbench's own epoch (seeded order,
augmentation hook, AMP and clipping plumbing, LR schedule). Target: engine >= 0.97x the
hand loop's images/s. Rounds alternate between the two so drift on this noisy machine
hits both alike.
"""

from __future__ import annotations

import textwrap
import time

import pytest
import torch

from segbench.data import normalize
from segbench.engine import build
from segbench.engine.run import _training_batches, _training_step, train_epoch
from segbench.data.augment import Augment, augment_generator
from segbench.plugins import load_catalogue
from segbench.runner import resolve_cache_dir
from segbench.suite import load_suite

SUITE = textwrap.dedent("""
    name = "bench"
    seeds = [0]
    [dataset]
    name = "shapes"
    image_size = 64
    num_train = 64
    num_val = 16
    [model]
    architecture = "unet"
    encoder = "resnet18"
    [train]
    epochs = 1
    batch_size = 16
    loss = "ce"
""")
TARGET = 0.97
_timings: dict = {}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engine")
    (folder / "bench.toml").write_text(SUITE)
    suite = load_suite(folder / "bench.toml", load_catalogue)
    variant = suite.variants[0]
    data = build.build_dataset(suite.catalogue, variant.config["dataset"], resolve_cache_dir())
    return suite, variant, data


def engine_epoch(suite, variant, data):
    torch.manual_seed(0)
    _, step = _training_step(suite.catalogue, variant.config, data, torch.device("cpu"))
    order = torch.Generator().manual_seed(0)
    augment = Augment.from_config(variant.config["train"]["augment"])

    def epoch():
        train_epoch(step, _training_batches(data, 16, order, "cpu", augment, augment_generator(0)), len(data.train))

    return epoch


def hand_epoch(suite, variant, data):
    torch.manual_seed(0)
    model = build.build_model(suite.catalogue, variant.config["model"], data.output_channels).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    order = torch.Generator().manual_seed(0)

    def epoch():
        model.train()
        for indices in torch.randperm(len(data.train), generator=order).split(16):
            images = normalize(data.train.images[indices]).contiguous(memory_format=torch.channels_last)
            masks = data.train.masks[indices].long()
            loss = loss_fn(model(images), masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return epoch


def test_training_throughput_engine_vs_hand_loop(benchmark, setup, ratios):
    engine, hand = engine_epoch(*setup), hand_epoch(*setup)
    engine(), hand()  # warm-up: allocator, first-call costs
    timings = {"engine": [], "hand": []}
    for _ in range(6):
        for name, epoch in (("hand", hand), ("engine", engine)):
            started = time.perf_counter()
            epoch()
            timings[name].append(time.perf_counter() - started)
    benchmark.group = "engine vs hand loop"
    benchmark.extra_info.update({name: sorted(values) for name, values in timings.items()})
    benchmark.pedantic(engine, rounds=1, iterations=1)
    ratio = _median(timings["hand"]) / _median(timings["engine"])
    ratios.append(("engine training throughput / hand-written loop", ratio, TARGET))
    assert ratio >= TARGET, f"engine at {ratio:.3f}x of the hand loop"


def _median(values):
    values = sorted(values)
    return values[len(values) // 2] if len(values) % 2 else (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2
