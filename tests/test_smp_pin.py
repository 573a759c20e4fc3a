"""segmentation-models-pytorch is pinned to the releases whose losses segbench's results
were measured with (pyproject: >=0.6,<0.7). Measured on 0.3.4, 0.4.0, 0.5.0 and 0.6.0:

- multiclass focal: every release before 0.6.0 sums over classes (7x larger with 7
  classes); 0.6.0 averages, as torchvision's sigmoid_focal_loss does;
- Dice with ``smooth``: 0.3.4 adds it to 2·overlap and to the total; 0.4.0 on, to the
  Tversky form (overlap + smooth) / (total / 2 + smooth);
- Jaccard: releases before 0.6.0 take no ``ignore_index``, so segbench's cannot be built.

Each check below is against an independent formula, so it fails on any release that
computes these losses differently, whatever the pin says.
"""

from __future__ import annotations

import importlib.metadata as metadata
import tomllib
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from torchvision.ops import sigmoid_focal_loss

import segbench_plugins.losses as standard_losses
from segbench.components import Catalogue, Registrar

IGNORE = 255


def build(name, mode, num_classes, **params):
    register = Registrar("smp-pin")
    standard_losses.segbench_losses(register)
    return Catalogue(register.components).get("loss", name).build(mode, num_classes, IGNORE, **params)


def batch(channels, num_classes, seed=1):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, channels, 16, 16, generator=generator) * 2
    target = torch.randint(0, num_classes, (2, 16, 16), generator=generator)
    target[..., :2, :] = IGNORE
    return logits, target


def test_installed_release_is_inside_the_declared_range():
    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    (requirement,) = [Requirement(d) for d in declared if Requirement(d).name == "segmentation-models-pytorch"]
    assert requirement.specifier.contains(metadata.version("segmentation-models-pytorch"))
    assert not requirement.specifier.contains("0.5.0"), "0.5.0's multiclass focal loss is 7x larger with 7 classes"


@pytest.mark.parametrize("gamma", [2.0, 3.0])
def test_multiclass_focal_averages_over_pixels_and_classes(gamma):
    classes = 7
    logits, target = batch(classes, classes)
    valid = target != IGNORE
    one_hot = torch.nn.functional.one_hot(target.clamp(max=classes - 1), classes).float()
    expected = sigmoid_focal_loss(logits.permute(0, 2, 3, 1)[valid], one_hot[valid], alpha=-1, gamma=gamma, reduction="mean")
    actual = build("focal", "multiclass", classes, gamma=gamma)(logits, target)
    assert actual.item() == pytest.approx(expected.item(), rel=1e-5)


def test_dice_smoothing_is_added_to_the_tversky_form():
    logits, target = batch(1, 2)
    valid = (target != IGNORE).flatten()
    probability, truth = torch.sigmoid(logits).flatten()[valid], target.flatten()[valid].float()
    overlap, total = (probability * truth).sum(), (probability + truth).sum()
    expected = 1 - (overlap + 1.0) / (0.5 * total + 1.0)  # 0.3.4: 1 - (2*overlap + 1) / (total + 1)
    actual = build("dice", "binary", 2, smooth=1.0)(logits, target)
    assert actual.item() == pytest.approx(expected.item(), rel=1e-5)


def test_jaccard_masks_ignored_pixels():
    logits, target = batch(1, 2)
    valid = (target != IGNORE).flatten()
    probability, truth = torch.sigmoid(logits).flatten()[valid], target.flatten()[valid].float()
    overlap, total = (probability * truth).sum(), (probability + truth).sum()
    expected = 1 - overlap / (total - overlap)
    actual = build("jaccard", "binary", 2)(logits, target)
    assert actual.item() == pytest.approx(expected.item(), rel=1e-5)
