"""The standard losses: the shared contract, checked against values computed here."""

import pytest
import torch
import torch.nn.functional as F
from contracts.loss import LossContract

from segbench_plugins.losses import WeightedSum

EPS = 1e-7  # segmentation_models_pytorch's denominator floor


def probabilities_and_targets(logits, target, mode, ignore_index):
    """(P, C) probabilities and (P, C) one-hot targets of the non-ignored pixels only."""
    valid = target != ignore_index
    pixels = logits.movedim(1, -1)[valid]
    labels = target[valid]
    if mode == "binary":
        return torch.sigmoid(pixels), labels.float().unsqueeze(1), pixels
    return pixels.softmax(-1), F.one_hot(labels, logits.shape[1]).float(), pixels


def soft_overlap_loss(logits, target, mode, ignore_index, jaccard=False, log=False):
    """1 - soft Dice (or IoU; -log of it with ``log``) per class over the batch, averaged
    over classes; a class with no true pixels contributes 0."""
    probs, onehot, _ = probabilities_and_targets(logits, target, mode, ignore_index)
    intersection = (probs * onehot).sum(0)
    cardinality = (probs + onehot).sum(0)
    if jaccard:
        score = intersection / (cardinality - intersection).clamp_min(EPS)
    else:
        score = 2 * intersection / cardinality.clamp_min(EPS)
    per_class = -score.clamp_min(EPS).log() if log else 1 - score
    return (per_class * (onehot.sum(0) > 0)).mean()


def bce_on_valid_pixels(logits, target, mode, ignore_index, smoothing=0.0):
    _, onehot, pixel_logits = probabilities_and_targets(logits, target, mode, ignore_index)
    return F.binary_cross_entropy_with_logits(pixel_logits, onehot * (1 - smoothing) + smoothing / 2)


class TestCE(LossContract):
    name = "ce"

    def reference(self, logits, target, mode):
        if mode == "binary":
            return bce_on_valid_pixels(logits, target, mode, self.ignore_index)
        return F.cross_entropy(logits, target, ignore_index=self.ignore_index)


class TestDice(LossContract):
    name = "dice"

    def reference(self, logits, target, mode):
        return soft_overlap_loss(logits, target, mode, self.ignore_index)


class TestJaccard(LossContract):
    name = "jaccard"

    def reference(self, logits, target, mode):
        return soft_overlap_loss(logits, target, mode, self.ignore_index, jaccard=True)


class TestBceDice(LossContract):
    name = "bce_dice"

    def reference(self, logits, target, mode):
        dice = soft_overlap_loss(logits, target, mode, self.ignore_index)
        return 0.5 * dice + 0.5 * bce_on_valid_pixels(logits, target, mode, self.ignore_index)


class TestBceDiceMostlyDice(LossContract):
    name = "bce_dice"
    params = {"beta": 0.8}

    def reference(self, logits, target, mode):
        dice = soft_overlap_loss(logits, target, mode, self.ignore_index)
        return 0.8 * dice + 0.2 * bce_on_valid_pixels(logits, target, mode, self.ignore_index)


class TestDiceLogLoss(LossContract):
    name = "dice"
    params = {"log_loss": True}

    def reference(self, logits, target, mode):
        return soft_overlap_loss(logits, target, mode, self.ignore_index, log=True)


class TestJaccardSmooth(LossContract):
    name = "jaccard"
    params = {"smooth": 1.0}


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_ce_label_smoothing_follows_torch(mode):
    contract = TestCE()
    contract.params = {"label_smoothing": 0.1}
    target = contract.target(mode)
    logits = contract.logits(mode, target).detach()
    if mode == "binary":
        expected = bce_on_valid_pixels(logits, target, mode, 255, smoothing=0.1)
    else:
        expected = F.cross_entropy(logits, target, ignore_index=255, label_smoothing=0.1)
    torch.testing.assert_close(contract.build(mode)(logits, target), expected)


@pytest.mark.parametrize("name", ["ce", "dice", "jaccard", "bce_dice"])
def test_losses_refuse_modes_they_do_not_support(name):
    contract = LossContract()
    contract.name = name
    with pytest.raises(ValueError, match="multilabel"):
        contract.build("multilabel")


@pytest.mark.parametrize("beta", [-0.1, 1.5])
def test_bce_dice_refuses_beta_outside_0_1(beta):
    contract = TestBceDice()
    contract.params = {"beta": beta}
    with pytest.raises(ValueError, match="beta"):
        contract.build("binary")


def test_weighted_sum_adds_weighted_terms():
    ce, dice = TestCE().build("multiclass"), TestDice().build("multiclass")
    target = TestCE().target("multiclass")
    logits = TestCE().logits("multiclass", target).detach()
    compound = WeightedSum([(0.3, ce), (0.7, dice)])
    torch.testing.assert_close(compound(logits, target), 0.3 * ce(logits, target) + 0.7 * dice(logits, target))
    with pytest.raises(ValueError):
        WeightedSum([])
