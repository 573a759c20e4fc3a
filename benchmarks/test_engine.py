"""The engine's training throughput next to a hand-written PyTorch loop.

*Hand loop*: the same U-Net, AdamW, the same uint8 samples gathered by index and
normalised, channels_last as the engine uses by default, in the precision the engine
picks (``amp = "auto"``: bf16 autocast on a recent GPU, full precision on the CPU): the
loop a user would write. *Engine*: segbench's own epoch (seeded order, augmentation hook,
AMP and clipping plumbing, LR schedule), on the data as ``run_one`` places it (resident on
a GPU when it fits; the hand loop keeps it there too). Target: engine >= 0.97x the hand
loop's images/s. Rounds alternate between the two so drift on a noisy machine hits both
alike; each timed epoch ends with a device synchronisation.

Environment (benchmarks/gpu_check.sh sets them):

- ``SEGBENCH_BENCH_DEVICE``: ``cpu`` (default) or ``cuda``;
- ``SEGBENCH_BENCH_SIZE``: ``tiny`` for a seconds-long smoke run (light encoder, 32 px,
  2 rounds); by default resnet18 at 64 px (CPU) or 128 px with more images (CUDA);
- ``SEGBENCH_BENCH_TARGET``: the ratio to assert (default 0.97; 0 only reports it).
"""

from __future__ import annotations

import contextlib
import math
import os
import textwrap
import time

import pytest
import torch

from segbench.data import normalize
from segbench.data.augment import augment_generator
from segbench.engine import build
from segbench.engine.device import synchronize
from segbench.engine.placement import place_dataset
from segbench.engine.precision import resolve_amp
from segbench.engine.feed import training_feed
from segbench.engine.run import _training_step, train_epoch
from segbench.plugins import load_catalogue
from segbench.runner import resolve_cache_dir
from segbench.suite import load_suite

DEVICE = torch.device(os.environ.get("SEGBENCH_BENCH_DEVICE", "cpu"))
TARGET = float(os.environ.get("SEGBENCH_BENCH_TARGET", "0.97"))
PROFILES = {  # image size, training images, batch, encoder, timed rounds
    "tiny": dict(image_size=32, num_train=16, batch_size=8, encoder="lite", rounds=2),
    "cpu": dict(image_size=64, num_train=64, batch_size=16, encoder="resnet18", rounds=6),
    "cuda": dict(image_size=128, num_train=512, batch_size=32, encoder="resnet18", rounds=6),
}
PROFILE = PROFILES[os.environ.get("SEGBENCH_BENCH_SIZE") or DEVICE.type]

SUITE = textwrap.dedent("""
    name = "bench"
    seeds = [0]
    [dataset]
    name = "shapes"
    image_size = {image_size}
    num_train = {num_train}
    num_val = 16
    [model]
    architecture = "unet"
    encoder = "{encoder}"
    [train]
    epochs = 1
    batch_size = {batch_size}
    loss = "ce"
    device = "{device}"
""")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engine")
    (folder / "bench.toml").write_text(SUITE.format(device=DEVICE.type, **PROFILE))
    suite = load_suite(folder / "bench.toml", load_catalogue)
    variant = suite.variants[0]
    train = variant.config["train"]
    data = build.build_dataset(suite.catalogue, variant.config["dataset"], resolve_cache_dir())
    data, placement = place_dataset(data, DEVICE, train["data_placement"], train["data_device_limit_mb"])
    return suite, variant, data, placement


def engine_epoch(suite, variant, data, placement):
    torch.manual_seed(0)
    _, step = _training_step(suite.catalogue, variant.config, data, DEVICE)
    batch_size = variant.config["train"]["batch_size"]
    feed = training_feed(data.train, variant.config["train"], torch.Generator().manual_seed(0), DEVICE, augment_generator(0),
                         data.ignore_index, 0, 0)

    def epoch():
        train_epoch(step, feed.epoch(1, math.ceil(len(data.train) / batch_size)), len(data.train))

    return epoch


def hand_epoch(suite, variant, data, placement):
    torch.manual_seed(0)
    model = build.build_model(suite.catalogue, variant.config["model"], data.output_channels)
    model = model.to(DEVICE, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    batch_size = variant.config["train"]["batch_size"]
    order = torch.Generator().manual_seed(0)
    images, masks = data.train.images, data.train.masks  # on the device when the engine keeps them there
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(resolve_amp(variant.config["train"]["amp"], DEVICE))
    scaler = torch.amp.GradScaler(DEVICE.type, enabled=dtype is torch.float16)

    def epoch():
        model.train()
        for indices in torch.randperm(len(data.train), generator=order).split(batch_size):
            indices = indices.to(images.device, non_blocking=True)
            batch = normalize(images[indices].to(DEVICE, non_blocking=True)).contiguous(memory_format=torch.channels_last)
            target = masks[indices].to(DEVICE, non_blocking=True).long()
            with torch.autocast(DEVICE.type, dtype=dtype) if dtype else contextlib.nullcontext():
                loss = loss_fn(model(batch), target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    return epoch


def test_training_throughput_engine_vs_hand_loop(benchmark, setup, ratios):
    engine, hand = engine_epoch(*setup), hand_epoch(*setup)
    engine(), hand()  # warm-up: allocator, cuDNN's choices, first-call costs
    synchronize(DEVICE)
    timings = {"engine": [], "hand": []}
    for _ in range(PROFILE["rounds"]):
        for name, epoch in (("hand", hand), ("engine", engine)):
            started = time.perf_counter()
            epoch()
            synchronize(DEVICE)
            timings[name].append(time.perf_counter() - started)
    ratio = _median(timings["hand"]) / _median(timings["engine"])
    benchmark.group = "engine vs hand loop"
    benchmark.extra_info.update({name: sorted(values) for name, values in timings.items()})
    benchmark.extra_info.update(ratio=ratio, target=TARGET, device=str(DEVICE), placement=setup[3],
                                precision=resolve_amp(setup[1].config["train"]["amp"], DEVICE), **PROFILE)
    benchmark.pedantic(engine, rounds=1, iterations=1)
    ratios.append(("engine training throughput / hand-written loop", ratio, TARGET))
    assert ratio >= TARGET, f"engine at {ratio:.3f}x of the hand loop"


def _median(values):
    values = sorted(values)
    return values[len(values) // 2] if len(values) % 2 else (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2
