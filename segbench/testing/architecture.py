"""The architecture contract: subclass ``ArchitectureContract`` and set ``name``.

    class TestUNet(ArchitectureContract):
        name = "unet"

Models are built from the installed plugins' components, as ``segbench run`` builds them
(with ``hook`` set instead, give a tuple of hooks that registers the upsamplers too). The
forward and backward test runs once per installed upsampler that fits the architecture (the pairs
``segbench list --matrix`` marks), so a new upsampler or architecture is tested against
every partner it claims. Keep ``params`` light: this runs on CPU.
"""

from __future__ import annotations


import pytest
import torch

from ..component_checks import check_logits, check_provides_agree
from ..components import fits
from ..engine.device import single_torch_thread
from ._base import ComponentContract


class RecordingUpsamplerFactory:
    """A ``make_upsampler`` that remembers each call and each module it built."""

    def __init__(self, component, params=None):
        self.component = component
        self.params = params or {}
        self.calls: list[tuple[int, int, int]] = []
        self.built: list[torch.nn.Module] = []

    def __call__(self, in_channels, out_channels, scale_factor):
        self.calls.append((in_channels, out_channels, scale_factor))
        self.built.append(self.component.build(in_channels, out_channels, scale_factor, **self.params))
        return self.built[-1]


class ArchitectureContract(ComponentContract):
    kind = "architecture"
    input_sizes = (64, 96)
    out_channels = 3
    batch_size = 2

    @pytest.fixture(autouse=True)
    def _single_torch_thread(self):
        with single_torch_thread():
            yield

    def pytest_generate_tests(self, metafunc):
        if "fitting_upsampler" in metafunc.fixturenames:
            metafunc.parametrize("fitting_upsampler", self.fitting_upsamplers())

    # --- helpers --------------------------------------------------------------------

    def fitting_upsamplers(self) -> list[str]:
        catalogue = self.catalogue()
        architecture = catalogue.get("architecture", self.name)
        return [u.name for u in catalogue.all("upsampler") if fits(architecture, u)]

    def default_upsampler(self) -> str:
        fitting = self.fitting_upsamplers()
        if not fitting:
            provides = sorted(self.catalogue().get("architecture", self.name).provides)
            self.fail(f"no installed upsampler fits it (it provides {provides or 'nothing'}); provide the capabilities an "
                      "upsampler requires (docs/writing-plugins.md, 'Capabilities'), or, with `hook`, register upsamplers too")
        return next((name for name in ("nearest", "bilinear") if name in fitting), fitting[0])

    def build(self, upsampler=None, out_channels=None, **overrides):
        upsampler = upsampler or self.default_upsampler()
        catalogue = self.catalogue()
        make_upsampler = RecordingUpsamplerFactory(catalogue.get("upsampler", upsampler))
        torch.manual_seed(0)
        architecture = catalogue.get("architecture", self.name)
        params = {**self.params, **overrides}
        model = architecture.build(out_channels or self.out_channels, make_upsampler, **params)
        return model, make_upsampler

    def images(self, size, batch_size=None):
        return torch.randn(batch_size or self.batch_size, 3, size, size)

    def logits(self, model, images, out_channels=None, on=""):
        """The model's logits for ``images``, checked as the preflight checks them."""
        logits = model(images)
        check_logits(f"{self.described()}{on}", logits, tuple(images.shape), out_channels or self.out_channels,
                     binary=out_channels == 1)
        return logits

    # --- contract -------------------------------------------------------------------

    def test_is_registered_with_a_description(self):
        component = self.catalogue().get("architecture", self.name)
        self.expect(component.description, "has no one-line description: give add_architecture(description=...) or a docstring")

    def test_a_model_carrying_provides_agrees_with_its_registration(self):
        """segbench matches upsamplers on the registration's ``provides``; a model need not
        carry one, but one that does (as the standard models do) must say the same."""
        model, _ = self.build()
        if getattr(model, "provides", None) is None:
            pytest.skip(f"architecture {self.name!r} builds models without a provides attribute (not required)")
        check_provides_agree(self.described(), self.catalogue().get("architecture", self.name).provides, model)

    def test_forward_and_backward_at_two_sizes(self, fitting_upsampler):
        model, make_upsampler = self.build(fitting_upsampler)
        self.expect(make_upsampler.calls, f"with upsampler {fitting_upsampler!r}: the model was built without calling make_upsampler; "
                                          "an architecture builds its upsampling stages with it")
        model.train()
        for size in self.input_sizes:
            model.zero_grad()
            on = f" with upsampler {fitting_upsampler!r}, in training mode"
            logits = self.logits(model, self.images(size), on=on)
            self.expect(torch.isfinite(logits).all(), f"{on.strip()}: logits on random {size}x{size} images are not all finite")
            logits.mean().backward()
            self._assert_upsamplers_are_used_and_trained(model, make_upsampler, fitting_upsampler)

    def _assert_upsamplers_are_used_and_trained(self, model, make_upsampler, upsampler):
        modules = list(model.modules())
        for built in make_upsampler.built:
            if not any(True for _ in built.parameters()):
                continue  # e.g. an interpolation a ready model only read its mode from
            self.expect(any(built is m for m in modules),
                        f"an upsampler {upsampler!r} it built with make_upsampler has parameters but is not part of the model; "
                        "keep it as a submodule so that it trains")
            for name, parameter in built.named_parameters():
                has_gradient = parameter.grad is not None and parameter.grad.abs().sum() > 0
                self.expect(has_gradient, f"upsampler {upsampler!r} parameter {name} gets no gradient from the logits' mean; "
                                          "the model must use every upsampler it built")

    def test_binary_mode_has_one_output_channel(self):
        model, _ = self.build(out_channels=1)
        self.logits(model, self.images(self.input_sizes[0]), out_channels=1, on=" built with out_channels=1 (binary)")

    def test_eval_mode_handles_a_single_image(self):
        model, _ = self.build()
        model.eval()
        with torch.no_grad():
            self.logits(model, self.images(self.input_sizes[0], batch_size=1), on=" in evaluation mode, on one image")

    def test_skip_connections_false_removes_the_skip_pathway(self):
        component = self.catalogue().get("architecture", self.name)
        if "skip_connections" not in component.params:
            pytest.skip(f"architecture {self.name!r} has no skip_connections parameter")
        with_skips, _ = self.build(skip_connections=True)
        without_skips, _ = self.build(skip_connections=False)
        counts = _parameter_count(without_skips), _parameter_count(with_skips)
        self.expect(counts[0] < counts[1], f"skip_connections=False gives {counts[0]} parameters, True {counts[1]}; "
                                           "expected fewer without the skip pathway")
        self.logits(without_skips, self.images(self.input_sizes[0]), on=" with skip_connections=False")

    def test_a_missing_weight_file_raises_a_clear_error(self):
        component = self.catalogue().get("architecture", self.name)
        if "encoder_weights" not in component.params:
            pytest.skip(f"architecture {self.name!r} has no encoder_weights parameter")
        try:
            self.build(encoder_weights="/nonexistent.pth")
        except RuntimeError as error:
            self.expect("/nonexistent.pth" in str(error), f"encoder_weights='/nonexistent.pth' raised RuntimeError({str(error)!r}), "
                                                          "which does not name the file")
        else:
            self.fail("encoder_weights='/nonexistent.pth' built a model; expected a RuntimeError naming the missing file")


def _parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())
