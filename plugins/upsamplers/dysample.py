"""DySample: upsampling by learned point sampling.

Liu, Lu, Fu and Cao, "Learning to Upsample by Learning to Sample", ICCV 2023
(arXiv:2308.15085; reference code github.com/tiny-smart/dysample). Each output pixel is
bilinearly sampled from the input at its own position: the position bilinear upsampling
would use (``init_pos``, the sub-pixel centres) plus a learned offset, predicted by a 1x1
convolution from the features. With zero offsets DySample *is* bilinear upsampling
(align_corners=False), and training moves the points towards, e.g., object interiors.

- style "lp" (linear then pixel shuffle) predicts the s^2 offsets of each input pixel
  from the input; "pl" pixel-shuffles the input first and predicts one offset per output
  pixel from it (fewer parameters; needs in_channels divisible by s^2).
- ``groups`` splits the channels into groups that sample at different points.
- the offset is scaled by 0.25 (the paper's static scope factor, which keeps neighbouring
  sample points from overlapping), or with ``dyscope`` by 0.5 * sigmoid of a second
  1x1 convolution (the dynamic scope factor; initialised at zero, so it starts at 0.25).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .validation import check_bool, check_choice, check_int, check_scale_factor

NAME = "dysample"
STYLES = ("lp", "pl")
PAPER_GROUPS = 4
STATIC_SCOPE = 0.25
DYNAMIC_SCOPE = 0.5
OFFSET_INIT_STD = 0.001


class DySample(nn.Module):
    """Dynamic point sampling (Liu et al., 2023), then a 1x1 conv if channels change."""

    def __init__(self, in_channels: int, out_channels: int, scale_factor: int, style: str, groups: int, dyscope: bool):
        super().__init__()
        self.scale_factor = scale_factor
        self.style = style
        self.groups = groups
        offset_in, offset_out = _offset_channels(in_channels, scale_factor, style, groups)
        self.offset = nn.Conv2d(offset_in, offset_out, kernel_size=1)
        nn.init.normal_(self.offset.weight, std=OFFSET_INIT_STD)
        nn.init.zeros_(self.offset.bias)
        self.scope = None
        if dyscope:
            self.scope = nn.Conv2d(offset_in, offset_out, kernel_size=1)
            nn.init.zeros_(self.scope.weight)
            nn.init.zeros_(self.scope.bias)
        self.register_buffer("init_pos", initial_positions(scale_factor, groups))
        self.project = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(sample(x, self.offsets(x) + self.init_pos, self.scale_factor, self.groups))

    def offsets(self, x: torch.Tensor) -> torch.Tensor:
        """Learned displacements (N, 2 * groups * s^2, H, W) in input pixels: x first, then y."""
        source = F.pixel_shuffle(x, self.scale_factor) if self.style == "pl" else x
        offset = self.offset(source)
        if self.scope is None:
            offset = offset * STATIC_SCOPE
        else:
            offset = offset * self.scope(source).sigmoid() * DYNAMIC_SCOPE
        if self.style == "pl":  # one offset per output pixel -> s^2 per input pixel
            offset = F.pixel_unshuffle(offset, self.scale_factor)
        return offset

    def extra_repr(self):
        return f"scale_factor={self.scale_factor}, style={self.style!r}, groups={self.groups}"


def initial_positions(scale_factor: int, groups: int) -> torch.Tensor:
    """Sub-pixel centres relative to their input pixel's centre, (1, 2 * groups * s^2, 1, 1).

    Output pixel (s*h + i, s*w + j) has its centre at input coordinate
    (h + (i - (s - 1) / 2) / s, w + (j - (s - 1) / 2) / s) with align_corners=False.
    Channel order: (x, y), then group, then sub-pixel i * s + j (the order pixel_shuffle reads).
    """
    s = scale_factor
    steps = (torch.arange(s, dtype=torch.float32) - (s - 1) / 2) / s
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")  # dy varies with the row i, dx with the column j
    per_group = torch.stack([dx, dy]).reshape(2, 1, s * s)
    return per_group.expand(2, groups, s * s).reshape(1, 2 * groups * s * s, 1, 1).clone()


def sample(x: torch.Tensor, positions: torch.Tensor, scale_factor: int, groups: int) -> torch.Tensor:
    """Bilinearly sample ``x`` at ``positions`` (N, 2 * groups * s^2, H, W), given relative
    to each input pixel's centre, in input pixels; returns (N, C, s*H, s*W)."""
    n, channels, height, width = x.shape
    s = scale_factor
    # Coordinates in float32 whatever the activations' dtype: bf16 holds k + 0.5 exactly
    # only for k < 128, so on larger maps the grid would be off by half a pixel.
    positions = positions.float().reshape(n, 2, groups * s * s, height, width)
    centres = pixel_centres(height, width, x.device)
    size = torch.tensor([width, height], dtype=torch.float32, device=x.device).view(1, 2, 1, 1, 1)
    # grid_sample with align_corners=False maps -1 and 1 to the outer edges of the
    # border pixels, so pixel-centre coordinate c (edges at 0 and W) normalises to 2c/W - 1.
    normalised = 2 * (centres + positions) / size - 1
    # Channel group * s^2 + i * s + j holds output pixel (s*h + i, s*w + j): the
    # pixel-shuffle order, rearranged here into grid_sample's (N * groups, sH, sW, (x, y)).
    grid = normalised.reshape(n, 2, groups, s, s, height, width).permute(0, 2, 5, 3, 6, 4, 1)
    grid = grid.reshape(n * groups, s * height, s * width, 2)
    with torch.autocast(x.device.type, enabled=False):  # the grid stays float32
        sampled = F.grid_sample(
            x.reshape(n * groups, channels // groups, height, width).float(),
            grid,
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )
    return sampled.to(x.dtype).reshape(n, channels, s * height, s * width)


def pixel_centres(height: int, width: int, device=None) -> torch.Tensor:
    """(1, 2, 1, H, W): the (x, y) centre of every pixel, with pixel edges at integers, in
    float32."""
    ys = torch.arange(height, dtype=torch.float32, device=device) + 0.5
    xs = torch.arange(width, dtype=torch.float32, device=device) + 0.5
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y]).view(1, 2, 1, height, width)


