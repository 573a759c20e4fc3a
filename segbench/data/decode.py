"""Reading map-style samples in worker processes: the one place where samples are decoded
in parallel, to fill the sample cache (the in-memory path) or to scan a dataset (the
streaming path), and the one place that turns a failed read into an error naming the sample.

Workers are ``torch.utils.data.DataLoader`` workers; results come back in index order. A
worker records the sample it is reading in a small shared table, so that when one dies (a
segfault in a decoder, the out-of-memory killer) the error still names the sample.
"""

from __future__ import annotations

import contextlib
import os
import re
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import SegbenchError
from .samples import MapSamples, SampleError, as_sample

PREFETCH = 4  # samples queued per worker: enough to hide a slow file, small enough to bound memory
MAX_COUNTED_VALUE = 256  # masks hold uint8-range labels: class indices and ignore_index


class SampleReadError(SegbenchError):
    """Reading a sample failed; the message names the sample and the cause."""


def read_sample(samples: MapSamples, index: int):
    """Sample ``index`` as tensors, (3, H, W) uint8 and (H, W); any failure names the sample."""
    try:
        return as_sample(*samples.read(index), where=_described(samples, index))
    except SegbenchError:
        raise
    except Exception as error:  # noqa: BLE001 - a reader's own failure, named with its sample
        raise SampleReadError(f"reading {_described(samples, index)}: {type(error).__name__}: {error}") from error


@contextlib.contextmanager
def naming_split(description: str):
    """A sample that breaks the contract, or fails to read, is named with its split too
    (``mydata train: sample 3 (a.png): ...``): an index alone does not say where it is."""
    try:
        yield
    except (SampleError, SampleReadError) as error:
        if str(error).startswith(f"{description}:"):
            raise
        raise type(error)(f"{description}: {error}") from error


def in_workers(samples: MapSamples, work: Callable, workers: int, indices=None) -> Iterator:
    """``work(samples, index, watch)`` for every index (all by default), computed by
    ``workers`` processes (0: this one), yielded in index order. ``work`` reads each sample
    within ``watch.reading_sample(i)``, so that a worker that dies is named with it."""
    indices = list(range(len(samples))) if indices is None else list(indices)
    job = _Job(samples, work, workers)
    loader = torch.utils.data.DataLoader(
        job, batch_size=None, sampler=indices, num_workers=workers, collate_fn=_identity,
        prefetch_factor=PREFETCH if workers else None, generator=torch.Generator(),  # never the global generator
    )
    try:
        for result in loader:
            if isinstance(result, Failed):
                raise result.error()
            yield result
    except RuntimeError as error:
        died = job.watch.died(samples, error)
        if died is None:
            raise
        raise died from None


def decoded(samples, index, watch):
    """``(image, mask)`` of one sample (a ``work`` for :func:`in_workers`)."""
    with watch.reading_sample(index):
        return read_sample(samples, index)


def scanned(samples, index, watch):
    """``((H, W), counts)`` of one sample: its size and its mask's pixel count per value."""
    with watch.reading_sample(index):
        _, mask = read_sample(samples, index)
    values = mask.reshape(-1).long()
    if bool((values < 0).any()) or bool((values >= MAX_COUNTED_VALUE).any()):
        bad = values[(values < 0) | (values >= MAX_COUNTED_VALUE)][:3].tolist()
        raise SampleReadError(f"{_described(samples, index)}: mask values {bad} are outside 0..255")
    counts = np.bincount(values.numpy(), minlength=MAX_COUNTED_VALUE).astype(np.uint32)
    return tuple(mask.shape), counts


class WorkerWatch:
    """Which sample each loader worker is reading, in a table shared with the workers, so that
    a worker that dies can still be named with its sample."""

    def __init__(self, workers: int):
        self.reading = torch.full((max(workers, 1), 2), -1, dtype=torch.int64).share_memory_()  # (pid, index)

    @contextlib.contextmanager
    def reading_sample(self, index: int):
        info = torch.utils.data.get_worker_info()
        slot = info.id if info else 0
        self.reading[slot, 0], self.reading[slot, 1] = os.getpid(), index
        try:
            yield
        finally:
            self.reading[slot, 1] = -1

    def dead_worker_sample(self, error: RuntimeError) -> int | None:
        """The sample a worker that died was reading, from DataLoader's message naming its pid."""
        text = str(error)
        if "worker" not in text or ("exited unexpectedly" not in text and "killed by signal" not in text):
            return None
        pids = {int(pid) for pid in re.findall(r"\d+", text.split("pid", 1)[-1])}
        for pid, index in self.reading.tolist():
            if pid in pids and index >= 0:
                return index
        return None

    def died(self, samples, error: RuntimeError) -> "SampleReadError | None":
        """The error to raise for ``error`` when it says a worker died, naming its sample."""
        index = self.dead_worker_sample(error)
        if index is None:
            return None
        return SampleReadError(f"a data worker died while reading {_described(samples, index)}: {_first_line(error)}")


class _Job(torch.utils.data.Dataset):
    """``work`` applied to one index; a failure comes back as a value (see :class:`Failed`)."""

    def __init__(self, samples, work, workers):
        self.samples, self.work = samples, work
        self.watch = WorkerWatch(workers)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        try:
            return self.work(self.samples, index, self.watch)
        except Exception as error:  # noqa: BLE001 - sent back as a value: DataLoader would bury the message
            return Failed.of(error)


@dataclass(frozen=True)
class Failed:
    """A sample's exception as a value: from a worker process as plain text (any exception
    class crosses processes this way), in this process as the exception itself."""

    message: str
    traceback: str
    original: BaseException | None = None

    @classmethod
    def of(cls, error: Exception) -> "Failed":
        message = str(error) if isinstance(error, SegbenchError) else f"{type(error).__name__}: {error}"
        in_worker = torch.utils.data.get_worker_info() is not None
        return cls(message, "".join(traceback.format_exception(error)), None if in_worker else error)

    def error(self) -> BaseException:
        if self.original is not None:
            return self.original
        error = SampleReadError(self.message)
        error.add_note(f"in the data worker:\n{self.traceback}")
        return error


def _identity(item):
    return item


def _described(samples, index) -> str:
    try:
        name = samples.describe(index)
    except Exception:  # noqa: BLE001 - naming must not hide the real failure
        name = None
    return f"sample {index}" + (f" ({name})" if name and name != f"sample {index}" else "")


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
