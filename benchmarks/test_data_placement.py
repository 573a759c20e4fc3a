"""Loading's share of a training step, with the samples on the host or resident on the
device (``train.data_placement``).

A step is: take a batch of 16 (gather, copy to the device, normalise, flip and zoom),
then forward, backward and an AdamW step of a U-Net (resnet18) at 96 px. *Loading* is
the first part alone. On a machine without CUDA only the host placement can be measured
(and there, host and device are one memory); the device rows are skipped, saying so.
"""

from __future__ import annotations

import pytest
import torch

from conftest import median_seconds
from segbench.data.augment import Augment, augment_generator
from segbench.engine.device import synchronize
from segbench.engine.placement import place_dataset
from segbench_plugins.architectures.unet.model import build_unet
from segbench_plugins.datasets.shapes import build_shapes
from segbench_plugins.upsamplers import nearest

BATCH = 16
AUGMENT = Augment(hflip=0.5, scale=(0.5, 2.0))
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
_timings: dict = {}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build_shapes(tmp_path_factory.mktemp("shapes"), image_size=96, num_train=64, num_val=8)


def loader(data, device, placement):
    placed, where = place_dataset(data, torch.device(device), placement, 4096)
    generator, order = augment_generator(0), torch.Generator().manual_seed(0)

    def load():
        indices = torch.randperm(len(placed.train), generator=order)[:BATCH]
        images, masks = placed.train.batch(indices, device)
        return AUGMENT(images, masks, generator, placed.ignore_index)

    return load, where


def stepper(data, device, placement):
    load, where = loader(data, device, placement)
    model = build_unet(len(data.classes), nearest, encoder="resnet18").to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)

    def step():
        images, masks = load()
        loss = loss_fn(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(torch.device(device))

    return step, where


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("placement", ["host", "device"])
def test_loading(benchmark, data, device, placement):
    if device == "cpu" and placement == "device":
        pytest.skip("no CUDA here: the GPU-resident mode was not measured (on a CPU there is one memory)")
    load, _ = loader(data, device, placement)
    benchmark.group = f"loading share {device}"
    benchmark.pedantic(lambda: (load(), synchronize(torch.device(device))), rounds=30, warmup_rounds=3)
    _timings[(device, placement, "load")] = median_seconds(benchmark)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("placement", ["host", "device"])
def test_training_step(benchmark, data, device, placement, shares):
    if device == "cpu" and placement == "device":
        pytest.skip("no CUDA here: the GPU-resident mode was not measured (on a CPU there is one memory)")
    step, where = stepper(data, device, placement)
    benchmark.group = f"loading share {device}"
    benchmark.pedantic(step, rounds=8 if device == "cpu" else 30, warmup_rounds=2)
    share = _timings[(device, placement, "load")] / median_seconds(benchmark)
    shares.append((f"loading share of a step ({device}, samples on the {where})", share))
