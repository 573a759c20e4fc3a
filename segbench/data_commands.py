"""The ``segbench data`` commands as functions: prepare, stats, show and export the
dataset(s) a suite (or a dataset name with parameters) describes.

They read suites and build datasets through the engine, so they sit above both, beside the
API; ``segbench.data`` holds only what datasets and the engine use."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .data import cache
from .data.loading import LoadingRequest, default_workers, resolve_workers
from .data.samples import SegmentationData
from .engine.build import build_dataset
from .errors import SegbenchError
from .params import check_params
from .plugins import load_catalogue
from .suite import load_suite


@dataclass
class DatasetSource:
    """One dataset to build: its resolved reference, where it was named, and the data path
    its runs ask for (``[train] data_loading`` and ``data_workers``)."""

    ref: dict  # {"name": ..., "params": {...}}, every default filled in
    origin: str
    loading: LoadingRequest = field(default_factory=lambda: LoadingRequest("auto", default_workers()))


def suite_datasets(path, plugins=(), overrides=None):
    """The catalogue and the distinct datasets of the suite at ``path``, in order."""
    suite = load_suite(path, load_catalogue, extra_plugins=plugins, overrides=overrides)
    sources, seen = [], set()
    for variant in suite.variants:
        ref, train = variant.config["dataset"], variant.config["train"]
        loading = LoadingRequest(train["data_loading"], resolve_workers(train["data_workers"]))
        key = json.dumps([ref, loading.mode], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            sources.append(DatasetSource(ref, f"{suite.path} (variant {variant.label!r})", loading))
    return suite.catalogue, sources


def named_dataset(name: str, params: dict, plugins=()):
    """The catalogue and the dataset ``name`` with ``params`` checked and defaults filled."""
    catalogue = load_catalogue(plugins)
    component = catalogue.get("dataset", name)
    params = {key.removeprefix("dataset."): value for key, value in params.items()}
    problems = [message for _, message in check_params(component, params)]
    if problems:
        raise SegbenchError("; ".join(problems))
    resolved = {p.name: p.default for p in component.params.values() if not p.required}
    resolved.update(params)
    return catalogue, [DatasetSource({"name": name, "params": resolved}, f"dataset {name!r}")]


def resolve_sources(source: str, plugins=(), overrides=None):
    """A suite file (``*.toml`` or an existing file) or a dataset name with ``--set`` params."""
    source = str(source)
    if source.endswith(".toml") or Path(source).is_file():
        return suite_datasets(source, plugins, overrides)
    return named_dataset(source, overrides or {}, plugins)


def build(catalogue, source: DatasetSource, cache_dir=None) -> SegmentationData:
    """The dataset of ``source``, through the sample cache in ``cache_dir`` (None: the
    default one, see :func:`segbench.data.cache.resolve_cache_dir`)."""
    try:
        return build_dataset(catalogue, source.ref, cache.resolve_cache_dir(cache_dir), reuse=False, loading=source.loading)
    except SegbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a reader's failure is bad input, named
        raise SegbenchError(f"{source.origin}: dataset {source.ref['name']!r}: {type(exc).__name__}: {exc}") from None


def prepare(catalogue, sources, cache_dir=None, show_progress=True) -> list:
    """Decode every dataset into the cache (or scan it, on the streaming path), with each
    source's workers; returns one :class:`cache.CacheEvent` each."""
    cache.take_events()
    with cache.showing_progress(show_progress):
        for source in sources:
            build(catalogue, source, cache_dir)
    return cache.take_events()


def format_events(events) -> str:
    return "\n".join(_event_line(event) for event in events) or "nothing to cache: the dataset does not use the sample cache"


def _event_line(event) -> str:
    workers = f" with {event.workers} worker{'s' if event.workers > 1 else ''}" if event.workers and not event.hit else ""
    if event.loading == "streaming":
        state = "scan already cached" if event.hit else f"scanned{workers}"
        return (f"{event.name}: streaming from its files ({event.samples:,} samples, {event.nbytes / 2**20:,.1f} MiB decoded, "
                f"never held); {state} in {event.seconds:.1f} s -> {event.path}")
    state = "already cached" if event.hit else f"decoded{workers} and cached"
    return f"{event.name}: in memory; {state} in {event.seconds:.1f} s, {event.nbytes / 2**20:,.1f} MiB -> {event.path}"
