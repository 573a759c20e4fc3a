"""A training step that never waits for the host.

On a GPU, three things in a step stall the pipeline: reading a tensor's value on the host
(``.item()``, ``float()``, ``bool()``, data-dependent shapes such as ``nonzero``), building a
tensor from Python numbers on the device (a blocking host-to-device copy), and drawing
random numbers on the host for each step. The CUDA check (``tests/gpu``) catches the
first two with ``torch.cuda.set_sync_debug_mode("error")``; here, on the CPU, a dispatch
mode counts the operations that would cause them, per step, through the engine's own
batches and step.
"""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from segbench.data import normalize
from segbench.data.augment import Augment, augment_generator
from segbench.engine import build
from segbench.engine.feed import training_feed
from segbench.engine.run import _training_step
from segbench.plugins import load_catalogue
from segbench.runner import resolve_cache_dir
from segbench.suite import load_suite

from battery.harness import tiny

HOST_READS = {"_local_scalar_dense", "nonzero", "masked_select", "equal", "_unique2", "unique_dim"}
HOST_LITERALS = {"lift_fresh", "scalar_tensor"}


class HostTraffic(TorchDispatchMode):
    """Counts, by kind, the operations that would make a GPU step wait for the host."""

    def __init__(self, host_tensors=()):
        super().__init__()
        self.counts = collections.Counter()
        self.host_tensors = {id(tensor) for tensor in host_tensors}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in HOST_READS and not (args and id(args[0]) in self.host_tensors):
            self.counts[f"read:{name}"] += 1
        if name in HOST_LITERALS:
            self.counts[f"literal:{name}"] += 1
        generator = kwargs.get("generator")
        if generator is not None and generator.device.type == "cpu":
            self.counts[f"host draw:{name}"] += 1
        return func(*args, **kwargs)


def _setup(tmp_path, augment):
    suite_text = tiny(seeds="[0]")
    if augment:
        suite_text = suite_text.replace("[train]\n", f"[train]\naugment = {augment}\n")
    (tmp_path / "suite.toml").write_text(suite_text)
    suite = load_suite(tmp_path / "suite.toml", load_catalogue)
    config = suite.variants[0].config
    data = build.build_dataset(suite.catalogue, config["dataset"], resolve_cache_dir())
    _, step = _training_step(suite.catalogue, config, data, torch.device("cpu"))
    return config, data, step


@pytest.mark.parametrize("augment", [None, "{ hflip = 0.5 }", "{ hflip = 0.5, scale = [0.5, 2.0] }"])
def test_training_steps_after_the_first_read_nothing_back_and_draw_nothing_on_the_host(tmp_path, augment):
    config, data, step = _setup(tmp_path, augment)
    train = config["train"]
    feed = training_feed(data.train, {**train, "batch_size": 2}, torch.Generator().manual_seed(0), torch.device("cpu"),
                         augment_generator(0), data.ignore_index, 0, 0)
    assert feed.kind == "indexed"
    batches = feed.epoch(1, len(data.train) // 2)
    step(*next(batches))  # the epoch's order and draws are made here, once
    # torch keeps Adam's step counters on the host on every device (capturable=False):
    # reading them is host work, not a device sync.
    counters = [state["step"] for state in step.optimizer.state.values() if torch.is_tensor(state.get("step"))]
    with HostTraffic(counters) as traffic:
        steps = sum(1 for images, masks in batches if step(images, masks) is not None)
    assert steps == len(data.train) // 2 - 1 >= 2
    assert traffic.counts == {}, f"per-step host traffic over {steps} steps: {dict(traffic.counts)}"


def test_the_counter_sees_what_it_is_meant_to_catch():
    """The detector itself: a value read, a tensor built from numbers, a host draw."""
    with HostTraffic() as traffic:
        x = torch.ones(3)
        float(x.sum())
        torch.tensor([0.5, 0.25])
        torch.rand(2, generator=torch.Generator().manual_seed(0))
        x.nonzero()
    assert traffic.counts["read:_local_scalar_dense"] == 1
    assert traffic.counts["literal:lift_fresh"] == 1
    assert traffic.counts["host draw:rand"] == 1
    assert traffic.counts["read:nonzero"] == 1  # a data-dependent shape


def test_normalising_a_batch_builds_no_constants():
    images = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    normalize(images)  # the first call on a device makes its constants
    with HostTraffic() as traffic:
        normalize(images)
    assert traffic.counts == {}


def test_an_epoch_of_draws_equals_drawing_batch_by_batch():
    augment = Augment(hflip=0.5, scale=(0.5, 2.0))
    images, masks = torch.randn(10, 3, 9, 11), torch.randint(0, 4, (10, 9, 11))
    sizes = [4, 4, 2]
    draws = augment.epoch_draws(sizes, augment_generator(5))
    one_by_one, start = augment_generator(5), 0
    for size in sizes:
        expected = augment(images[start:start + size], masks[start:start + size], one_by_one, 255)
        got = augment.apply(images[start:start + size], masks[start:start + size], draws[start:start + size], 255)
        assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])
        start += size
