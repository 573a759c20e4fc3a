"""Does the streaming loader feed a training step without starving it?

The same training step (segbench's own: forward, loss, backward, optimiser, as a run takes it)
is fed two ways, in one session, rounds alternating:

- *memory*: batches of 512 px crops made beforehand and resident on the device: the fastest
  a step can be fed, so its images/s is the step's own;
- *streaming*: segbench's loader feed (segbench/engine/feed.py) over a streamed ``folder``
  dataset of 500x375 JPEG photos: every sample read from its file by a loader worker,
  rescaled (mmsegmentation's RandomResize, 0.5-2.0), cropped (cat_max_ratio 0.75), flipped,
  photometrically distorted and padded, collated into pinned memory and copied to the device.

Reported: streaming images/s over memory images/s (the feed ratio: target 0.9 on a GPU), and
the loader's share of a streamed step (the time the training loop waited for a batch over
the whole time). On the CPU the loader workers share the cores with the step itself, so the
CPU numbers say what a CPU run costs, not what a GPU would.

Environment (benchmarks/gpu_check.sh sets them): ``SEGBENCH_BENCH_DEVICE`` ``cpu`` (default)
or ``cuda``; ``SEGBENCH_BENCH_SIZE=tiny`` for a seconds-long smoke run; ``SEGBENCH_BENCH_WORKERS``
(default: segbench's ``data_workers = "auto"``).
"""

from __future__ import annotations

import os
import textwrap
import time

import pytest
import torch
from conftest import PHOTO_CLASSES, write_photo_folder

from segbench.data.augment import augment_generator
from segbench.data.loading import LoadingRequest, default_workers
from segbench.engine import build
from segbench.engine.device import synchronize
from segbench.engine.feed import LoaderFeed, training_feed
from segbench.engine.run import _training_step
from segbench.plugins import load_catalogue
from segbench.runner import resolve_cache_dir
from segbench.suite import load_suite

DEVICE = torch.device(os.environ.get("SEGBENCH_BENCH_DEVICE", "cpu"))
WORKERS = int(os.environ.get("SEGBENCH_BENCH_WORKERS") or default_workers())
PROFILES = {  # photos, crop, batch, model, steps per round, rounds
    "tiny": dict(photos=32, size=(96, 128), crop=64, resize=[256, 64], batch_size=4, model='architecture = "unet"\nencoder = "lite"',
                 steps=4, rounds=2),
    "cpu": dict(photos=200, size=(375, 500), crop=512, resize=[2048, 512], batch_size=8,
                model='architecture = "unet"\nencoder = "lite"\ndecoder_channels = [32, 16, 16, 8, 8]', steps=6, rounds=3),
    "cuda": dict(photos=2000, size=(375, 500), crop=512, resize=[2048, 512], batch_size=16,
                 model='architecture = "deeplabv3plus"\nencoder = "resnet50"\noutput_stride = 8', steps=30, rounds=3),
}
PROFILE = PROFILES[os.environ.get("SEGBENCH_BENCH_SIZE") or DEVICE.type]
FEED_TARGET = 0.9 if DEVICE.type == "cuda" else 0.0
SHARE_TARGET = 0.1 if DEVICE.type == "cuda" else None

