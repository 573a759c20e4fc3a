"""Turn a resolved configuration into the dataset, model, loss, optimizer and metrics."""

from __future__ import annotations

import inspect
import json
import math

import torch

from ..components import Catalogue
from ..data import SegmentationData
from ..data.cache import plugin_origin, source_fingerprint
from ..data.loading import LoadingRequest, prepared, requested

_DATASETS: dict[str, SegmentationData] = {}


def build_dataset(catalogue: Catalogue, ref: dict, cache_dir, reuse: bool = True, loading: LoadingRequest | None = None) -> SegmentationData:
    """The dataset ``ref`` names, on the data path ``loading`` asks for (see
    :mod:`segbench.data.loading`; by default in memory). Datasets are built once per process
    and path and shared by every run that uses them (``reuse=False`` asks the dataset again,
    e.g. to see whether its cache was hit)."""
    loading = loading or LoadingRequest()
    component = catalogue.get("dataset", ref["name"])
    origin = dataset_origin(component)
    key = json.dumps([ref, str(cache_dir), loading.mode, origin], sort_keys=True, default=str)
    if key not in _DATASETS or not reuse:
        with requested(loading.mode, loading.workers), plugin_origin(origin):
            data = component.build(cache_dir, **ref["params"])
        if not isinstance(data, SegmentationData):
            raise TypeError(f"dataset {ref['name']!r} returned {type(data).__name__}, not SegmentationData")
        _DATASETS[key] = prepared(data, loading)
    return _DATASETS[key]


def dataset_origin(component) -> dict:
    """What a dataset's samples depend on of its plugin, beyond the key its factory gives:
    an installed release's name and version (bump it when the samples change); a local or
    editable plugin's source, fingerprinted (its package's ``.py`` files and the factory's
    file), since its code changes without a new version."""
    origin = {"plugin": component.provenance}
    if component.source:
        origin["source"] = source_fingerprint([component.source, _defining_file(component.factory)])
    return origin


def _defining_file(factory) -> str:
    try:
        return inspect.getsourcefile(factory) or ""
    except TypeError:  # a builtin or a C extension: nothing to fingerprint
        return ""


def build_model(catalogue: Catalogue, model: dict, out_channels: int) -> torch.nn.Module:
    upsampler = catalogue.get("upsampler", model["upsampler"]["name"])
    upsampler_params = model["upsampler"]["params"]

    def make_upsampler(in_channels, out_channels, scale_factor):
        return upsampler.build(in_channels, out_channels, scale_factor, **upsampler_params)

    architecture = catalogue.get("architecture", model["architecture"]["name"])
    return architecture.build(out_channels, make_upsampler, **model["architecture"]["params"])


def build_loss(catalogue: Catalogue, ref: dict, data: SegmentationData):
    return catalogue.get("loss", ref["name"]).build(data.mode, data.num_classes, data.ignore_index, **ref["params"])


def build_metrics(catalogue: Catalogue, refs: list, data: SegmentationData) -> dict:
    return {ref["name"]: catalogue.get("metric", ref["name"]).build(data.num_classes, data.ignore_index, **ref["params"]) for ref in refs}


def build_schedule(name: str, optimizer, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0):
    """Per-step learning-rate factor: constant, cosine or poly (power 0.9, as in DeepLab)
    decaying to ``min_lr`` (mmengine's ``eta_min``: ``(lr - min_lr) * decay + min_lr``, in
    every parameter group), times a linear warm-up over the first ``warmup_steps``. Decaying
    to (nearly) zero makes the last epoch's numbers far less noisy; warm-up keeps large rates
    from wrecking a randomly initialised model in its first steps."""
    factors = {
        "constant": lambda step: 1.0,
        "cosine": lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)),
        "poly": lambda step: (1 - step / total_steps) ** 0.9,
    }
    decay = factors[name]

    def group_factor(lr):
        floor = min_lr / lr if lr and name != "constant" else 0.0

        def factor(step):
            decayed = (1 - floor) * decay(step) + floor
            return decayed * min(1.0, (step + 1) / warmup_steps) if warmup_steps else decayed

        return factor

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [group_factor(group["lr"]) for group in optimizer.param_groups])


OPTIMIZERS = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW, "adam": torch.optim.Adam}


def build_optimizer(config: dict, model: torch.nn.Module, lr_mult: dict | None = None) -> torch.optim.Optimizer:
    """The optimiser ``config`` names, over :func:`param_groups` of ``model``."""
    settings = {k: v for k, v in config.items() if k != "name"}
    return OPTIMIZERS[config["name"]](param_groups(model, settings["lr"], lr_mult or {}), **settings)


def param_groups(model: torch.nn.Module, lr: float, lr_mult: dict) -> list:
    """One group at ``lr`` and one per ``[train] lr_mult`` key at ``lr`` x its multiplier,
    as mmengine's ``paramwise_cfg.custom_keys``: a parameter goes to the longest key its
    full name contains (equal lengths: the alphabetically first). Empty groups are left out."""
    keys = sorted(lr_mult, key=lambda key: (-len(key), key))
    groups = {None: [], **{key: [] for key in keys}}
    for name, parameter in model.named_parameters():
        groups[next((key for key in keys if key in name), None)].append(parameter)
    return [{"params": params, "lr": lr if key is None else lr * lr_mult[key]} for key, params in groups.items() if params]
