"""The upsampler contract: subclass ``UpsamplerContract`` and set ``name`` (and ``params``).

    class TestNearest(UpsamplerContract):
        name = "nearest"

The component is looked up through a real Registrar fed by the plugin's
``segbench_upsamplers`` hook, so the registration itself is under test. A third-party
plugin points ``hook`` at its own hook function.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import segbench_plugins.upsamplers as standard_upsamplers
from segbench.components import Catalogue, Registrar


class UpsamplerContract:
    name: str = ""
    params: dict = {}
    hook = staticmethod(standard_upsamplers.segbench_upsamplers)
    scale_factors = (2, 4)

    def reference(self, x: torch.Tensor, scale_factor: int) -> torch.Tensor | None:
        """What the upsampler must output for channel-preserving ``x``; None: no reference."""
        return None

    # --- helpers --------------------------------------------------------------------

    def component(self):
        register = Registrar("contract-test")
        self.hook(register)
        return Catalogue(register.components).get("upsampler", self.name)

    def build(self, in_channels: int, out_channels: int, scale_factor: int) -> nn.Module:
        torch.manual_seed(0)
        return self.component().build(in_channels, out_channels, scale_factor, **self.params)

    # --- contract -------------------------------------------------------------------

    def test_is_registered_with_a_description_and_known_params(self):
        component = self.component()
        assert component.description, f"upsampler {self.name!r} has no one-line description"
        assert set(self.params) <= set(component.params), "params must be keyword-only factory arguments"

    @pytest.mark.parametrize("channels", [(4, 4), (4, 6), (6, 3)])
    @pytest.mark.parametrize("height, width", [(5, 7), (8, 8)])
    def test_output_is_scale_times_the_input(self, channels, height, width):
        in_channels, out_channels = channels
        for scale in self.scale_factors:
            upsampler = self.build(in_channels, out_channels, scale)
            output = upsampler(torch.randn(2, in_channels, height, width))
            assert output.shape == (2, out_channels, scale * height, scale * width), f"scale {scale}"

    @pytest.mark.parametrize("channels", [(4, 4), (4, 6)])
    def test_gradient_reaches_input_and_parameters(self, channels):
        upsampler = self.build(*channels, self.scale_factors[0])
        x = torch.randn(2, channels[0], 6, 5, requires_grad=True)
        output = upsampler(x)
        (output * torch.randn_like(output)).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        for name, parameter in upsampler.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"no gradient for {name}"

    def test_matches_its_reference(self):
        x = torch.randn(2, 3, 5, 7)
        for scale in self.scale_factors:
            expected = self.reference(x, scale)
            if expected is None:
                pytest.skip(f"upsampler {self.name!r} has no reference output")
            torch.testing.assert_close(self.build(3, 3, scale)(x), expected)
