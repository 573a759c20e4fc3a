"""The two data paths, and which one a dataset takes.

- **memory**: every sample is decoded once (by ``workers`` processes) into the sample cache
  and read back memory-mapped; training batches are gathered by indexing, optionally on the
  device. Right for small sets, and the only path for a dataset that builds its samples as
  tensors itself (the embedded ``shapes`` set).
- **streaming**: map-style samples (:class:`segbench.MapSamples`) stay in their source files
  at native size and are read per batch by loader workers while training, so memory does not
  grow with the dataset. The dataset is scanned once (sizes and label counts, cached) instead.

``[train] data_loading`` asks for one (``auto`` by default: in memory when the decoded
samples would take at most a quarter of this machine's memory, else streaming). Both paths
feed a run the same samples in the same order with the same random draws, so the choice
changes speed and memory, never the numbers: it is not part of the variant id, and the record
says which path ran (``data_loading``).

A dataset factory does not see the choice: the engine sets it around the factory call
(:func:`requested`), and :func:`segbench.cached_dataset` follows it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass

MODES = ("auto", "memory", "streaming")
MEMORY_SHARE = 0.25  # auto: in memory when the decoded samples fit in this share of the machine's memory
ESTIMATE_SAMPLES = 8  # samples read per split to estimate a map-style dataset's decoded size


@dataclass(frozen=True)
class LoadingRequest:
    """What the suite asked for: a path (``MODES``) and how many worker processes read samples."""

    mode: str = "memory"  # outside a run (a factory called directly) datasets load as they always did
    workers: int = 0


_request: contextvars.ContextVar[LoadingRequest] = contextvars.ContextVar("segbench_loading", default=LoadingRequest())


@contextlib.contextmanager
def requested(mode: str = "auto", workers: int = 0):
    """Within this block, datasets load as ``mode`` says, decoding with ``workers`` processes."""
    if mode not in MODES:
        raise ValueError(f"data loading must be one of {', '.join(MODES)}, got {mode!r}")
    token = _request.set(LoadingRequest(mode, workers))
    try:
        yield
    finally:
        _request.reset(token)


def current() -> LoadingRequest:
    return _request.get()


def has_map_samples(data) -> bool:
    from .samples import MapSamples

    return isinstance(data.train, MapSamples) or isinstance(data.val, MapSamples)


def choose(request: LoadingRequest, data) -> str:
    """``"memory"`` or ``"streaming"`` for ``data`` as its factory built it."""
    if not has_map_samples(data):
        return "memory"  # samples built as tensors are in memory already
    if request.mode != "auto":
        return request.mode
    return "memory" if estimated_bytes(data) <= memory_budget() else "streaming"


def estimated_bytes(data) -> int:
    """The decoded size of both splits: exact for tensors, from a few samples for map-style ones."""
    return sum(_split_bytes(split) for split in (data.train, data.val))


def _split_bytes(split) -> int:
    from .decode import read_sample
    from .samples import MapSamples

    if not isinstance(split, MapSamples):
        return split.nbytes
    count = len(split)
    chosen = sorted({round(i * (count - 1) / max(ESTIMATE_SAMPLES - 1, 1)) for i in range(min(ESTIMATE_SAMPLES, count))})
    sizes = []
    for index in chosen:
        image, mask = read_sample(split, index)
        sizes.append(image.nbytes + mask.nbytes)
    return round(sum(sizes) / len(sizes) * count) if sizes else 0


def memory_budget() -> int:
    """Bytes of decoded samples that ``auto`` keeps in memory."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a small machine
        physical = 8 * 2**30
    return int(physical * MEMORY_SHARE)


def resolve_workers(setting) -> int:
    """``[train] data_workers``: a count, or ``"auto"``: one per core this process may use, at most 8."""
    return default_workers() if setting == "auto" else int(setting)


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def prepared(data, request: LoadingRequest):
    """``data`` ready for the engine: map-style splits that no cache has taken (a factory
    that returned them without :func:`segbench.cached_dataset`) decoded into memory, or
    scanned for streaming, as ``request`` says. Anything else is returned as it is."""
    if not has_map_samples(data):
        return data
    if choose(request, data) == "streaming":
        from .streaming import streamed

        return streamed(data, None, None, request.workers)[0]
    from .cache import held_in_memory

    return type(data)(data.classes, held_in_memory(data.train, request.workers, "train"),
                      held_in_memory(data.val, request.workers, "val"), data.ignore_index, data.mode)
