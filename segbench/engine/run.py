"""One run: train a variant with one seed, evaluate it, measure its cost."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..component_checks import named
from ..costs import COST_HIGHER_IS_BETTER
from ..data import SegmentationData
from ..data.augment import augment_generator
from ..data.loading import LoadingRequest, resolve_workers
from ..data.streaming import StreamedSplit
from ..statistics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, resample_weights
from ..store import encode_arrays
from . import build
from .cost import MemoryWindow, how_measured, measure_cost
from .device import resolve_device, seed_everything, synchronize
from .feed import needs_loader, training_feed, validation_batches
from .logits import split_logits
from .inference import native_logits, size_groups
from .placement import place_dataset
from .precision import WARN, Precision, configure_backends, watch_nondeterminism


SAMPLE_COUNT = 4


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


class MetricMiscounted(RuntimeError):
    """A metric's per_image() does not hold one value per validation image."""


@dataclass
class Step:
    """Everything one optimisation step needs: model, loss, optimiser, schedule, precision."""

    model: torch.nn.Module
    loss_fn: object
    optimizer: torch.optim.Optimizer
    schedule: object
    precision: Precision
    memory_format: torch.memory_format = torch.contiguous_format
    grad_clip_norm: float = 0.0
    aux_weight: float = 0.0  # weight of the auxiliary head's loss, for models that return one
    skipped_steps: int = 0  # fp16 steps the GradScaler skipped on inf/NaN gradients

    def __call__(self, images, masks) -> torch.Tensor:
        with self.precision.autocast():
            logits, aux = split_logits(self.model(images.contiguous(memory_format=self.memory_format)))
            loss = self.loss_fn(logits, masks)
            if aux is not None:
                loss = loss + self.aux_weight * self.loss_fn(aux, masks)
        self.optimizer.zero_grad(set_to_none=True)
        scaler = self.precision.scaler
        scaler.scale(loss).backward()
        if self.grad_clip_norm:
            scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip_norm)
        scale = scaler.get_scale() if scaler.is_enabled() else None  # reads the scale: only fp16 pays this sync
        scaler.step(self.optimizer)
        scaler.update()
        if scale is not None and scaler.get_scale() < scale:  # the scaler backs off after a skipped step
            self.skipped_steps += 1
        with warnings.catch_warnings():
            # fp16 loss scaling skips the optimiser step on overflow, by design
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)`", UserWarning)
            self.schedule.step()
        return loss.detach()


@dataclass(frozen=True)
class TrainingLength:
    """How long a run trains: ``steps`` optimiser steps in ``epochs`` passes over the data,
    the last pass cut short when ``[train] iterations`` is not a whole number of epochs."""

    steps: int
    steps_per_epoch: int
    batch_size: int
    images: int

    @classmethod
    def of(cls, train_config: dict, images: int) -> "TrainingLength":
        steps_per_epoch = math.ceil(images / train_config["batch_size"])
        steps = train_config.get("iterations") or steps_per_epoch * train_config["epochs"]
        return cls(steps, steps_per_epoch, train_config["batch_size"], images)

    @property
    def epochs(self) -> int:
        return math.ceil(self.steps / self.steps_per_epoch)

    def pass_size(self, epoch: int) -> tuple:
        """(steps, images) of pass ``epoch`` (1-based)."""
        steps = min(self.steps_per_epoch, self.steps - (epoch - 1) * self.steps_per_epoch)
        return steps, min(steps * self.batch_size, self.images)


def run_one(variant, seed: int, catalogue, cache_dir, on_epoch=None) -> dict:
    """Train and evaluate ``variant`` with ``seed``; returns the measured part of a record."""
    nondeterministic = [] if variant.config["train"].get("deterministic") == WARN else None
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        with watch_nondeterminism(nondeterministic):
            record = _run_one(variant, seed, catalogue, cache_dir, on_epoch)
    finally:  # the process, e.g. the next suite's preflight, goes on as it was
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    if nondeterministic is not None:
        record["determinism"]["nondeterministic_ops"] = sorted(set(nondeterministic))
    return record


def _run_one(variant, seed: int, catalogue, cache_dir, on_epoch=None) -> dict:
    config = variant.config
    train_config = config["train"]
    device = resolve_device(train_config["device"])
    determinism = configure_backends(device, train_config["cudnn_benchmark"], train_config.get("deterministic", False))
    workers = resolve_workers(train_config["data_workers"])
    data = build.build_dataset(catalogue, config["dataset"], cache_dir, loading=LoadingRequest(train_config["data_loading"], workers))
    streaming = isinstance(data.train, StreamedSplit)
    if needs_loader(data.train, train_config["augment"]):
        placement = "host"  # loader workers read host memory
    else:
        data, placement = place_dataset(data, device, train_config["data_placement"], train_config["data_device_limit_mb"])
    memory = MemoryWindow(device)  # this run's peak, whatever ran before it in the process
    data_order = seed_everything(seed)  # after the dataset: its build must not shift the model's init
    model, step = _training_step(catalogue, config, data, device)
    feed = training_feed(data.train, train_config, data_order, device, augment_generator(seed), data.ignore_index, seed, workers)
    new_metrics = lambda: build.build_metrics(catalogue, config["eval"]["metrics"], data)  # noqa: E731

    curves = {"epoch": [], "train_loss": [], "val_loss": []}
    length = TrainingLength.of(train_config, len(data.train))
    train_seconds, images_trained, metrics = 0.0, 0, None
    try:
        for epoch in range(1, length.epochs + 1):
            started = time.perf_counter()
            steps, images = length.pass_size(epoch)
            train_loss = train_epoch(step, feed.epoch(epoch, steps), images)
            synchronize(device)
            train_seconds += time.perf_counter() - started
            images_trained += images
            if not math.isfinite(train_loss):
                raise NonFiniteLoss(f"training loss became {train_loss} in epoch {epoch}")
            if epoch == length.epochs:
                feed.close()  # training is over: the last evaluation runs without its workers
            epoch_metrics, val_loss = None, None
            if epoch % train_config["val_every"] == 0 or epoch == length.epochs:
                epoch_metrics = new_metrics()
                val_loss = evaluate(step.model, data, step.loss_fn, epoch_metrics, train_config["batch_size"], device, step.precision,
                                    config["eval"].get("inference"), workers)
                metrics = epoch_metrics
            _append_epoch(curves, epoch, train_loss, val_loss, epoch_metrics)
            if on_epoch:
                shown = {n: m.compute() for n, m in (epoch_metrics or {}).items()}
                on_epoch(epoch, length.epochs, {"train_loss": train_loss, **shown})
    except RuntimeError as error:  # a loader worker that died is named with the sample it was reading
        raise feed.named(error) from None
    finally:
        feed.close()

    samples = sample_predictions(step.model, data, device, step.precision, inference=config["eval"].get("inference"))
    cost = measure_cost(model, step.model, data, device, step.precision, memory, train_config["batch_size"],
                        config["eval"].get("inference"))
    cost.update(train_seconds=train_seconds, train_images_per_s=images_trained / train_seconds if train_seconds else None)
    return {
        "device": str(device),
        "precision": step.precision.name,
        "skipped_steps": step.skipped_steps,
        "determinism": determinism,
        "cost_measured_with": how_measured(model, step.precision, memory, train_config["batch_size"],
                                           (data.train.nbytes + data.val.nbytes) / 2**20 if placement == "device" else None),
        "data_placement": placement,
        "data_loading": {"path": "streaming" if streaming else "memory", "feed": feed.kind, "workers": feed.workers,
                         "wait_share": feed.wait_seconds / train_seconds if train_seconds else None},
        "classes": list(data.classes),
        "ignore_index": data.ignore_index,
        "curves": curves,
        "metrics": {name: metric.compute() for name, metric in metrics.items()},
        "per_class": {name: _per_class(metric, data) for name, metric in metrics.items() if metric.per_class() is not None},
        "per_image": per_image_values(metrics, len(data.val), catalogue),
        "higher_is_better": {**{name: bool(metric.higher_is_better) for name, metric in metrics.items()}, **COST_HIGHER_IS_BETTER},
        "bootstrap": image_replicates(metrics, len(data.val)),
        "cost": cost,
        "samples": samples,
    }


def per_image_values(metrics: dict, n_images: int, catalogue) -> dict:
    """Each metric's per_image(), one value per validation image: a metric that kept
    images from an earlier evaluation (a cached instance) or lost some fails the run."""
    values = {name: metric.per_image() for name, metric in metrics.items()}
    for name, per_image in values.items():
        count = len(per_image) if isinstance(per_image, (list, tuple)) else None
        if count != n_images:
            got = f"{count} values" if count is not None else f"a {type(per_image).__name__}"
            raise MetricMiscounted(
                f"{named(catalogue.get('metric', name))}: per_image() returned {got} for {n_images} validation images; expected "
                "one per image seen by this evaluation (a metric instance must start empty: its factory must return a new one each call)")
    return values


def image_replicates(metrics: dict, n_images: int) -> dict:
    """Each metric's dataset value on the same bootstrap resamples of the validation
    images in every run (the resamples depend only on the number of images), so that the
    report can resample images for a difference in exactly the value the seeds test.
    Costs 2000 float32 per metric in the record (about 8 kB of base64), whatever the number
    of images and classes."""
    weights = resample_weights(n_images, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)
    replicates = {}
    for name, metric in metrics.items():
        values = metric.bootstrap(weights)
        if values is not None:
            replicates[name] = encode_arrays(values=values.astype(np.float32))  # ample for a Δ of 1e-4
    return {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "images": n_images, "replicates": replicates}


@torch.no_grad()
def sample_predictions(model, data: SegmentationData, device, precision: Precision, count: int = SAMPLE_COUNT,
                       inference: dict | None = None) -> dict:
    """The predicted label maps of the first validation images (those of the first one's
    size, so that they stack), for the report's side-by-side grid (the images and true
    masks go once per dataset, ``inputs``); predicted as ``inference`` says."""
    model.eval()
    indices = size_groups(data.val, count)[0]
    images, masks = data.val.batch(indices, device)
    logits = native_logits(model, images, inference, precision.autocast, count)
    predictions = predict_labels(logits, data.mode).to(torch.uint8).cpu().numpy()
    raw = [data.val.raw(int(i)) for i in indices]
    inputs = {"images": np.stack([image.cpu().numpy() for image, _ in raw]), "masks": np.stack([mask.cpu().numpy() for _, mask in raw])}
    return {"indices": indices.tolist(), "predictions": encode_arrays(predictions=predictions), "inputs": encode_arrays(**inputs)}


def _training_step(catalogue, config, data, device):
    """The model (as built, for cost) and the step that trains it (compiled if asked)."""
    train_config = config["train"]
    memory_format = torch.channels_last if train_config["channels_last"] else torch.contiguous_format
    model = build.build_model(catalogue, config["model"], data.output_channels).to(device, memory_format=memory_format)
    trained = torch.compile(model) if train_config["compile"] else model
    optimizer = build.build_optimizer(train_config["optimizer"], model, train_config.get("lr_mult"))
    length = TrainingLength.of(train_config, len(data.train))
    warmup_steps = min(round(train_config["warmup_epochs"] * length.steps_per_epoch), length.steps)
    schedule = build.build_schedule(train_config["schedule"], optimizer, length.steps, warmup_steps, train_config.get("min_lr", 0.0))
    precision = Precision.for_run(train_config["amp"], device)
    loss_fn = build.build_loss(catalogue, train_config["loss"], data)
    step = Step(trained, loss_fn, optimizer, schedule, precision, memory_format, train_config["grad_clip_norm"],
                train_config.get("aux_weight", 0.0))
    return model, step


def train_epoch(step: Step, batches, num_images: int) -> float:
    """One pass over ``batches``; returns the mean loss per image."""
    step.model.train()
    total = None
    for images, masks in batches:
        loss = step(images, masks).float() * images.shape[0]
        total = loss if total is None else total + loss
    return float(total) / num_images  # one sync per epoch, not per step


@torch.no_grad()
def evaluate(model, data: SegmentationData, loss_fn, metrics: dict, batch_size, device, precision: Precision | None = None,
             inference: dict | None = None, workers: int = 0) -> float:
    """Validation loss, with every metric updated from the predicted label maps, both at
    the stored masks' size; ``inference`` is the resolved ``eval.inference`` (see
    :mod:`.inference`). Images of different sizes go in consecutive groups of one size;
    streamed images are read by ``workers`` loader processes."""
    model.eval()
    total = torch.zeros((), device=device)
    autocast = precision.autocast if precision else lambda: torch.autocast(device.type, enabled=False)
    for images, masks in validation_batches(data.val, size_groups(data.val, batch_size), device, workers):
        logits = native_logits(model, images, inference, autocast, batch_size)  # float32: loss and argmax in full precision
        total += loss_fn(logits, masks) * len(masks)
        predictions = predict_labels(logits, data.mode)
        for metric in metrics.values():
            metric.update(predictions, masks)
    return float(total) / len(data.val)


def predict_labels(logits: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "binary":
        return (logits[:, 0] > 0).long()
    return logits.argmax(1)


def _append_epoch(curves, epoch, train_loss, val_loss, metrics):
    """One entry per epoch; validation fields are None in epochs without validation."""
    curves["epoch"].append(epoch)
    curves["train_loss"].append(train_loss)
    curves["val_loss"].append(val_loss)
    for name, metric in (metrics or {}).items():
        values = curves.setdefault(name, [None] * (len(curves["epoch"]) - 1))
        values.append(metric.compute())
    for name, values in curves.items():
        if len(values) < len(curves["epoch"]):
            values.append(None)


def _per_class(metric, data):
    return dict(zip(data.classes, metric.per_class()))
