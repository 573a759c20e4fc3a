"""The loss contract: subclass ``LossContract`` and set ``name`` (and ``params``).

    class TestDice(LossContract):
        name = "dice"
        def reference(self, logits, target, mode): ...  # optional independent value

Batches have ignored pixels (``ignore_index``) in both modes: binary (one logit channel,
targets in {0, 1}) and multiclass (``num_classes`` channels, int64 targets).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import segbench_plugins.losses as standard_losses
from segbench.components import Catalogue, Registrar

MODES = ("binary", "multiclass")


class LossContract:
    name: str = ""
    params: dict = {}
    hook = staticmethod(standard_losses.segbench_losses)
    modes = MODES
    num_classes = 3  # multiclass; binary always has 2 classes and one logit channel
    ignore_index = 255
    ignored_fraction = 0.2
    # Confidence levels of a correct prediction; the loss must fall as they grow.
    perfect_scales = (0.0, 1.0, 3.0, 10.0)

    def reference(self, logits, target, mode) -> torch.Tensor | None:
        """The value computed independently of the plugin; None: no reference."""
        return None

    # --- helpers --------------------------------------------------------------------

    def build(self, mode):
        register = Registrar("contract-test")
        self.hook(register)
        component = Catalogue(register.components).get("loss", self.name)
        return component.build(mode, self.classes(mode), self.ignore_index, **self.params)

    def classes(self, mode):
        return 2 if mode == "binary" else self.num_classes

    def target(self, mode, seed=0, shape=(2, 12, 10)):
        """Every class present, a fraction of pixels ignored."""
        generator = torch.Generator().manual_seed(seed)
        target = torch.randint(0, self.classes(mode), shape, generator=generator)
        target.view(-1)[: self.classes(mode)] = torch.arange(self.classes(mode))
        ignored = torch.rand(shape, generator=generator) < self.ignored_fraction
        ignored.view(-1)[: self.classes(mode)] = False
        return target.masked_fill(ignored, self.ignore_index)

    def logits(self, mode, target, seed=1):
        generator = torch.Generator().manual_seed(seed)
        channels = 1 if mode == "binary" else self.num_classes
        return torch.randn(target.shape[0], channels, *target.shape[1:], generator=generator).requires_grad_()

    def confident_logits(self, mode, target, scale):
        """Logits that predict ``target`` with margin ``scale`` (random at ignored pixels)."""
        valid = target != self.ignore_index
        labels = torch.where(valid, target, torch.zeros_like(target))
        if mode == "binary":
            signs = (2.0 * labels - 1.0).unsqueeze(1)
        else:
            signs = 2.0 * F.one_hot(labels, self.num_classes).permute(0, 3, 1, 2).float() - 1.0
        noise = torch.randn(signs.shape, generator=torch.Generator().manual_seed(2))
        return torch.where(valid.unsqueeze(1), scale * signs, noise)

    # --- contract -------------------------------------------------------------------

    def test_is_registered_with_a_description(self):
        register = Registrar("contract-test")
        self.hook(register)
        assert Catalogue(register.components).get("loss", self.name).description

    @pytest.mark.parametrize("mode", MODES)
    def test_is_a_finite_differentiable_scalar(self, mode):
        if mode not in self.modes:
            pytest.skip(f"loss {self.name!r} does not support {mode}")
        target = self.target(mode)
        logits = self.logits(mode, target)
        value = self.build(mode)(logits, target)
        assert value.ndim == 0 and torch.isfinite(value)
        value.backward()
        assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0

    @pytest.mark.parametrize("mode", MODES)
    def test_decreases_toward_a_perfect_prediction(self, mode):
        if mode not in self.modes:
            pytest.skip(f"loss {self.name!r} does not support {mode}")
        loss, target = self.build(mode), self.target(mode)
        values = [float(loss(self.confident_logits(mode, target, s), target)) for s in self.perfect_scales]
        assert all(a > b for a, b in zip(values, values[1:])), f"not decreasing: {values}"

    @pytest.mark.parametrize("mode", MODES)
    def test_ignored_pixels_change_neither_value_nor_gradient(self, mode):
        if mode not in self.modes:
            pytest.skip(f"loss {self.name!r} does not support {mode}")
        loss, target = self.build(mode), self.target(mode)
        logits = self.logits(mode, target)
        ignored = (target == self.ignore_index).unsqueeze(1).expand_as(logits)
        assert ignored.any()
        changed = torch.where(ignored, 20 * torch.randn_like(logits), logits.detach()).requires_grad_()
        torch.testing.assert_close(loss(changed, target), loss(logits, target))
        loss(changed, target).backward()
        assert (changed.grad[ignored] == 0).all()

    @pytest.mark.parametrize("mode", MODES)
    def test_an_all_ignored_batch_gives_a_finite_value(self, mode):
        if mode not in self.modes:
            pytest.skip(f"loss {self.name!r} does not support {mode}")
        target = torch.full((2, 4, 4), self.ignore_index)
        logits = self.logits(mode, target)
        value = self.build(mode)(logits, target)
        assert torch.isfinite(value)
        value.backward()
        assert torch.isfinite(logits.grad).all()

    @pytest.mark.parametrize("mode", MODES)
    def test_matches_the_independent_reference(self, mode):
        if mode not in self.modes:
            pytest.skip(f"loss {self.name!r} does not support {mode}")
        target = self.target(mode)
        logits = self.logits(mode, target).detach()
        expected = self.reference(logits, target, mode)
        if expected is None:
            pytest.skip(f"loss {self.name!r} has no reference")
        torch.testing.assert_close(self.build(mode)(logits, target), expected.to(logits.dtype), rtol=1e-5, atol=1e-6)
