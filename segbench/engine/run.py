"""One run: train a variant with one seed, evaluate it each epoch, measure its cost."""

from __future__ import annotations

import math
import time

import torch

from ..data import SegmentationData
from . import build
from .cost import measure_cost
from ..data.augment import Augment, augment_generator
from .device import resolve_device, seed_everything, synchronize
from .placement import place_dataset


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


def run_one(variant, seed: int, catalogue, cache_dir, on_epoch=None) -> dict:
    """Train and evaluate ``variant`` with ``seed``; returns the measured part of a record."""
    config = variant.config
    train_config = config["train"]
    device = resolve_device(train_config["device"])
    data = build.build_dataset(catalogue, config["dataset"], cache_dir)
    data, placement = place_dataset(data, device, train_config["data_placement"], train_config["data_device_limit_mb"])
    data_order = seed_everything(seed)  # after the dataset: its build must not shift the model's init
    augment = Augment.from_config(train_config["augment"])
    augment_order = augment_generator(seed)
    memory_format = torch.channels_last if train_config["channels_last"] else torch.contiguous_format
    model = build.build_model(catalogue, config["model"], data.output_channels).to(device, memory_format=memory_format)
    loss_fn = build.build_loss(catalogue, train_config["loss"], data)
    optimizer = build.build_optimizer(train_config["optimizer"], model)
    steps_per_epoch = math.ceil(len(data.train) / train_config["batch_size"])
    schedule = build.build_schedule(train_config["schedule"], optimizer, steps_per_epoch * train_config["epochs"])
    new_metrics = lambda: build.build_metrics(catalogue, config["eval"]["metrics"], data)  # noqa: E731

    curves = {"epoch": [], "train_loss": [], "val_loss": []}
    train_seconds, images_trained = 0.0, 0
    for epoch in range(1, train_config["epochs"] + 1):
        started = time.perf_counter()
        train_loss = train_epoch(model, data, loss_fn, optimizer, schedule, train_config["batch_size"], data_order, device, memory_format, augment=lambda i, m: augment(i, m, augment_order, data.ignore_index))
        synchronize(device)
        train_seconds += time.perf_counter() - started
        images_trained += len(data.train)
        if not math.isfinite(train_loss):
            raise NonFiniteLoss(f"training loss became {train_loss} in epoch {epoch}")
        metrics = new_metrics()
        val_loss = evaluate(model, data, loss_fn, metrics, train_config["batch_size"], device)
        _append_epoch(curves, epoch, train_loss, val_loss, metrics)
        if on_epoch:
            on_epoch(epoch, train_config["epochs"], {"train_loss": train_loss, **{n: m.compute() for n, m in metrics.items()}})

    cost = measure_cost(model, data, device)
    cost.update(train_seconds=train_seconds, train_images_per_s=images_trained / train_seconds if train_seconds else None)
    return {
        "device": str(device),
        "data_placement": placement,
        "classes": list(data.classes),
        "curves": curves,
        "metrics": {name: metric.compute() for name, metric in metrics.items()},
        "per_class": {name: _per_class(metric, data) for name, metric in metrics.items() if metric.per_class() is not None},
        "per_image": {name: metric.per_image() for name, metric in metrics.items()},
        "cost": cost,
    }


def train_epoch(model, data: SegmentationData, loss_fn, optimizer, schedule, batch_size, generator, device, memory_format=torch.contiguous_format, augment=None) -> float:
    """One pass over the training split in a seeded random order; returns the mean loss.

    ``augment(images, masks)`` (optional) transforms each batch on the device."""
    model.train()
    order = torch.randperm(len(data.train), generator=generator)
    total = torch.zeros((), device=device)
    for indices in order.split(batch_size):
        images, masks = data.train.batch(indices, device)
        if augment is not None:
            images, masks = augment(images, masks)
        loss = loss_fn(model(images.contiguous(memory_format=memory_format)), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.detach() * len(indices)
    return float(total) / len(data.train)  # one sync per epoch, not per step


@torch.no_grad()
def evaluate(model, data: SegmentationData, loss_fn, metrics: dict, batch_size, device) -> float:
    """Validation loss, with every metric updated from the predicted label maps."""
    model.eval()
    total = torch.zeros((), device=device)
    for indices in torch.arange(len(data.val)).split(batch_size):
        images, masks = data.val.batch(indices, device)
        logits = model(images)
        total += loss_fn(logits, masks) * len(indices)
        predictions = predict_labels(logits, data.mode)
        for metric in metrics.values():
            metric.update(predictions, masks)
    return float(total) / len(data.val)


def predict_labels(logits: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "binary":
        return (logits[:, 0] > 0).long()
    return logits.argmax(1)


def _append_epoch(curves, epoch, train_loss, val_loss, metrics):
    curves["epoch"].append(epoch)
    curves["train_loss"].append(train_loss)
    curves["val_loss"].append(val_loss)
    for name, metric in metrics.items():
        curves.setdefault(name, []).append(metric.compute())


def _per_class(metric, data):
    return dict(zip(data.classes, metric.per_class()))
