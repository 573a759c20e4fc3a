"""Preflight: everything a suite can get wrong is found before anything trains.

Each distinct dataset is built once (and so cached for the runs) and its labels are
checked. Each distinct model, loss and metric is built against the real dataset its
variant trains on (its mode, class count and ``ignore_index``) and run once on a tiny real
batch, as the first training step would do: each distinct model (architecture and upsampler
with their parameters, and the dataset's class count) is built once, however many variants
share it (they are checked one after another), and runs one training forward per distinct
batch; each distinct loss is tried on those logits, and a loss's gradient goes back through
the model once; then one evaluation forward, and one update and compute of each metric. On the way
every plugin contract the engine relies on is checked (see ``segbench.hookspecs``):

- logits (N, C, H, W), C being 1 for a binary dataset, else its class count;
- an upsampler maps (N, C_in, H, W) to (N, C_out, s*H, s*W);
- a loss returns a finite scalar tensor whose gradient reaches the logits, and theirs the
  model's parameters;
- every label is in [0, K) or is ``ignore_index``;
- metric values and component parameters are numbers (or text) a JSON record can hold.

A violation is bad input (exit 2) that names the component, its plugin and its version,
instead of a bare torch error in the first training step of every run.

The checks run on the CPU in full precision, on models of their own, and leave every
random generator as they found it: the runs train exactly as they would without them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import math
import random
from collections.abc import Mapping

import numpy as np
import torch

from .component_checks import (ContractViolation, check_all_ignored_loss, check_declared_direction, check_logits, check_loss_value,
                               check_metric_direction, check_metric_keeps_no_state, check_upsampler_output, named)
from .components import metric_direction
from .data.cache import resolve_cache_dir
from .data.loading import LoadingRequest, resolve_workers
from .data.samples import mask_dtype_problem, normalize, split_mask_dtypes
from .data.transforms import apply, is_per_sample, pipeline
from .engine import build
from .engine.device import single_torch_thread
from .engine.inference import size_groups
from .engine.logits import AUX, MAIN, split_logits
from .errors import SegbenchError, SuiteError
from .preflight_watch import checking
from .store import to_json_safe

# What a plugin may raise in its preflight: its sys.exit() is its own failure, reported
# like any other, not the end of segbench.
PLUGIN_FAILURES = (Exception, SystemExit)

BATCH_IMAGES = 2  # the smallest batch that batch norm accepts in training mode: it stands for any larger one
FALLBACK_CHANNELS = 2  # a model whose dataset is bad input is still built, to check its parameters
STORABLE = "a number, text, a boolean, or a list or table of those"
LR_MULT_PREFIXES_SHOWN = 12


# One problem line, already worded: what broke which contract, and how (the checks shared
# with segbench.testing raise it too).
Problem = ContractViolation


def preflight(suite, cache_dir=None) -> None:
    """Raise SuiteError listing every problem :func:`suite_problems` finds."""
    if cache_dir is None:
        cache_dir = resolve_cache_dir()
    problems = suite_problems(suite, cache_dir)
    if problems:
        raise SuiteError(suite.path, problems)


def suite_problems(suite, cache_dir, only=None) -> list:
    """Every problem found before training, one line each: components first, then data.
    ``only`` (variant ids) limits the checks to those variants: the ones with runs to do."""
    variants = [variant for variant in suite.variants if only is None or variant.id in only]
    datasets, problems = built_datasets(suite, cache_dir, variants)
    return model_problems(suite, datasets, variants) + problems


def dataset_problems(suite, cache_dir) -> list:
    return built_datasets(suite, cache_dir)[1]


# ----------------------------------------------------------------------------- datasets


def built_datasets(suite, cache_dir, variants=None):
    """Each distinct dataset of the suite's ``variants`` (default: all), built once (and so
    cached for the runs), by :func:`dataset_key`; None where it is bad input: a missing
    root, a bad annotation file, an empty subset, labels out of range. Returns (datasets,
    problems)."""
    problems, datasets, unbatchable = [], {}, {}
    for variant in suite.variants if variants is None else variants:
        ref, train = variant.config["dataset"], variant.config["train"]
        key = dataset_key(variant.config)
        if key not in datasets:
            datasets[key] = _build_checked(suite, ref, _loading(train), cache_dir, problems)
        data = datasets[key]
        batch_size = train["batch_size"]
        if data is not None and batch_size > len(data.train):
            problems.append(
                f"variant {variant.label!r}: train.batch_size = {batch_size} is larger than the "
                f"{len(data.train)} training images of dataset {ref['name']!r}; use at most {len(data.train)}"
            )
        if data is not None and not train["augment"].get("crop") and len(data.train.sizes()) > 1:
            unbatchable.setdefault(_unbatchable(ref, data), []).append(variant.label)
    problems += [f"{_variants(labels)}: {problem}" for problem, labels in unbatchable.items()]
    return datasets, problems


def dataset_key(config) -> str:
    """Which built dataset a variant trains on: its dataset and the data path it asks for."""
    return json.dumps([config["dataset"], config["train"]["data_loading"]], sort_keys=True, default=str)


def _loading(train) -> LoadingRequest:
    return LoadingRequest(train["data_loading"], resolve_workers(train["data_workers"]))


def _build_checked(suite, ref, loading, cache_dir, problems):
    with checking(f"dataset {ref['name']!r}: building it and checking its labels"):
        return _checked_dataset(suite, ref, loading, cache_dir, problems)


def _checked_dataset(suite, ref, loading, cache_dir, problems):
    try:
        data = build.build_dataset(suite.catalogue, ref, cache_dir, loading=loading)
    except PLUGIN_FAILURES as exc:  # noqa: BLE001 - the dataset's own message says what is wrong
        problems.append(f"dataset {ref['name']!r}: {type(exc).__name__}: {exc}")
        return None
    component = suite.catalogue.get("dataset", ref["name"])
    found = list(_wrong_mask_dtypes(component, data)) or list(_stray_labels(component, data))
    problems.extend(found)
    return None if found else data


def _wrong_mask_dtypes(component, data):
    """Float or bool masks pass the label check (1.0 is a class) and train, then break what
    indexes with them (a report's per-class counts): refused by the check every map-style
    read makes (map-style samples are checked as they are read)."""
    for role in ("train", "val"):
        split = getattr(data, role)
        for dtype, index in split_mask_dtypes(split).items():
            problem = mask_dtype_problem(dtype)
            if problem:
                yield f"{_named(component)}: {role} {split.describe(index)}: {problem}"


def _unbatchable(ref, data) -> str:
    """Training images of several native sizes cannot be stacked into batches without a crop
    (validation images can: they are evaluated in groups of one size, see engine/inference.py)."""
    sizes = data.train.sizes()
    examples = ", ".join(f"{h}x{w}" for h, w in sizes[:3])
    return (f"dataset {ref['name']!r}: its train images keep {len(sizes)} native sizes ({examples}, ...); batches need one size, "
            "so set dataset.image_size (e.g. image_size = 256), or crop them as they are read: train.augment.crop = 512")


def _stray_labels(component, data):
    """Labels the losses cannot index ("Target 3 is out of bounds" in the first step)."""
    found = {role: _labels_outside(getattr(data, role), data.num_classes, data.ignore_index) for role in ("train", "val")}
    stray = sorted(set().union(*found.values()))
    if stray:
        roles = " and ".join(role for role, labels in found.items() if labels)
        shown = ", ".join(str(value) for value in stray[:5]) + (", ..." if len(stray) > 5 else "")
        yield (
            f"{_named(component)}: its {roles} masks hold label{'s' if len(stray) > 1 else ''} {shown}; a label must be "
            f"a class index in [0, {data.num_classes}) for its {data.num_classes} classes, or its ignore_index {data.ignore_index}"
        )


def _labels_outside(split, num_classes, ignore_index) -> list:
    """The distinct mask values outside [0, num_classes) other than ``ignore_index``."""
    return [value for value in split.distinct_labels() if not 0 <= value < num_classes and value != ignore_index]


# ----------------------------------------------------------------------------- components


def model_problems(suite, datasets=None, variants=None) -> list:
    """Build and run each distinct model, loss and metric as the module docstring says.

    One line per distinct failure; variants that fail the same way share the line (seven
    upsamplers on an encoder whose weights cannot be fetched are one problem, not seven).
    Without a variant's dataset (bad input, reported by :func:`built_datasets`) only its
    model is built: how a loss or a metric is built depends on the dataset."""
    variants = suite.variants if variants is None else variants
    checks = _Checks(suite.catalogue, [variant.label for variant in variants])
    with _generators_kept(), single_torch_thread():
        for variant in by_model(variants):
            checks.variant(variant, (datasets or {}).get(dataset_key(variant.config)))
    return checks.problems()


def by_model(variants) -> list:
    """``variants`` with those sharing a model next to each other (in order of each
    model's first variant), so that each distinct model is built once and only one is
    held at a time (:meth:`_Checks.model`)."""
    first = {}
    for index, variant in enumerate(variants):
        first.setdefault(model_key(variant.config["model"]), index)
    return sorted(variants, key=lambda variant: first[model_key(variant.config["model"])])


def model_key(model_ref) -> str:
    """What determines a built network besides its output channels: the architecture and
    the upsampler, with their parameters."""
    return json.dumps(model_ref, sort_keys=True, default=str)


class _Checks:
    """Runs each distinct check once and remembers its outcome for the variants sharing it."""

    def __init__(self, catalogue, order=()):
        self.catalogue = catalogue
        self.order = {label: index for index, label in enumerate(order)}  # problems are listed in the suite's order
        self.built: dict[tuple, object] = {}  # the model being checked: (its model key, output channels) -> it
        self.forwards: dict[str, _Forward] = {}  # the current model's training forwards, by their check's key
        self.outcomes: dict[str, str | None] = {}  # check -> its problem, or None
        self.build_failures: dict[str, str] = {}  # a build that failed is not tried again
        self.labels: dict[str, list] = {}  # problem -> the variants that have it
        self.parameter_names: dict[str, list] = {}  # model -> its parameters' names, for [train] lr_mult
        self.ignored_labels: dict[int, bool] = {}  # id(dataset) -> whether its train masks hold ignore_index

    def problems(self) -> list:
        """One line per problem, in the suite's order of the variants (checked model by model)."""
        def place(label):
            return self.order.get(label, len(self.order))

        lines = sorted(self.labels.items(), key=lambda item: min(map(place, item[1])))
        return [f"{_variants(sorted(labels, key=place))}: {problem}" for problem, labels in lines]

    def variant(self, variant, data):
        label, config = variant.label, variant.config
        for kind, ref in _component_refs(config):
            self.check(label, ["params", kind, ref], lambda kind=kind, ref=ref: self.storable_params(kind, ref))
        if data is None or not len(data.train):  # bad input, reported with the dataset
            self.check(label, ["model", config["model"]], lambda: self.model(config["model"], FALLBACK_CHANNELS))
            self.check_lr_mult(label, config)
            return
        data_key = dataset_key(config)
        images = step_images(config["train"], len(data.train))
        batch_size = config["train"]["batch_size"] if images == 1 else None  # named by a one-image failure
        # the model runs once per distinct model and batch; each loss is tried on its logits
        forward_key = ["forward", config["model"], config["train"]["augment"], data_key, images, batch_size]
        if self.check(label, forward_key, lambda: self.forward(config, data, images, forward_key)) is None:
            self.check(label, ["step", config["model"], config["train"]["loss"], config["train"]["augment"], data_key, images,
                               batch_size], lambda: self.step(config, data, self.forwards[json.dumps(forward_key, default=str)]))
        for ref in config["eval"]["metrics"]:
            self.check(label, ["metric", ref, data_key], lambda ref=ref: self.metric(ref, data))
        self.check_lr_mult(label, config)

    def check_lr_mult(self, label, config):
        """After the model's own check, which built it and noted its parameters' names."""
        if config["train"].get("lr_mult"):
            self.check(label, ["lr_mult", config["model"], config["train"]["lr_mult"]], lambda: self.lr_mult(config))

    def check(self, label, key, run) -> str | None:
        """Run the check ``key`` unless it ran already; its problem (or None) is ``label``'s."""
        step = _check_step(label, key)
        key = json.dumps(key, sort_keys=True, default=str)
        if key not in self.outcomes:
            with checking(step):
                self.outcomes[key] = _problem_of(run)
        problem = self.outcomes[key]
        if problem is not None and label not in self.labels.setdefault(problem, []):
            self.labels[problem].append(label)
        return problem

    def build(self, key, what, make):
        """``make()``; a failure raises Problem, at once for a build that failed before."""
        key = json.dumps(key, sort_keys=True, default=str)
        if key not in self.build_failures:
            try:
                with checking(f"building {what}"):
                    return make()
            except PLUGIN_FAILURES as exc:  # noqa: BLE001 - any rejection is reported, with its cause
                cause = f"{type(exc).__name__}: {exc}"
                self.build_failures[key] = cause if isinstance(exc, SegbenchError) else f"{what} cannot be built: {cause}"
        raise Problem(self.build_failures[key])

    def named(self, kind, name) -> str:
        return _named(self.catalogue.get(kind, name))

    # -- the checks

    def storable_params(self, kind, ref):
        """Parameters go into every record (JSON) and into the variant id."""
        component = self.catalogue.get(kind, ref["name"])
        for name, value in ref["params"].items():
            if not _storable(value):
                declared = component.params.get(name)
                source = "default" if declared is not None and not declared.required and declared.default is value else "value"
                raise Problem(f"{_named(component)}: parameter {name} has the {source} {value!r} ({type(value).__name__}), "
                              f"which a JSON record cannot hold; a parameter must be {STORABLE}")

    def model(self, model_ref, channels):
        """The model, built once for all the variants sharing it: they come one after
        another (:func:`by_model`), so only the current model is kept. Its gradients are
        cleared for each check that trains it."""
        key = model_key(model_ref)
        built_key = (key, json.dumps(channels, default=str))
        model = self.built.get(built_key)
        if model is None:
            model = self.build(["model", model_ref, channels], _describe_model(model_ref),
                               lambda: build.build_model(_WatchedUpsamplers(self.catalogue), model_ref, channels))
            if any(model_key_built != key for model_key_built, _ in self.built):  # an earlier model is done with
                self.built, self.forwards = {}, {}
            self.built[built_key] = model
        model.zero_grad(set_to_none=True)
        self.parameter_names.setdefault(key, [name for name, _ in model.named_parameters()])
        return model

    def lr_mult(self, config):
        """Every ``[train] lr_mult`` key must be part of some parameter's name: one that is
        not (a typo, another architecture's names) would silently change nothing."""
        model_ref = config["model"]
        names = self.parameter_names.get(model_key(model_ref))
        if names is None:  # only if its own check failed to build it: then this raises that failure
            names = [name for name, _ in self.model(model_ref, FALLBACK_CHANNELS).named_parameters()]
        unmatched = [key for key in config["train"]["lr_mult"] if not any(key in name for name in names)]
        if unmatched:
            raise Problem(_unmatched_lr_mult(unmatched, names, self.named("architecture", model_ref["architecture"]["name"])))

    def forward(self, config, data, images, key):
        """The model's training forward on ``images`` images (see :func:`step_images`) and
        one evaluation forward; the training forward's outputs are kept (``key``) for the
        losses of every variant that shares this model and batch (:meth:`step`)."""
        model_ref, augment = config["model"], config["train"]["augment"]
        model = self.model(model_ref, data.output_channels)
        architecture = f"{self.named('architecture', model_ref['architecture']['name'])} with upsampler {model_ref['upsampler']['name']!r}"
        try:
            (logits, aux), masks = _train_forward(model, _tiny_batch(data.train, augment, data.ignore_index, images), data, architecture)
        except Problem as problem:
            if images != 1 or len(data.train) < 2:
                raise
            # Fine on two images: the model cannot train on one (batch norm), which this variant's batches come to.
            _train_forward(model, _tiny_batch(data.train, augment, data.ignore_index, 2), data, architecture)
            raise Problem(_one_image_problem(architecture, problem, config["train"]["batch_size"], len(data.train))) from problem
        self.forwards[json.dumps(key, default=str)] = _Forward(model, architecture, logits, aux, masks)
        if len(data.val):
            model.eval()
            with torch.no_grad():
                _logits(model, _tiny_batch(data.val)[0], data, architecture, training=False)

    def step(self, config, data, forward):
        """The rest of a training step with this variant's loss: the loss on the model's
        logits (a finite scalar whose gradient reaches them), and its gradient through the
        model, as the first training step would do."""
        loss_ref = config["train"]["loss"]
        loss_fn = self.build(["loss", loss_ref, data.mode, data.num_classes, data.ignore_index],
                             f"loss {_describe(loss_ref)}", lambda: build.build_loss(self.catalogue, loss_ref, data))
        loss_name = self.named("loss", loss_ref["name"])
        gradients = _loss_gradients(loss_fn, forward, data, loss_name)
        forward.backward(gradients, loss_name)
        if self.meets_ignored_pixels(data, config["train"]["augment"]):
            _all_ignored_loss(loss_fn, forward.logits, forward.masks, data, loss_name)

    def meets_ignored_pixels(self, data, augment) -> bool:
        """Whether training can see a batch of ignored pixels only: the masks hold
        ``ignore_index``, or a crop pads with it."""
        if augment.get("crop"):
            return True
        if id(data) not in self.ignored_labels:
            self.ignored_labels[id(data)] = data.ignore_index in data.train.distinct_labels()
        return self.ignored_labels[id(data)]

    def metric(self, ref, data):
        """Fresh instances agree on the same batch (no state kept between evaluations), their
        values are floats a record holds, and the declared direction agrees with the scores
        of a perfect and a wrong prediction."""
        def make():
            return build.build_metrics(self.catalogue, [ref], data)[ref["name"]]

        self.build(["metric", ref, data.num_classes, data.ignore_index], f"metric {_describe(ref)}", make)
        component = self.catalogue.get("metric", ref["name"])
        name = _named(component)
        _, masks = _tiny_batch(data.val if len(data.val) else data.train)
        # the true masks mirrored: label maps that are valid but neither perfect nor empty
        predictions = torch.where(masks == data.ignore_index, 0, masks).flip(-1)
        declared = metric_direction(component)
        with torch.no_grad():
            check_metric_keeps_no_state(name, make, predictions, masks, data.num_classes)
            check_declared_direction(name, declared, make())
            check_metric_direction(name, make, masks, data.num_classes, data.ignore_index, declared)


def step_images(train, images: int) -> int:
    """How many images the preflight's training step takes: the fewest a step of this
    variant gets (its batch_size, or the last batch of an epoch, which the engine keeps), at
    most ``BATCH_IMAGES``: only a batch of one image trains differently (batch norm refuses it)."""
    batch_size = min(train["batch_size"], images) if images else train["batch_size"]
    left_over = images % batch_size if images else 0
    steps_per_epoch = math.ceil(images / batch_size) if images else 0
    reaches_last = not train.get("iterations") or train["iterations"] >= steps_per_epoch
    smallest = left_over if left_over and reaches_last else batch_size
    return max(1, min(smallest, BATCH_IMAGES))


def _train_forward(model, batch, data, architecture):
    """The training forward of the first step, its contracts checked: ((logits, auxiliary
    logits or None), masks)."""
    images, masks = batch
    model.train()
    with torch.enable_grad():
        return _logits(model, images, data, architecture), masks


class _Forward:
    """One training forward of a model, kept for the losses of the variants that share it:
    each loss is tried on a copy of its logits (:func:`_loss_gradients`); the first loss's
    gradient goes back through the model (:meth:`backward`), once."""

    def __init__(self, model, architecture, logits, aux, masks):
        self.model, self.architecture, self.logits, self.aux, self.masks = model, architecture, logits, aux, masks
        self.failure = None  # the backward through the model: None until done, then "" or what went wrong

    def outputs(self) -> list:
        return [self.logits] if self.aux is None else [self.logits, self.aux]

    def backward(self, gradients, loss_name):
        if self.failure is None:
            self.failure = self._backward(gradients)
        if self.failure:
            raise Problem(f"{self.architecture} with {loss_name}: {self.failure}")

    def _backward(self, gradients) -> str:
        pairs = [(output, gradient) for output, gradient in zip(self.outputs(), gradients) if gradient is not None]
        try:
            torch.autograd.backward([output for output, _ in pairs], [gradient for _, gradient in pairs])
        except PLUGIN_FAILURES as exc:
            return f"backward failed: {type(exc).__name__}: {exc}"
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if trainable and all(p.grad is None for p in trainable):
            return "the gradient of its logits does not reach the model's parameters; the logits must be computed from them"
        return ""


def _loss_gradients(loss_fn, forward, data, loss_name) -> list:
    """The loss on the forward's logits (and auxiliary logits), as the training step sums
    it; returns its gradient with respect to each. The loss gets copies, so that what it
    does to them stays its own."""
    leaves = [output.detach().requires_grad_() for output in forward.outputs()]
    with torch.enable_grad():
        loss = sum(_loss_value(loss_fn, leaf.clone(), forward.masks, data, loss_name) for leaf in leaves)
        try:
            loss.backward()
        except PLUGIN_FAILURES as exc:
            raise Problem(f"{forward.architecture} with {loss_name}: backward failed: {type(exc).__name__}: {exc}") from exc
    if all(leaf.grad is None for leaf in leaves):
        raise Problem(f"{loss_name}: its gradient does not reach the model's parameters; a loss must be computed from the logits")
    return [leaf.grad for leaf in leaves]


def _one_image_problem(architecture, problem, batch_size, images) -> str:
    """A model that trains on two images but not on one, and a variant that gives it one."""
    cause = problem.__cause__
    said = f"{type(cause).__name__}: {cause}" if cause is not None else str(problem)
    fix = "or use a norm layer that trains on one image (e.g. GroupNorm)"
    if batch_size == 1:
        return (f"{architecture}: cannot train on a batch of one image ({said}), and train.batch_size = 1: batch norm needs "
                f"2 or more values per channel; set train.batch_size = 2 or more, {fix}")
    return (f"{architecture}: cannot train on a batch of one image ({said}), and train.batch_size = {batch_size} ends each epoch "
            f"of its {images} training images with a batch of one (the last batch is kept); set train.batch_size to one that "
            f"leaves no single image, e.g. {_closest_batch_size(batch_size, images)}, {fix}")


def _closest_batch_size(batch_size, images) -> int:
    """The batch size nearest ``batch_size`` (smaller first) whose last batch is not one image."""
    for distance in range(1, images):
        for candidate in (batch_size - distance, batch_size + distance):
            if 2 <= candidate <= images and images % candidate != 1:
                return candidate
    return images


class _WatchedUpsamplers:
    """The catalogue, with every upsampler the model builds checking its output shape on
    each call, so that a wrong one is named, not the architecture it breaks."""

    def __init__(self, catalogue):
        self.catalogue = catalogue

    def get(self, kind, name):
        component = self.catalogue.get(kind, name)
        if kind != "upsampler":
            return component

        def watched(in_channels, out_channels, scale_factor, **params):
            module = component.factory(in_channels, out_channels, scale_factor, **params)
            if isinstance(module, torch.nn.Module):
                module.register_forward_hook(_upsampler_contract(component, out_channels, scale_factor), with_kwargs=True)
            return module

        return dataclasses.replace(component, factory=watched)


def _upsampler_contract(component, out_channels, scale_factor):
    def check(module, args, kwargs, output):
        if not args or not isinstance(args[0], torch.Tensor) or args[0].ndim != 4:
            return
        # with more arguments (max-unpool indices, an output_size) H and W are the upsampler's to decide
        extra = len(args) > 1 or bool(kwargs) or not isinstance(scale_factor, (int, float))
        check_upsampler_output(_named(component), output, tuple(args[0].shape), out_channels, scale_factor, free_size=extra)

    return check


def _logits(model, images, data, architecture, training=True):
    try:
        outputs = model(images)
    except Problem:
        raise
    except PLUGIN_FAILURES as exc:
        raise Problem(f"{architecture}: forward on images of shape {tuple(images.shape)} failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(outputs, Mapping) and not training:
        n, _, h, w = images.shape
        detail = "auxiliary logits" if AUX in outputs else f"a {type(outputs).__name__}"
        raise Problem(f"{architecture}: returned {detail} in evaluation mode (model.eval()); expected logits, a tensor of shape "
                      f"{(n, data.output_channels, h, w)}, alone (in training a model may return "
                      f'{{"{MAIN}": logits, "{AUX}": auxiliary logits}})')
    if isinstance(outputs, Mapping) and MAIN not in outputs:
        raise Problem(f"{architecture}: returned a mapping with keys {sorted(map(str, outputs))}; expected logits, "
                      f'or in training {{"{MAIN}": logits, "{AUX}": auxiliary logits}}')
    logits, aux = split_logits(outputs)
    _check_logits(architecture, logits, images, data)
    if aux is not None:
        _check_logits(f"{architecture} (auxiliary head)", aux, images, data)
    return logits, aux


def _check_logits(architecture, logits, images, data):
    check_logits(architecture, logits, tuple(images.shape), data.output_channels, binary=data.mode == "binary")


def _loss_value(loss_fn, logits, masks, data, name):
    on = f"logits of shape {tuple(logits.shape)} and targets of shape {tuple(masks.shape)} ({data.mode}, {data.num_classes} classes)"
    try:
        value = loss_fn(logits, masks)
    except PLUGIN_FAILURES as exc:
        raise Problem(f"{name}: failed on {on}: {type(exc).__name__}: {exc}") from exc
    check_loss_value(name, value, f"{len(masks)} real images of the dataset", on)
    return value


def _all_ignored_loss(loss_fn, logits, masks, data, name):
    try:
        check_all_ignored_loss(name, loss_fn, logits, data.ignore_index, masks.shape)
    except Problem:
        raise
    except PLUGIN_FAILURES as exc:
        raise Problem(f"{name}: failed on a batch whose every pixel is ignored (targets {tuple(masks.shape)} all "
                      f"{data.ignore_index}): {type(exc).__name__}: {exc}") from exc


def _storable(value) -> bool:
    try:
        json.dumps(to_json_safe(value), allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _problem_of(run):
    try:
        run()
    except Problem as problem:
        return str(problem)
    except PLUGIN_FAILURES as exc:  # noqa: BLE001 - a plugin failing where no contract was checked
        return f"{type(exc).__name__}: {exc}"
    return None


@contextlib.contextmanager
def _generators_kept():
    """Building and running models draws from the global random generators: put them back,
    so that whatever runs next draws what it would have drawn without preflight."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _tiny_batch(split, augment=None, ignore_index=255, images=BATCH_IMAGES):
    """The first ``images`` images, those of the first one's size (validation sizes may
    differ); for training with the per-sample pipeline, the first images through it, as a
    run sees them."""
    if not augment or not is_per_sample(augment):
        return split.batch(size_groups(split, images)[0])
    steps = pipeline(augment, ignore_index)
    pairs = [apply(steps, *split.raw(index), seed=index) for index in range(min(images, len(split)))]
    images = normalize(torch.stack([image for image, _ in pairs]))
    return images, torch.stack([mask for _, mask in pairs]).long()


def _component_refs(config):
    model = config["model"]
    yield from [("dataset", config["dataset"]), ("architecture", model["architecture"]), ("upsampler", model["upsampler"]),
                ("loss", config["train"]["loss"])]
    yield from (("metric", ref) for ref in config["eval"]["metrics"])


def _unmatched_lr_mult(keys, names, architecture) -> str:
    """Which keys match nothing, a close name for each, and the names there are (their
    first two dotted parts)."""
    parts = sorted({part for name in names for part in name.split(".")})
    prefixes = list(dict.fromkeys(".".join(name.split(".")[:2]) for name in names))
    said = []
    for key in keys:
        close = difflib.get_close_matches(key, prefixes + parts, n=1)
        said.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    shown = ", ".join(prefixes[:LR_MULT_PREFIXES_SHOWN]) + (", ..." if len(prefixes) > LR_MULT_PREFIXES_SHOWN else "")
    return (f"train.lr_mult key{'s' if len(keys) > 1 else ''} {', '.join(said)} match{'' if len(keys) > 1 else 'es'} no parameter of "
            f"{architecture}: a key must be part of a parameter's full name; this model's names begin with {shown}")


_named = named


def _variants(labels):
    if len(labels) == 1:
        return f"variant {labels[0]!r}"
    return f"variants {', '.join(repr(label) for label in labels)}"


def _describe(ref):
    params = ", ".join(f"{k}={v!r}" for k, v in ref["params"].items())
    return f"{ref['name']}({params})"


def _describe_model(model):
    return f"architecture {_describe(model['architecture'])} with upsampler {_describe(model['upsampler'])}"


def _check_step(label, key) -> str:
    """What one check of :class:`_Checks` is, in words, for segbench.preflight_watch."""
    kind = key[0]
    if kind == "params":
        what = f"the parameters of {key[1]} {key[2]['name']!r}"
    elif kind == "metric":
        what = f"metric {key[1]['name']!r}"
    else:
        what = {"model": "its model", "forward": "one training step and one evaluation forward", "step": "its loss in that step",
                "lr_mult": "train.lr_mult"}.get(kind, kind)
    return f"variant {label!r}: {what}"
