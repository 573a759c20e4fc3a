"""The loss contract: subclass ``LossContract`` and set ``name`` (and ``params``).

    class TestDice(LossContract):
        name = "dice"
        def reference(self, logits, target, mode): ...  # optional independent value

Batches have ignored pixels (``ignore_index``) in every mode: binary (one logit channel,
int64 targets (N, H, W) in {0, 1}), multiclass (``num_classes`` channels, int64 targets
(N, H, W) in 0..K-1) and multilabel (``num_classes`` channels, int64 targets (N, C, H, W)
in {0, 1}, ignored per element). Set ``modes`` to the modes the loss supports; building it
in any other mode must raise ValueError.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ..component_checks import check_all_ignored_loss, check_loss_value
from ._base import ComponentContract

MODES = ("binary", "multiclass", "multilabel")
UNKNOWN_MODES = ("regression",)


class LossContract(ComponentContract):
    kind = "loss"
    modes = MODES
    num_classes = 3  # multiclass and multilabel; binary always has 2 classes and one logit channel
    ignore_index = 255
    ignored_fraction = 0.2
    # Confidence levels of a correct prediction; the loss must fall as they grow (or stay at 0).
    perfect_scales = (0.0, 1.0, 3.0, 10.0)

    def reference(self, logits, target, mode) -> torch.Tensor | None:
        """The value computed independently of the plugin; None: no reference."""
        return None

    # --- helpers --------------------------------------------------------------------

    def build(self, mode):
        return self.component().build(mode, self.classes(mode), self.ignore_index, **self.params)

    def classes(self, mode):
        return 2 if mode == "binary" else self.num_classes

    def channels(self, mode):
        return 1 if mode == "binary" else self.num_classes

    def target_shape(self, mode, shape):
        """(N, H, W) label maps; multilabel targets have one 0/1 plane per channel."""
        return (shape[0], self.num_classes, *shape[1:]) if mode == "multilabel" else shape

    def target(self, mode, seed=0, shape=(2, 12, 10)):
        """Every class present (multilabel: every channel has a 0 and a 1), a fraction of
        pixels ignored."""
        generator = torch.Generator().manual_seed(seed)
        full_shape = self.target_shape(mode, shape)
        values = 2 if mode == "multilabel" else self.classes(mode)
        target = torch.randint(0, values, full_shape, generator=generator)
        ignored = torch.rand(full_shape, generator=generator) < self.ignored_fraction
        if mode == "multilabel":
            target[0, :, 0, :2] = torch.tensor([1, 0])
            ignored[0, :, 0, :2] = False
        else:
            target.view(-1)[:values] = torch.arange(values)
            ignored.view(-1)[:values] = False
        return target.masked_fill(ignored, self.ignore_index)

    def logits(self, mode, target, seed=1):
        generator = torch.Generator().manual_seed(seed)
        shape = (target.shape[0], self.channels(mode), *target.shape[-2:])
        return torch.randn(shape, generator=generator).requires_grad_()

    def ignored(self, mode, target):
        """Which logits belong to ignored pixels, shaped like the logits."""
        ignored = target == self.ignore_index
        if mode != "multilabel":
            ignored = ignored.unsqueeze(1).expand(-1, self.channels(mode), -1, -1)
        return ignored

    def confident_logits(self, mode, target, scale):
        """Logits that predict ``target`` with margin ``scale`` (random at ignored pixels)."""
        ignored = self.ignored(mode, target)
        labels = target.masked_fill(target == self.ignore_index, 0)
        if mode == "multiclass":
            signs = 2.0 * F.one_hot(labels, self.num_classes).permute(0, 3, 1, 2).float() - 1.0
        else:
            signs = 2.0 * labels.float() - 1.0
            signs = signs.unsqueeze(1) if mode == "binary" else signs
        noise = torch.randn(signs.shape, generator=torch.Generator().manual_seed(2))
        return torch.where(ignored, noise, scale * signs)

    def skip_unless_supported(self, mode):
        if mode not in self.modes:
            pytest.skip(f"loss {self.name!r} does not support {mode}")

    def value(self, mode, logits, target, on):
        """The loss on ``logits`` and ``target``, checked as the preflight checks it: a
        finite scalar tensor connected to the logits."""
        value = self.build(mode)(logits, target)
        check_loss_value(self.described(), value, on, f"{mode} logits {tuple(logits.shape)} and targets {tuple(target.shape)}")
        return value

    # --- contract -------------------------------------------------------------------

    def test_is_registered_with_a_description(self):
        self.expect(self.component().description, "has no one-line description: give add_loss(description=...) or a docstring")

    def test_refuses_modes_it_does_not_support(self):
        for mode in [m for m in MODES if m not in self.modes] + list(UNKNOWN_MODES):
            try:
                self.build(mode)
            except ValueError as error:
                self.expect(mode in str(error), f"building it in mode {mode!r} raised ValueError({str(error)!r}), which does not "
                                                "name the mode; say which mode is not supported")
            except Exception as error:  # noqa: BLE001 - the wrong kind of refusal, named
                self.fail(f"building it in mode {mode!r} raised {type(error).__name__}: {error}; expected a ValueError naming the mode")
            else:
                self.fail(f"building it in mode {mode!r} succeeded; a loss raises ValueError in a mode it does not support "
                          f"(the contract expects these modes: {', '.join(self.modes)})")

    @pytest.mark.parametrize("mode", MODES)
    def test_is_a_finite_differentiable_scalar(self, mode):
        self.skip_unless_supported(mode)
        target = self.target(mode)
        logits = self.logits(mode, target)
        value = self.value(mode, logits, target, "random logits")
        value.backward()
        self.expect(logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0,
                    lambda: f"{mode}: the gradient of its value on random logits {tuple(logits.shape)} is "
                            f"{'missing' if logits.grad is None else 'zero or not finite'}; expected a finite, non-zero gradient")

    @pytest.mark.parametrize("mode", MODES)
    def test_decreases_toward_a_perfect_prediction(self, mode):
        self.skip_unless_supported(mode)
        loss, target = self.build(mode), self.target(mode)
        values = [float(loss(self.confident_logits(mode, target, s), target)) for s in self.perfect_scales]
        # a loss that has reached 0 (a hinge past its margin) may stay there
        self.expect(all(a > b or a == b == 0 for a, b in zip(values, values[1:])),
                    f"{mode}: on correct predictions of growing confidence (logit margins {list(self.perfect_scales)}) it gave "
                    f"{[round(v, 6) for v in values]}; expected strictly decreasing values (or staying at 0)")

    @pytest.mark.parametrize("mode", MODES)
    def test_ignored_pixels_change_neither_value_nor_gradient(self, mode):
        self.skip_unless_supported(mode)
        loss, target = self.build(mode), self.target(mode)
        logits = self.logits(mode, target)
        ignored = self.ignored(mode, target)
        self.expect(ignored.any(), "the test's targets have no ignored pixel; raise ignored_fraction")
        changed = torch.where(ignored, 20 * torch.randn_like(logits), logits.detach()).requires_grad_()
        on = f"{mode}: logits changed only at pixels whose target is ignore_index {self.ignore_index}"
        torch.testing.assert_close(loss(changed, target), loss(logits, target),
                                   msg=lambda m: f"{self.described()}: {on} changed its value: {m}")
        loss(changed, target).backward()
        loss(logits, target).backward()
        self.expect((changed.grad[ignored] == 0).all(), f"{on}: the gradient at ignored pixels is not zero")
        torch.testing.assert_close(changed.grad[~ignored], logits.grad[~ignored],
                                   msg=lambda m: f"{self.described()}: {on} changed the gradient at the other pixels: {m}")

    @pytest.mark.parametrize("mode", MODES)
    def test_an_all_ignored_batch_gives_a_finite_value(self, mode):
        """As the preflight checks it, on the suite's real batch."""
        self.skip_unless_supported(mode)
        target = torch.full(self.target_shape(mode, (2, 4, 4)), self.ignore_index)
        check_all_ignored_loss(self.described(), self.build(mode), self.logits(mode, target), self.ignore_index, target.shape)

    @pytest.mark.parametrize("mode", MODES)
    def test_matches_the_independent_reference(self, mode):
        self.skip_unless_supported(mode)
        target = self.target(mode)
        logits = self.logits(mode, target).detach()
        expected = self.reference(logits, target, mode)
        if expected is None:
            pytest.skip(f"loss {self.name!r} has no reference")
        torch.testing.assert_close(self.build(mode)(logits, target), expected.to(logits.dtype), rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f"{self.described()}: {mode}: its value on random logits differs from the reference: {m}")
