"""Every standard architecture under bf16 autocast (what `amp = "auto"` picks on recent
GPUs; CPU autocast applies the same dtype rules) stays close to its fp32 output on a
256x256 image: none of their own arithmetic (crops, offsets, pooling, fusion) goes wrong
in bf16. It is not what catches an upsampler's coordinate error: DySample's old bf16 grid
(half a pixel off beyond row 128) moved these randomly initialised logits by only 0.3%; the
upsampler contract (segbench.testing), which compares each upsampler alone, catches that."""

from __future__ import annotations

import pytest
import torch

from segbench.plugins import load_catalogue

TOLERANCE = 0.03  # of the largest fp32 logit; measured 0.1% to 1.1%
CASES = [
    ("unet", "bilinear", {}), ("unet", "dysample", {}), ("unet", "carafe", {}),
    ("fcn", "transposed", {"bilinear_init": True}), ("fpn", "bilinear", {}),
    ("deeplabv3plus", "bilinear", {}), ("segnet", "max_unpool", {}),
]


@pytest.mark.parametrize("architecture, upsampler, params", CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_bf16_autocast_stays_close_to_fp32(architecture, upsampler, params):
    catalogue = load_catalogue()
    make = lambda i, o, s: catalogue.get("upsampler", upsampler).factory(i, o, s, **params)  # noqa: E731
    torch.manual_seed(0)
    model = catalogue.get("architecture", architecture).factory(5, make, encoder="lite").eval()
    image = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(image)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(image)
    assert low.dtype in (torch.bfloat16, torch.float32) and low.shape == full.shape
    error = (low.float() - full).abs().max() / full.abs().max()
    assert error < TOLERANCE, f"{architecture} with {upsampler}: {error:.4f} of the largest logit"
    assert (low.float().argmax(1) == full.argmax(1)).float().mean() > 0.99
