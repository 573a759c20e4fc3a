"""The checks a component must pass, shared by the preflight (``segbench validate`` and
``segbench run``, on the suite's real data) and the contract tests (``segbench.testing``,
on synthetic data): what one refuses, the other refuses, in the same words.

Each check raises :class:`ContractViolation`, whose message names the component (kind,
name, plugin and version), the input, what was expected and what came back.
"""

from __future__ import annotations

import math

import torch

METRIC_VALUE = "a float, finite or NaN, that a JSON record can hold (e.g. float(x))"


class ContractViolation(Exception):
    """One broken contract, already worded: which component, on what, expected and got."""


def named(component) -> str:
    """How a message names a component: kind, name and the plugin that provides it."""
    return f"{component.kind} {component.name!r} ({component.provider} {component.version})"


def shown(value) -> str:
    """A value as a message quotes it: its repr (clipped) and its type."""
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return f"{text} ({type(value).__name__})"


# ----------------------------------------------------------------------------- upsamplers


def check_upsampler_output(name, output, input_shape, out_channels, scale_factor, free_size=False):
    """An upsampler maps (N, C_in, H, W) to (N, out_channels, s*H, s*W); ``free_size``:
    H and W are the upsampler's to decide (it was given more arguments, e.g. an output size)."""
    n, _, h, w = input_shape
    sizes = {(math.floor(h * scale_factor), math.floor(w * scale_factor)), (round(h * scale_factor), round(w * scale_factor))}
    shape = tuple(output.shape) if isinstance(output, torch.Tensor) else None
    if shape is None or len(shape) != 4 or shape[:2] != (n, out_channels) or (not free_size and shape[2:] not in sizes):
        got = f"a tensor of shape {shape}" if shape is not None else f"a {type(output).__name__}"
        raise ContractViolation(
            f"{name}: returned {got} for input {tuple(input_shape)} with out_channels={out_channels}, scale_factor={scale_factor}; "
            "an upsampler must return (N, out_channels, H*scale_factor, W*scale_factor)")


# ----------------------------------------------------------------------------- architectures


def check_logits(name, logits, images_shape, channels, binary=False):
    """A model's logits are (N, channels, H, W) for images (N, 3, H, W)."""
    n, _, h, w = images_shape
    expected = (n, channels, h, w)
    said = "1 logit channel for a binary dataset" if binary else f"one channel per class ({channels})"
    if not isinstance(logits, torch.Tensor):
        raise ContractViolation(f"{name}: returned a {type(logits).__name__} for images of shape {tuple(images_shape)}; "
                                f"expected logits, a tensor of shape {expected} (N, {said}, H, W)")
    if tuple(logits.shape) != expected:
        raise ContractViolation(f"{name}: returned logits of shape {tuple(logits.shape)} for images of shape {tuple(images_shape)}; "
                                f"expected {expected} (N, {said}, H, W)")


def check_provides_agree(name, registered, model):
    """A model may carry ``provides`` (the standard ones do, to pass it to the registration);
    segbench reads only the registration's, so a model that carries one must say the same."""
    carried = getattr(model, "provides", None)
    if carried is not None and frozenset(carried) != frozenset(registered):
        raise ContractViolation(f"{name}: the built model's provides {sorted(carried)} differ from the registration's "
                                f"provides {sorted(registered)}; segbench matches upsamplers on the registration's "
                                "(register.add_architecture(..., provides=...)), so make them the same")


# ----------------------------------------------------------------------------- losses


def check_loss_value(name, value, on, given="", gradient=True):
    """A loss returns a finite scalar tensor (connected to the logits, with ``gradient``).
    ``on`` says what it was run on ("2 real images of the dataset"), ``given`` the shapes."""
    given = f" (given {given})" if given else ""
    if not isinstance(value, torch.Tensor):
        raise ContractViolation(f"{name}: returned a {type(value).__name__}; a loss must return a scalar tensor "
                                f"(returned {shown(value)} on {on}){given}")
    if value.ndim != 0:
        raise ContractViolation(f"{name}: returned a tensor of shape {tuple(value.shape)}; a loss must return a scalar, "
                                f"reduced over pixels and images (on {on}){given}")
    if not bool(torch.isfinite(value)):
        raise ContractViolation(f"{name}: returned {value.item()} on {on}; a loss must be finite{given}")
    if gradient and not value.requires_grad:
        raise ContractViolation(f"{name}: returned a tensor without a gradient on {on}; a loss must be computed from the logits{given}")


