"""Build every distinct model, loss and metric of a suite once before training, so that a
parameter a component rejects (an unknown encoder name, a kernel size that cannot
upsample by 2) is reported as bad input rather than as failed runs."""

from __future__ import annotations

import json

from .engine import build
from .errors import SegbenchError, SuiteError

PREFLIGHT_CLASSES = 2


class _Shape:
    """Stands in for the dataset, whose build may be expensive."""

    mode = "multiclass"
    num_classes = PREFLIGHT_CLASSES
    ignore_index = 255


def preflight(suite) -> None:
    problems = model_problems(suite)
    if problems:
        raise SuiteError(suite.path, problems)


def model_problems(suite) -> list:
    """One line per distinct failure; variants that fail the same way share the line (seven
    upsamplers on an encoder whose weights cannot be fetched are one problem, not seven)."""
    failures: dict[str, list] = {}
    for label, what, make in _builds(suite):
        try:
            make()
        except Exception as exc:  # noqa: BLE001 - any rejection is reported, with its cause
            cause = f"{type(exc).__name__}: {exc}"
            key = cause if isinstance(exc, SegbenchError) else f"{what} cannot be built: {cause}"
            failures.setdefault(key, []).append(label)
    return [f"{_variants(labels)}: {cause}" for cause, labels in failures.items()]


def _variants(labels):
    if len(labels) == 1:
        return f"variant {labels[0]!r}"
    return f"variants {', '.join(repr(label) for label in labels)}"


def dataset_problems(suite, cache_dir) -> list:
    """Build (and so cache, for the runs) each distinct dataset: a missing root, a bad
    annotation file or an empty subset is bad input, found before anything trains."""
    problems, built = [], {}
    for variant in suite.variants:
        ref = variant.config["dataset"]
        key = json.dumps(ref, sort_keys=True, default=str)
        if key not in built:
            built[key] = _build_checked(suite, ref, cache_dir, problems)
        data = built[key]
        batch_size = variant.config["train"]["batch_size"]
        if data is not None and batch_size > len(data.train):
            problems.append(
                f"variant {variant.label!r}: train.batch_size = {batch_size} is larger than the "
                f"{len(data.train)} training images of dataset {ref['name']!r}; use at most {len(data.train)}"
            )
    return problems


def _build_checked(suite, ref, cache_dir, problems):
    try:
        data = build.build_dataset(suite.catalogue, ref, cache_dir)
    except Exception as exc:  # noqa: BLE001 - the dataset's own message says what is wrong
        problems.append(f"dataset {ref['name']!r}: {type(exc).__name__}: {exc}")
        return None
    unbatchable = list(_unbatchable(ref, data))
    problems.extend(unbatchable)
    return None if unbatchable else data


def _unbatchable(ref, data):
    """Splits whose samples keep several native sizes cannot be stacked into batches."""
    for role in ("train", "val"):
        sizes = getattr(data, role).sizes()
        if len(sizes) > 1:
            examples = ", ".join(f"{h}x{w}" for h, w in sizes[:3])
            yield (
                f"dataset {ref['name']!r}: its {role} images keep {len(sizes)} native sizes ({examples}, ...); "
                "batches need one size, so set dataset.image_size (e.g. image_size = 256)"
            )


def _builds(suite):
    seen = set()
    for variant in suite.variants:
        config = variant.config
        candidates = [
            ("model", _describe_model(config["model"]), lambda c=config: build.build_model(suite.catalogue, c["model"], PREFLIGHT_CLASSES)),
            ("loss", _describe(config["train"]["loss"]), lambda c=config: build.build_loss(suite.catalogue, c["train"]["loss"], _Shape)),
            ("metrics", "metrics", lambda c=config: build.build_metrics(suite.catalogue, c["eval"]["metrics"], _Shape)),
        ]
        for kind, what, make in candidates:
            key = json.dumps([kind, _part(config, kind)], sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                yield variant.label, what, make


def _part(config, kind):
    return {"model": config["model"], "loss": config["train"]["loss"], "metrics": config["eval"]["metrics"]}[kind]


def _describe(ref):
    params = ", ".join(f"{k}={v!r}" for k, v in ref["params"].items())
    return f"{ref['name']}({params})"


def _describe_model(model):
    return f"architecture {_describe(model['architecture'])} with upsampler {_describe(model['upsampler'])}"
