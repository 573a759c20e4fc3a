"""How training and validation batches reach the model.

- **indexed**: samples held in memory (on the host, or resident on the device) are gathered
  by indexing, and flips and zooms (``augment.hflip`` / ``augment.scale``) are applied to the
  whole batch on its device. No worker processes: the fastest way for a small set.
- **loader**: a ``torch.utils.data.DataLoader`` whose worker processes read each sample
  (from memory, or from its files on the streaming path), put it through the per-sample
  pipeline (:mod:`segbench.data.transforms`) and collate the batch into pinned memory; the
  batch is normalised on the device. Persistent workers, a few batches prefetched.

Both take the epoch's order from the run's data-order generator, and the batch flips and
zooms from its augmentation generator, the same numbers in the same order; per-sample draws
are seeded by the sample's place in the run. So a run computes the same numbers on either
feed, with any number of workers. Each feed counts the time the training loop waits for its
batches (``wait_seconds``): the loader's share of a step, in the record.
"""

from __future__ import annotations

import time

import torch

from ..data.augment import Augment
from ..data.decode import Failed, WorkerWatch
from ..data.samples import normalize
from ..data.streaming import StreamedSplit
from ..data.transforms import apply, is_per_sample, pipeline, sample_seed

PREFETCH = 4  # batches queued per worker: enough to ride out a slow file, bounded memory


def needs_loader(split, augment_config: dict) -> bool:
    """The loader feed is needed for streamed samples and for the per-sample pipeline."""
    return isinstance(split, StreamedSplit) or is_per_sample(augment_config)


def batch_augment(augment_config: dict) -> Augment:
    """The flips and zooms applied to whole batches: none when the per-sample pipeline flips."""
    if is_per_sample(augment_config):
        return Augment()
    return Augment.from_config(augment_config)


class IndexedFeed:
    """Batches gathered by indexing a split held in memory (see the module doc)."""

    kind = "indexed"
    workers = 0

    def __init__(self, split, batch_size, order, device, augment: Augment, augment_order, ignore_index):
        self.split, self.batch_size, self.order, self.device = split, batch_size, order, device
        self.augment, self.augment_order, self.ignore_index = augment, augment_order, ignore_index
        self.wait_seconds = 0.0

    def epoch(self, epoch: int, steps: int):
        """The first ``steps`` batches of ``epoch``'s order, augmented on the device.

        The order and the augmentation draws of the whole epoch are drawn on the host up front
        and each moved in one copy, so no step waits on a host-to-device transfer of its own.
        """
        order, draws = _epoch_plan(self.split, self.order, self.augment, self.augment_order, self.batch_size)
        draws = draws.to(self.device, non_blocking=True) if draws is not None else None
        start = 0
        for indices in order.to(self.split.device, non_blocking=True).split(self.batch_size)[:steps]:
            started = time.perf_counter()
            images, masks = self.split.batch(indices, self.device)
            if draws is not None:
                images, masks = self.augment.apply(images, masks, draws[start:start + len(indices)], self.ignore_index)
            start += len(indices)
            self.wait_seconds += time.perf_counter() - started
            yield images, masks

    def named(self, error: RuntimeError) -> RuntimeError:
        return error

    def close(self):
        pass


class LoaderFeed:
    """Batches read and transformed by DataLoader workers (see the module doc)."""

    kind = "loader"

    def __init__(self, split, batch_size, order, device, augment: Augment, augment_order, ignore_index, augment_config: dict,
                 run_seed: int, workers: int):
        self.split, self.batch_size, self.order, self.device = split, batch_size, order, device
        self.augment, self.augment_order, self.ignore_index = augment, augment_order, ignore_index
        self.run_seed, self.workers = run_seed, workers
        steps = pipeline(augment_config, ignore_index) if is_per_sample(augment_config) else None
        self.samples = TransformedSamples(split, steps, workers)
        self.plan = EpochPlan()
        self.loader = torch.utils.data.DataLoader(
            self.samples, batch_sampler=self.plan, num_workers=workers, collate_fn=collate,
            pin_memory=device.type == "cuda", persistent_workers=workers > 0,
            prefetch_factor=PREFETCH if workers else None, generator=torch.Generator(),  # never the global generator
        )
        self.wait_seconds = 0.0

    def epoch(self, epoch: int, steps: int):
        order, draws = _epoch_plan(self.split, self.order, self.augment, self.augment_order, self.batch_size)
        self.plan.batches = _seeded(order.split(self.batch_size)[:steps], self.run_seed, epoch, self.batch_size)
        draws = draws.to(self.device, non_blocking=True) if draws is not None else None
        start = 0
        for images, masks in self._timed(self.loader):
            images = normalize(images.to(self.device, non_blocking=True))
            masks = masks.to(self.device, non_blocking=True).long()
            if draws is not None:
                images, masks = self.augment.apply(images, masks, draws[start:start + len(masks)], self.ignore_index)
            start += len(masks)
            yield images, masks

    def _timed(self, loader):
        """The loader's batches, counting the time spent waiting for each."""
        batches = iter(loader)
        while True:
            started = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            except RuntimeError as error:
                raise self.named(error) from None
            self.wait_seconds += time.perf_counter() - started
            if isinstance(batch, Failed):
                raise batch.error()
            yield batch

    def named(self, error: RuntimeError) -> Exception:
        """``error``, or when it says a loader worker died (torch may raise that anywhere in
        the training loop), an error naming the sample the worker was reading."""
        return self.samples.watch.died(self.split, error) or error

    def close(self):
        """Stop the persistent workers now, not whenever the loader is collected (twice is fine)."""
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader = None