SUITE = textwrap.dedent("""
    name = "loader"
    seeds = [0]
    [dataset]
    name = "folder"
    root = "{root}"
    classes = {classes}
    val_fraction = 0.05
    [model]
    {model}
    [train]
    batch_size = {batch_size}
    device = "{device}"
    data_loading = "streaming"
    data_workers = {workers}
    augment = {{ resize = {resize}, ratio = [0.5, 2.0], crop = {crop}, cat_max_ratio = 0.75, hflip = 0.5, photometric = true }}
""")
_rounds: dict = {"memory": [], "streaming": []}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loader")
    root = write_photo_folder(folder / "photos", PROFILE["photos"], PROFILE["size"])
    text = SUITE.format(root=root, classes=PHOTO_CLASSES, device=DEVICE.type, workers=WORKERS,
                        **{k: PROFILE[k] for k in ("model", "batch_size", "resize", "crop")})
    (folder / "loader.toml").write_text(text)
    suite = load_suite(folder / "loader.toml", load_catalogue)
    config = suite.variants[0].config
    data = build.build_dataset(suite.catalogue, config["dataset"], resolve_cache_dir(), loading=LoadingRequest("streaming", WORKERS))
    torch.manual_seed(0)
    _, step = _training_step(suite.catalogue, config, data, DEVICE)
    feed = training_feed(data.train, config["train"], torch.Generator().manual_seed(0), DEVICE, augment_generator(0),
                         data.ignore_index, 0, WORKERS)
    assert isinstance(feed, LoaderFeed)
    yield step, feed, resident_batches(feed, PROFILE["steps"])
    feed.close()


def resident_batches(feed, count) -> list:
    """``count`` batches from the same pipeline, made once and kept on the device."""
    return [(images.clone(), masks.clone()) for images, masks in feed.epoch(0, count)]


def timed(step, batches, feed=None) -> float:
    """Images per second of ``step`` over ``batches``; the feed's waiting is counted by it."""
    synchronize(DEVICE)
    started, images = time.perf_counter(), 0
    for batch_images, masks in batches:
        step(batch_images, masks)
        images += len(masks)
    synchronize(DEVICE)
    return images / (time.perf_counter() - started)


def test_feed_streaming_vs_memory(benchmark, engine, ratios, shares):
    step, feed, resident = engine
    step.model.train()
    timed(step, resident[:2])  # warm up kernels and the allocator
    waits = []

    def one_round(number=[0]):
        number[0] += 1
        _rounds["memory"].append(timed(step, resident))
        before, started = feed.wait_seconds, time.perf_counter()
        _rounds["streaming"].append(timed(step, feed.epoch(number[0], PROFILE["steps"])))
        waits.append((feed.wait_seconds - before) / (time.perf_counter() - started))

    benchmark.group = "loader"
    benchmark.pedantic(one_round, rounds=PROFILE["rounds"], warmup_rounds=0)
    memory, streaming = _median(_rounds["memory"]), _median(_rounds["streaming"])
    ratio, share = streaming / memory, _median(waits)
    benchmark.extra_info.update(feed_ratio=ratio, feed_target=FEED_TARGET, loader_share=share, loader_share_target=SHARE_TARGET,
                                device=DEVICE.type, workers=WORKERS, crop=PROFILE["crop"], batch_size=PROFILE["batch_size"],
                                images_per_s_memory=memory, images_per_s_streaming=streaming,
                                rounds={"memory": _rounds["memory"], "streaming": _rounds["streaming"], "share": waits})
    ratios.append((f"streaming loader vs in-memory feed, images/s of a {PROFILE['crop']} px step ({DEVICE.type}, "
                   f"{WORKERS} workers)", ratio, FEED_TARGET or None))
    shares.append((f"loader's share of a streamed step ({DEVICE.type}, {WORKERS} workers)", share))
    assert ratio >= FEED_TARGET, f"the streaming feed gives {ratio:.2f}x the in-memory images/s"
    if SHARE_TARGET is not None:
        assert share <= SHARE_TARGET, f"the step waits for the loader {share:.0%} of the time"


def _median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def test_the_feed_batches_are_what_the_step_trains_on(engine):
    """The resident batches come from the same pipeline: normalised crops and long masks."""
    _, _, resident = engine
    images, masks = resident[0]
    assert images.shape == (PROFILE["batch_size"], 3, PROFILE["crop"], PROFILE["crop"]) and images.dtype == torch.float32
    assert masks.dtype == torch.int64 and masks.shape == (PROFILE["batch_size"], PROFILE["crop"], PROFILE["crop"])
