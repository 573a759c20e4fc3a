"""Compound losses: weighted sums of the standard losses, and the ``bce_dice`` and
``ce_dice`` presets.

A suite writes a compound inline and can ablate its weights like any parameter::

    [train]
    loss = { name = "compound", terms = ["dice", { name = "focal", gamma = 1.0 }], weights = [0.7, 0.3] }

    [ablate]
    "train.loss.weights" = [[0.5, 0.5], [0.8, 0.2]]
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence

from torch import nn

from segbench import Component, check_params, keyword_params

from .bce import bce_loss
from .ce import cross_entropy_loss
from .dice import dice_loss
from .focal import focal_loss
from .jaccard import jaccard_loss
from .lovasz import lovasz_loss
from .targets import check_mode
from .tversky import tversky_loss

# Region losses score the overlap of whole masks; distribution losses score each pixel.
REGION_TERMS = {"dice": dice_loss, "jaccard": jaccard_loss, "lovasz": lovasz_loss, "tversky": tversky_loss}
DISTRIBUTION_TERMS = {"bce": bce_loss, "ce": cross_entropy_loss, "focal": focal_loss}
TERMS = dict(sorted({**REGION_TERMS, **DISTRIBUTION_TERMS}.items()))
COMPOUNDS = ("compound", "bce_dice", "ce_dice")  # never a term: a sum of sums is one flat sum


class WeightedSum(nn.Module):
    """sum_i weight_i * loss_i(logits, target) over (weight, loss) pairs."""

    def __init__(self, terms: Sequence[tuple[float, nn.Module]]):
        super().__init__()
        if not terms:
            raise ValueError("WeightedSum needs at least one (weight, loss) term")
        self.weights = [float(weight) for weight, _ in terms]
        self.losses = nn.ModuleList(loss for _, loss in terms)

    def forward(self, logits, target):
        return sum(weight * loss(logits, target) for weight, loss in zip(self.weights, self.losses, strict=True))

    def extra_repr(self):
        return f"weights={self.weights}"


def compound_loss(
    mode: str,
    num_classes: int,
    ignore_index: int,
    *,
    terms: list,
    weights: list | None = None,
    beta: float | None = None,
) -> WeightedSum:
    """A weighted sum of standard losses: sum_i weights[i] * terms[i].

    ``terms`` names standard losses (``"dice"``) or sets their parameters
    (``{ name = "focal", gamma = 1.0 }``); compounds do not nest. ``weights``, one number
    >= 0 per term, default to equal weights summing to 1. ``beta`` instead weighs exactly
    two terms, a region loss (dice, jaccard, lovasz, tversky) then a distribution loss
    (bce, ce, focal): beta * region + (1 - beta) * distribution.
    """
    check_mode("compound", mode)
    specs = read_terms(terms)
    factors = beta_weights(beta, weights, specs) if beta is not None else read_weights(weights, len(specs))
    losses = [build_term(index, spec, mode, num_classes, ignore_index) for index, spec in enumerate(specs)]
    return WeightedSum(list(zip(factors, losses)))


def bce_dice_loss(mode: str, num_classes: int, ignore_index: int, *, beta: float = 0.5) -> WeightedSum:
    """beta * Dice + (1 - beta) * BCE: a region term plus a per-pixel distribution term.

    Dice is the ``dice`` loss. BCE is the ``bce`` loss: binary cross-entropy with logits
    on the single channel (binary), on one-hot targets per class (multiclass) or per
    channel (multilabel), averaged over the non-ignored pixels. The same as
    ``compound`` with ``terms = ["dice", "bce"]`` and this ``beta``.
    """
    return preset("bce_dice", ["dice", "bce"], mode, num_classes, ignore_index, beta)


def ce_dice_loss(mode: str, num_classes: int, ignore_index: int, *, beta: float = 0.5) -> WeightedSum:
    """beta * Dice + (1 - beta) * cross-entropy: a region term plus a per-pixel distribution term.

    Dice is the ``dice`` loss, cross-entropy the ``ce`` loss (softmax CE in multiclass
    mode; in binary and multilabel mode it is BCE, so this equals ``bce_dice`` there).
    The same as ``compound`` with ``terms = ["dice", "ce"]`` and this ``beta``.
    """
    return preset("ce_dice", ["dice", "ce"], mode, num_classes, ignore_index, beta)


# --- reading a compound's configuration ---------------------------------------------------


def preset(name, terms, mode, num_classes, ignore_index, beta):
    check_mode(name, mode)  # checked here so that errors name the preset, not "compound"
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"{name}: beta must be in [0, 1], got {beta}")
    return compound_loss(mode, num_classes, ignore_index, terms=terms, beta=beta)


def valid_terms() -> str:
    return f"Valid terms: {', '.join(TERMS)}"


def read_terms(terms) -> list[tuple[str, dict]]:
    """``terms`` as (name, params) pairs, each checked against the standard losses."""
    if not isinstance(terms, (list, tuple)) or not terms:
        raise ValueError(f"compound: terms must be a non-empty list of loss names, got {terms!r}. {valid_terms()}")
    return [read_term(f"terms[{index}]", term) for index, term in enumerate(terms)]


def read_term(where: str, term) -> tuple[str, dict]:
    if isinstance(term, str):
        name, params = term, {}
    elif isinstance(term, dict) and isinstance(term.get("name"), str):
        name, params = term["name"], {key: value for key, value in term.items() if key != "name"}
    else:
        raise ValueError(
            f"compound: {where} = {term!r} is neither a loss name nor {{ name = ..., <param> = ... }}. {valid_terms()}"
        )
    if name in COMPOUNDS:
        raise ValueError(
            f"compound: {where} = {name!r} is itself a compound loss and compounds do not nest; "
            f"list its terms instead. {valid_terms()}"
        )
    if name not in TERMS:
        close = difflib.get_close_matches(name, list(TERMS), n=2)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."
        raise ValueError(f"compound: {where} = {name!r} is not a standard loss{hint} {valid_terms()}")
    check_term_params(where, name, params)
    return name, params


def check_term_params(where: str, name: str, params: dict) -> None:
    """Unknown or ill-typed parameters of a term, reported as the suite reports them."""
    factory = TERMS[name]
    component = Component(kind="loss", name=name, factory=factory, params=keyword_params(factory))
    problems = [message for _, message in check_params(component, params)]
    if problems:
        raise ValueError(f"compound: {where}: {'; '.join(problems)}")


def read_weights(weights, count: int) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    if not isinstance(weights, (list, tuple)):
        raise ValueError(f"compound: weights must be a list of numbers, one per term, got {weights!r}")
    if len(weights) != count:
        raise ValueError(f"compound: weights {list(weights)} do not match the {count} terms: give one weight per term")
    for index, weight in enumerate(weights):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ValueError(f"compound: weights[{index}] = {weight!r} is not a finite number")
        if weight < 0:
            raise ValueError(f"compound: weights[{index}] = {weight} is negative; weights must be >= 0")
    if not any(weights):
        raise ValueError("compound: weights are all 0; at least one must be positive")
    return [float(weight) for weight in weights]


def beta_weights(beta, weights, specs) -> list[float]:
    """[beta, 1 - beta] for terms [region, distribution]."""
    if weights is not None:
        raise ValueError("compound: give weights or beta, not both")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"compound: beta must be in [0, 1], got {beta}")
    names = [name for name, _ in specs]
    if len(names) != 2 or names[0] not in REGION_TERMS or names[1] not in DISTRIBUTION_TERMS:
        raise ValueError(
            f"compound: beta weighs terms [region, distribution]: a region loss ({', '.join(REGION_TERMS)}) "
            f"then a distribution loss ({', '.join(DISTRIBUTION_TERMS)}); got terms {names}"
        )
    return [beta, 1.0 - beta]


def build_term(index: int, spec: tuple[str, dict], mode, num_classes, ignore_index) -> nn.Module:
    name, params = spec
    try:
        return TERMS[name](mode, num_classes, ignore_index, **params)
    except ValueError as exc:  # name the item: the term's own message does not say where it sits
        raise ValueError(f"compound: terms[{index}]: {exc}") from exc
