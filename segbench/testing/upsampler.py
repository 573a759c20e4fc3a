"""The upsampler contract: subclass ``UpsamplerContract`` and set ``name`` (and ``params``).

    class TestNearest(UpsamplerContract):
        name = "nearest"

The component is looked up among the installed plugins' components, as ``segbench run``
finds it, so the registration itself is under test (``hook`` registers one plugin's
hook alone instead: see :class:`~segbench.testing.ComponentContract`).

Modules with ``takes_pool_indices = True`` (max unpooling) are called as
``upsampler(x, indices)``, with the indices of a 2x2 max-pool over a random
(N, C_in, 2H, 2W) map, as an architecture providing ``pool_indices`` does; upsamplers
requiring ``pool_indices`` are tested at scale factor 2 only. ``channel_pairs`` sets the
(in, out) channels tried, for upsamplers that constrain them.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ..component_checks import check_upsampler_output
from ._base import ComponentContract

# Capabilities the contract reads (the standard plugins' vocabulary, docs/writing-plugins.md).
POOL_INDICES = "pool_indices"
INTERPOLATION = "interpolate:"
POOL_SCALE = 2
# bf16 keeps 8 significant bits: each standard upsampler stays within 0.4% of its largest
# fp32 output (measured); 2% leaves room for a plugin's extra layer, while coordinates off
# by half a pixel (DySample's grid built in bf16 was off by 98%) fail.
BF16_MAP = (256, 256)
BF16_TOLERANCE = 0.02


def takes_pool_indices(module: nn.Module) -> bool:
    return bool(getattr(module, "takes_pool_indices", False))


def pool_indices(batch: int, channels: int, height: int, width: int) -> torch.Tensor:
    """Indices of a 2x2 stride-2 max-pool over a random (batch, channels, 2H, 2W) map."""
    feature = torch.randn(batch, channels, POOL_SCALE * height, POOL_SCALE * width)
    return F.max_pool2d(feature, POOL_SCALE, POOL_SCALE, return_indices=True)[1]


class UpsamplerContract(ComponentContract):
    kind = "upsampler"
    scale_factors = (2, 4)
    channel_pairs = ((4, 4), (4, 6), (6, 3))  # (in, out): preserved, widened, narrowed

    def pytest_generate_tests(self, metafunc):
        if "channels" in metafunc.fixturenames:
            metafunc.parametrize("channels", self.channel_pairs, ids=[f"{i}to{o}" for i, o in self.channel_pairs])

    def reference(self, x: torch.Tensor, scale_factor: int, *indices) -> torch.Tensor | None:
        """What the upsampler must output for channel-preserving ``x`` (and the pool
        ``indices``, for modules that take them); None: no reference."""
        return None

    # --- helpers --------------------------------------------------------------------

    def build(self, in_channels: int, out_channels: int, scale_factor: int) -> nn.Module:
        torch.manual_seed(0)
        return self.component().build(in_channels, out_channels, scale_factor, **self.params)

    def scales_to_check(self) -> tuple[int, ...]:
        if POOL_INDICES in self.component().requires:
            return (POOL_SCALE,)  # the indices are those of a 2x2 max-pool
        return tuple(self.scale_factors)

    def call(self, upsampler: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Run ``upsampler`` as an architecture would, with pool indices if it takes them."""
        return upsampler(x, *self.extra_inputs(upsampler, x))

    def extra_inputs(self, upsampler: nn.Module, x: torch.Tensor) -> tuple:
        return (pool_indices(*x.shape),) if takes_pool_indices(upsampler) else ()

    # --- contract -------------------------------------------------------------------

    def test_is_registered_with_a_description_and_known_params(self):
        component = self.component()
        self.expect(component.description, "has no one-line description: give add_upsampler(description=...) or a docstring")
        self.expect("\n" not in component.description, f"its description {component.description!r} has several lines; give one")
        unknown = sorted(set(self.params) - set(component.params))
        self.expect(not unknown, f"the contract's params {unknown} are not keyword-only arguments of its factory "
                                 f"(it takes {sorted(component.params) or 'none'})")

    @pytest.mark.parametrize("height, width", [(5, 7), (8, 8)])
    def test_output_is_scale_times_the_input(self, channels, height, width):
        in_channels, out_channels = channels
        for scale in self.scales_to_check():
            upsampler = self.build(in_channels, out_channels, scale)
            x = torch.randn(2, in_channels, height, width)
            check_upsampler_output(self.described(), self.call(upsampler, x), tuple(x.shape), out_channels, scale)

    def test_gradient_reaches_input_and_parameters(self, channels):
        upsampler = self.build(*channels, self.scales_to_check()[0])
        x = torch.randn(2, channels[0], 6, 5, requires_grad=True)
        output = self.call(upsampler, x)
        (output * torch.randn_like(output)).sum().backward()
        on = f"{channels[0]} -> {channels[1]} channels, input {tuple(x.shape)}"
        self.expect(x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0,
                    f"{on}: the gradient does not reach its input (missing, zero or not finite)")
        for name, parameter in upsampler.named_parameters():
            self.expect(parameter.grad is not None and parameter.grad.abs().sum() > 0, f"{on}: its parameter {name} gets no gradient")

    def test_matches_its_reference(self):
        channels = self.channel_pairs[0][0]
        x = torch.randn(2, channels, 5, 7)
        for scale in self.scales_to_check():
            upsampler = self.build(channels, channels, scale)
            extra = self.extra_inputs(upsampler, x)
            expected = self.reference(x, scale, *extra)
            if expected is None:
                pytest.skip(f"upsampler {self.name!r} has no reference output")
            torch.testing.assert_close(upsampler(x, *extra), expected, msg=lambda m, scale=scale: (
                f"{self.described()}: at scale {scale} on input {tuple(x.shape)} its output differs from the reference: {m}"))

    def test_bf16_autocast_stays_close_to_fp32(self):
        """Under bf16 autocast (what ``amp = "auto"`` picks on recent GPUs; CPU autocast has
        the same dtype rules), the output stays within ``BF16_TOLERANCE`` of the largest
        fp32 output, on a map large enough for bf16 to lose whole pixel coordinates."""
        channels = self.channel_pairs[0][0]
        scale = self.scales_to_check()[0]
        upsampler = self.build(channels, channels, scale).eval()
        torch.manual_seed(1)
        x = torch.randn(1, channels, *BF16_MAP).bfloat16()  # as the layer before hands it over
        extra = self.extra_inputs(upsampler, x)
        with torch.no_grad():
            reference = upsampler(x.float(), *extra).float()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                mixed = upsampler(x, *extra).float()
        error = (mixed - reference).abs().max() / reference.abs().max()
        self.expect(error <= BF16_TOLERANCE, f"on input {tuple(x.shape)} at scale {scale}, its bf16 output is off by {error:.3f} of "
                                             f"the fp32 output's range; expected at most {BF16_TOLERANCE}")

    def test_an_interpolation_exposes_its_mode(self):
        """An upsampler requiring only ``interpolate:<mode>`` returns, channels preserved,
        a module with that ``mode`` and an ``align_corners`` (see capabilities.py)."""
        required = self.component().requires
        if len(required) != 1 or not next(iter(required)).startswith(INTERPOLATION):
            pytest.skip(f"upsampler {self.name!r} is not an interpolation")
        (capability,) = required
        upsampler = self.build(4, 4, 2)
        mode = getattr(upsampler, "mode", None)
        self.expect(f"interpolate:{mode}" == capability, f"it requires {capability!r}, but the module it builds has mode {mode!r}; "
                                                         "an interpolation exposes the mode it requires")
        self.expect(hasattr(upsampler, "align_corners"), "the module it builds has no align_corners attribute; an interpolation exposes it")