def check_all_ignored_loss(name, loss_fn, logits, ignore_index, target_shape):
    """A batch whose pixels are all ``ignore_index`` (a crop of void) trains like any other:
    the loss is a finite scalar, connected to the logits, with a finite gradient (0/0 is
    the usual mistake: divide by max(count, 1))."""
    target = torch.full(tuple(target_shape), ignore_index, dtype=torch.long)
    logits = logits.detach().clone().requires_grad_()
    on = "a batch whose every pixel is ignored, which must give a finite value such as 0 (divide by max(count, 1))"
    given = f"targets {tuple(target.shape)} all {ignore_index}, logits {tuple(logits.shape)}"
    value = loss_fn(logits, target)
    check_loss_value(name, value, on, given)
    value.backward()
    if logits.grad is not None and not bool(torch.isfinite(logits.grad).all()):
        raise ContractViolation(f"{name}: its gradient is not finite on {on} (given {given})")


# ----------------------------------------------------------------------------- metrics


def metric_outputs(name, metric, pred, target) -> dict:
    """``update`` once, then what segbench reads: compute(), per_image(), per_class()."""
    try:
        metric.update(pred, target)
        return {"compute()": metric.compute(), "per_image()": metric.per_image(), "per_class()": metric.per_class()}
    except ContractViolation:
        raise
    except Exception as exc:  # the metric's own failure, named with the input
        raise ContractViolation(f"{name}: failed on label maps of shape {tuple(target.shape)}: {type(exc).__name__}: {exc}") from exc


def check_metric_outputs(name, outputs, images, num_classes):
    """compute() a float; per_image() a list of one float per image; per_class() None or
    a list of one float per class."""
    check_metric_value(name, "compute()", outputs["compute()"])
    check_metric_values(name, "per_image()", outputs["per_image()"], images, "one per image")
    if outputs["per_class()"] is not None:
        check_metric_values(name, "per_class()", outputs["per_class()"], num_classes, "one per class, or None")


def check_metric_values(name, call, values, count, what):
    if not isinstance(values, (list, tuple)) or len(values) != count:
        size = f"{len(values)} values" if isinstance(values, (list, tuple)) else f"a {type(values).__name__}"
        raise ContractViolation(f"{name}: {call} returned {size} for {count}; expected a list of {count} floats, {what}")
    for value in values:
        check_metric_value(name, call, value)


def check_metric_value(name, call, value):
    """A metric value is a float (an int will do), NaN when undefined: a numpy float32 or
    a 0-d tensor is refused, as the record and the statistics expect Python floats."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or math.isinf(value):
        raise ContractViolation(f"{name}: {call} returned {shown(value)}; a metric value must be {METRIC_VALUE}")


def fresh_metrics(name, build, count=2) -> list:
    """``count`` metrics from the factory, which must be new objects: segbench builds one
    per evaluation, and a cached instance carries one evaluation's images into the next."""
    built = [build() for _ in range(count)]
    if any(metric is other for i, metric in enumerate(built) for other in built[i + 1:]):
        raise ContractViolation(f"{name}: its factory returned the same object twice ({type(built[0]).__name__} at "
                                f"{id(built[0]):#x}); segbench builds a metric for every evaluation, so the factory must return a new "
                                "instance each call (a cached one adds each evaluation's images to the last)")
    return built


def check_metric_keeps_no_state(name, build, pred, target, num_classes):
    """Two fresh metrics, each updated once with the same batch, agree exactly: a metric
    whose second result differs keeps state between instances (class or module level)."""
    first, second = (metric_outputs(name, metric, pred, target) for metric in fresh_metrics(name, build))
    check_metric_outputs(name, first, len(target), num_classes)
    for call in ("compute()", "per_image()"):
        if not _same_values(first[call], second[call]):
            raise ContractViolation(
                f"{name}: two new instances from its factory, each updated once with the same {len(target)} label maps "
                f"{tuple(target.shape)}, gave {call} = {_clipped(first[call])} and then {_clipped(second[call])}; a metric "
                "must keep no state outside its instance (no class attributes or module globals that update() changes)")
    return first