def _offset_channels(in_channels: int, scale_factor: int, style: str, groups: int) -> tuple[int, int]:
    """(in, out) channels of the offset conv: "lp" predicts s^2 points per input pixel,
    "pl" one point per output pixel from the pixel-shuffled input."""
    if style == "pl":
        return in_channels // scale_factor**2, 2 * groups
    return in_channels, 2 * groups * scale_factor**2


def default_groups(in_channels: int) -> int:
    """The paper's 4 groups where the channels allow it, else the largest divisor below 4."""
    return next(g for g in range(PAPER_GROUPS, 0, -1) if in_channels % g == 0)


def _check_channels(in_channels: int, scale_factor: int, style: str, groups: int) -> None:
    if in_channels % groups:
        raise ValueError(
            f"{NAME}: in_channels ({in_channels}) must be divisible by groups ({groups}); "
            f"use a divisor of {in_channels} such as {default_groups(in_channels)}, or leave groups unset"
        )
    if style == "pl" and in_channels % scale_factor**2:
        raise ValueError(
            f'{NAME}: style "pl" pixel-shuffles the input, so in_channels ({in_channels}) must be '
            f'divisible by scale_factor**2 ({scale_factor**2}); use style "lp"'
        )


def dysample(
    in_channels: int,
    out_channels: int,
    scale_factor: int,
    *,
    style: Literal["lp", "pl"] = "lp",
    groups: int | None = None,
    dyscope: bool = False,
) -> DySample:
    """DySample (Liu et al., ICCV 2023): bilinear sampling at learned offsets (starts as bilinear).

    ``style`` "lp" predicts the offsets from the input, "pl" from the pixel-shuffled
    input (needs in_channels divisible by scale_factor**2). ``groups`` channel groups
    sample at their own points; it must divide in_channels (default: the paper's 4 where
    it divides in_channels, else 3, 2 or 1). ``dyscope`` learns the offset scope instead
    of the static factor 0.25. A 1x1 conv follows when ``in_channels != out_channels``.
    """
    check_scale_factor(NAME, scale_factor)
    check_choice(NAME, "style", style, STYLES)
    check_bool(NAME, "dyscope", dyscope)
    check_int(NAME, "in_channels", in_channels)
    groups = default_groups(in_channels) if groups is None else groups
    check_int(NAME, "groups", groups)
    _check_channels(in_channels, scale_factor, style, groups)
    return DySample(in_channels, out_channels, scale_factor, style, groups, dyscope)