def training_feed(split, train_config: dict, order, device, augment_order, ignore_index, run_seed: int, workers: int):
    """The feed a run's training batches come through."""
    augment = batch_augment(train_config["augment"])
    if needs_loader(split, train_config["augment"]):
        return LoaderFeed(split, train_config["batch_size"], order, device, augment, augment_order, ignore_index,
                          train_config["augment"], run_seed, workers)
    return IndexedFeed(split, train_config["batch_size"], order, device, augment, augment_order, ignore_index)


def validation_batches(split, groups: list, device, workers: int):
    """Normalised ``(images, masks)`` on ``device`` for each group of indices, in order:
    streamed samples read by ``workers`` processes, samples in memory by indexing."""
    if not isinstance(split, StreamedSplit) or not workers:
        for indices in groups:
            yield split.batch(indices, device)
        return
    samples = TransformedSamples(split, None, workers)
    plan = EpochPlan()
    plan.batches = [[(int(i), 0) for i in indices] for indices in groups]
    loader = torch.utils.data.DataLoader(samples, batch_sampler=plan, num_workers=workers, collate_fn=collate,
                                         pin_memory=device.type == "cuda", prefetch_factor=PREFETCH, generator=torch.Generator())
    try:
        for batch in loader:
            if isinstance(batch, Failed):
                raise batch.error()
            images, masks = batch
            yield normalize(images.to(device, non_blocking=True)), masks.to(device, non_blocking=True).long()
    except RuntimeError as error:
        raise samples.watch.died(split, error) or error from None


class TransformedSamples(torch.utils.data.Dataset):
    """Item ``(index, seed)``: sample ``index`` as stored, through the per-sample pipeline
    seeded with ``seed`` when there is one, as uint8 ``(3, H, W)`` and its mask."""

    def __init__(self, split, steps, workers: int):
        self.split, self.steps = split, steps
        self.watch = WorkerWatch(workers)

    def __len__(self):
        return len(self.split)

    def __getitem__(self, item):
        index, seed = item
        with self.watch.reading_sample(index):
            try:
                image, mask = self.split.raw(index)
                if self.steps is not None:
                    image, mask = apply(self.steps, image, mask, seed)
                return image, mask
            except Exception as error:  # noqa: BLE001 - sent back as a value: DataLoader would bury the message
                return Failed.of(error)


class EpochPlan:
    """The batch sampler: the lists of ``(index, seed)`` the current epoch reads."""

    def __init__(self):
        self.batches: list = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def collate(items):
    """Stack a batch; a sample that failed makes the whole batch that failure."""
    for item in items:
        if isinstance(item, Failed):
            return item
    return torch.utils.data.default_collate(items)


def _epoch_plan(split, order, augment: Augment, augment_order, batch_size):
    """The epoch's order of sample indices and the batch augmentation's draws for all its
    batches, taken from the generators in the order segbench has always taken them."""
    permutation = torch.randperm(len(split), generator=order)
    draws = augment.epoch_draws([len(indices) for indices in permutation.split(batch_size)], augment_order)
    return permutation, draws


def _seeded(batches, run_seed, epoch, batch_size) -> list:
    return [[(int(index), sample_seed(run_seed, epoch, number * batch_size + position)) for position, index in enumerate(indices)]
            for number, indices in enumerate(batches)]
