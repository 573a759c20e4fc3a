"""A training step never waits for the host, on CUDA: after a warm-up epoch, the next
epoch's batches (the indexed feed, ``segbench.engine.feed``) go through the engine's ``Step`` under
``torch.cuda.set_sync_debug_mode("error")``, which raises at any synchronising call (a
value read back, a blocking host-to-device copy). ``train_epoch`` does the same but reads
its loss back once per epoch by design, so the loop is written out here without that read.

Expected to pass once the sync-free data path lands (normalisation constants cached per
device, the epoch's order and augmentation draws moved in one non-blocking copy);
tests/test_sync_free.py counts the same operations on the CPU. fp16 is left out: its
GradScaler reads the scale back at every step, by design (engine/run.py, ``Step``)."""

from __future__ import annotations

import pytest
import torch

from segbench.data.augment import augment_generator
from segbench.engine import build
from segbench.engine.device import seed_everything
from segbench.engine.placement import place_dataset
from segbench.engine.feed import training_feed
from segbench.engine.run import _training_step
from segbench.plugins import load_catalogue
from segbench.runner import resolve_cache_dir
from segbench.suite import load_suite

from . import train_suite

pytestmark = pytest.mark.gpu
TRAIN_IMAGES, BATCH = 32, 8  # 4 steps per epoch


def _engine(write_suite, text):
    """The run's data (placed as ``run_one`` places it), step and batch source."""
    suite = load_suite(write_suite(text, "sync.toml"), load_catalogue)
    config = suite.variants[0].config
    train, device = config["train"], torch.device("cuda")
    data = build.build_dataset(suite.catalogue, config["dataset"], resolve_cache_dir())
    data, placement = place_dataset(data, device, train["data_placement"], train["data_device_limit_mb"])
    order = seed_everything(0)
    _, step = _training_step(suite.catalogue, config, data, device)
    feed = training_feed(data.train, train, order, device, augment_generator(0), data.ignore_index, 0, 0)

    def batches():
        return feed.epoch(1, len(data.train) // train["batch_size"])

    return step, batches, placement


@pytest.mark.parametrize("amp, placement, augment", [
    ("off", "device", "{}"),
    ("bf16", "device", "{ hflip = 0.5, scale = [0.5, 2.0] }"),
    ("bf16", "host", "{ hflip = 0.5, scale = [0.5, 2.0] }"),
])
def test_training_steps_never_synchronise_after_the_warm_up(write_suite, amp, placement, augment):
    text = train_suite("cuda", amp=amp, data_placement=placement, grad_clip_norm=1.0)
    text = text.replace("num_train = 8", f"num_train = {TRAIN_IMAGES}").replace("batch_size = 4", f"batch_size = {BATCH}")
    text = text.replace("augment = { hflip = 0.5, scale = [0.5, 2.0] }", f"augment = {augment}")
    step, batches, placed = _engine(write_suite, text)
    assert placed == placement
    step.model.train()
    for images, masks in batches():  # warm-up: cuDNN's choices, the allocator, per-device constants
        step(images, masks)
    torch.cuda.synchronize()
    total, steps = None, 0
    torch.cuda.set_sync_debug_mode("error")
    try:
        for images, masks in batches():
            loss = step(images, masks).float() * images.shape[0]
            total = loss if total is None else total + loss
            steps += 1
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert steps == TRAIN_IMAGES // BATCH
    assert torch.isfinite(total).item()