def scored_direction(name, build, target, num_classes, ignore_index):
    """(perfect, wrong): fresh metrics' compute() on a perfect prediction of ``target`` and
    on one that is wrong at every scored pixel (each label shifted by one class)."""
    valid = target != ignore_index
    perfect = torch.where(valid, target, 0)
    wrong = torch.where(valid, (target + 1) % num_classes, 0)
    values = []
    for pred in (perfect, wrong):
        (metric,) = fresh_metrics(name, build, 1)
        values.append(metric_outputs(name, metric, pred, target)["compute()"])
    return tuple(values)


def checked_direction(perfect, wrong):
    """True (higher is better) or False as the scores say; None when they cannot tell."""
    try:
        perfect, wrong = float(perfect), float(wrong)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(perfect) and math.isfinite(wrong)) or perfect == wrong:
        return None
    return perfect > wrong


def check_metric_direction(name, build, target, num_classes, ignore_index, declared: bool):
    """The declared ``higher_is_better`` agrees with the scores of a perfect and a wrong
    prediction; returns the checked direction (None when the scores cannot tell)."""
    perfect, wrong = scored_direction(name, build, target, num_classes, ignore_index)
    checked = checked_direction(perfect, wrong)
    if checked is not None and checked != declared:
        raise ContractViolation(direction_contradiction(name, declared, perfect, wrong, len(target)))
    return checked


def direction_contradiction(name, declared: bool, perfect, wrong, images=None) -> str:
    on = f" on {images} label maps" if images else ""
    word = "higher" if declared else "lower"
    return (f"{name}: declared {word} is better (higher_is_better={declared}), but a perfect prediction{on} scores {perfect:.4g} "
            f"and a wrong one {wrong:.4g}; register it with higher_is_better={not declared} "
            f"(register.add_metric(..., higher_is_better={not declared}), or the class attribute)")


def check_declared_direction(name, component_direction: bool, metric):
    """The registration (or annotation) and the built metric say the same direction: the
    summary reads one, each record the other."""
    instance = getattr(metric, "higher_is_better", True)
    if not isinstance(instance, bool):
        raise ContractViolation(f"{name}: its metric's higher_is_better is {shown(instance)}; expected True or False")
    if instance is not component_direction:
        raise ContractViolation(f"{name}: registered with higher_is_better={component_direction}, but the metric it builds says "
                                f"higher_is_better={instance}; make them the same")


def _same_values(a, b) -> bool:
    try:
        if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(_same_values(x, y) for x, y in zip(a, b))
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    return a == b or (math.isnan(a) and math.isnan(b))


def _clipped(values, shown_values=6) -> str:
    if isinstance(values, (list, tuple)):
        head = ", ".join(f"{float(v):.4g}" if _is_number(v) else repr(v) for v in values[:shown_values])
        return f"[{head}{', ...' if len(values) > shown_values else ''}] ({len(values)} values)"
    return f"{float(values):.6g}" if _is_number(values) else repr(values)


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def probed_direction(component, num_classes=3, ignore_index=255):
    """(checked, perfect, wrong) for a metric ``component`` on small synthetic label maps,
    without a dataset (a suite's gate rules, ``segbench list``); None when it cannot be
    built at its defaults or its scores cannot tell."""
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, num_classes, (2, 16, 16), generator=generator)
    target[:, :2] = ignore_index
    def build():
        return component.build(num_classes, ignore_index)

    try:
        with torch.no_grad():
            perfect, wrong = scored_direction(named(component), build, target, num_classes, ignore_index)
    except Exception:  # needs parameters, or fails here: the preflight names it on real data
        return None
    checked = checked_direction(perfect, wrong)
    return None if checked is None else (checked, float(perfect), float(wrong))


def direction_remark(component, declared: bool) -> str:
    """Why the declared direction looks wrong, or "": the scores contradict it, or else
    its description's words do."""
    probed = probed_direction(component)
    if probed is not None and probed[0] != declared:
        _, perfect, wrong = probed
        return (f"but a perfect prediction scores {perfect:.4g} and a wrong one {wrong:.4g}: "
                f"register it with higher_is_better={not declared}")
    said = (component.description or "").lower()
    opposite = "lower is better" if declared else "higher is better"
    if opposite in said and ("higher is better" if declared else "lower is better") not in said:
        return f"but its description says {opposite!r}: fix one of them"
    return ""
