"""Learned transposed convolution, optionally initialised as bilinear interpolation (FCN).

The stride is the scale factor. The kernel defaults to twice the stride (k4 s2 p1 for x2,
FCN's k64 s32 p16 for x32): the shortest kernel whose taps overlap so that every output
pixel mixes two input pixels per axis, as bilinear interpolation does.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .validation import check_bool, check_int, check_scale_factor

NAME = "transposed"


def transposed(
    in_channels: int,
    out_channels: int,
    scale_factor: int,
    *,
    kernel_size: int | None = None,
    stride: int | None = None,
    padding: int | None = None,
    bilinear_init: bool = False,
    bias: bool = True,
) -> nn.ConvTranspose2d:
    """Learned transposed convolution (stride = scale factor; kernel 2 x scale unless set).

    ``kernel_size`` defaults to twice the scale factor (k4 s2 p1 for x2, FCN's k64 s32 p16
    for x32; 3 for x1) and must be at least the scale factor. ``stride`` may be given but
    must equal the scale factor. ``padding`` defaults to the smallest one that, with an
    output padding, gives exactly ``scale_factor`` times the input; an explicit value must
    give that too. ``bilinear_init`` starts the weights as bilinear interpolation
    (FCN-style) on the first ``min(in, out)`` channels, zero elsewhere, with zero bias;
    otherwise PyTorch's default initialisation is used. ``bias = false`` leaves the bias
    term out, as FCN's Caffe deconvolutions do (``bias_term: false``).
    """
    check_scale_factor(NAME, scale_factor)
    kernel_size = default_kernel_size(scale_factor) if kernel_size is None else kernel_size
    check_int(NAME, "kernel_size", kernel_size)
    _check_stride(stride, scale_factor)
    check_bool(NAME, "bilinear_init", bilinear_init)
    check_bool(NAME, "bias", bias)
    padding, output_padding = transposed_padding(kernel_size, scale_factor, padding)
    conv = nn.ConvTranspose2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=scale_factor,
        padding=padding,
        output_padding=output_padding,
        bias=bias,
    )
    if bilinear_init:
        init_bilinear_(conv)
    return conv


def default_kernel_size(scale_factor: int) -> int:
    # At stride 1 an even kernel cannot keep the size exactly, so x1 gets a 3x3 kernel.
    return 2 * scale_factor if scale_factor > 1 else 3


def transposed_padding(kernel_size: int, stride: int, padding: int | None = None) -> tuple[int, int]:
    """(padding, output_padding) that make a transposed conv output exactly stride * H.

    Output size is (H - 1) * stride - 2 * padding + kernel_size + output_padding, so we
    need kernel_size - 2 * padding + output_padding == stride, with 0 <= output_padding
    < stride. Without ``padding`` the smallest valid padding is chosen; a given one is
    checked, and refused with the valid choices.
    """
    if kernel_size < stride:
        # Shorter kernels leave output pixels that no input pixel reaches (bias only).
        raise ValueError(f"{NAME}: kernel_size {kernel_size} must be >= the scale factor {stride}")
    valid = valid_paddings(kernel_size, stride)
    if not valid:  # only when stride is 1 and the kernel is even
        raise ValueError(f"{NAME}: kernel_size {kernel_size} must be odd for scale factor {stride}")
    if padding is None:
        padding = valid[0]
    else:
        check_int(NAME, "padding", padding, minimum=0)
        if padding not in valid:
            choices = " or ".join(str(p) for p in valid)
            raise ValueError(
                f"{NAME}: padding {padding} with kernel_size {kernel_size} cannot give exactly "
                f"{stride} x the input size; with that kernel use padding {choices} (or leave it unset)"
            )
    return padding, stride - kernel_size + 2 * padding


def valid_paddings(kernel_size: int, stride: int) -> list[int]:
    """Paddings p for which output_padding = stride - kernel_size + 2p lies in [0, stride)."""
    smallest = max(0, math.ceil((kernel_size - stride) / 2))
    largest = (kernel_size - 1) // 2
    return list(range(smallest, largest + 1))


def _check_stride(stride, scale_factor: int) -> None:
    if stride is None:
        return
    check_int(NAME, "stride", stride)
    if stride != scale_factor:
        raise ValueError(
            f"{NAME}: stride {stride} must equal the scale factor {scale_factor} (the stride is "
            f"what upsamples); set stride = {scale_factor} or leave it unset"
        )


@torch.no_grad()
def init_bilinear_(conv: nn.ConvTranspose2d) -> None:
    """Set ``conv`` to bilinear interpolation from channel c to channel c (FCN-style)."""
    kernel_1d = bilinear_kernel_1d(conv.kernel_size[0], conv.stride[0], conv.padding[0])
    kernel = torch.outer(kernel_1d, kernel_1d)
    conv.weight.zero_()  # weight shape: (in_channels, out_channels, k, k)
    for channel in range(min(conv.in_channels, conv.out_channels)):
        conv.weight[channel, channel] = kernel
    if conv.bias is not None:
        conv.bias.zero_()


def bilinear_kernel_1d(kernel_size: int, stride: int, padding: int) -> torch.Tensor:
    """Tent weights of bilinear upsampling by ``stride`` for one transposed-conv tap row.

    Tap t of input pixel i lands on output o = stride * i + t - padding; the input pixel's
    centre sits at output coordinate stride * i + (stride - 1) / 2 (align_corners=False).
    Weights are renormalised per output phase (t mod stride) so every output pixel is a
    convex combination even when the kernel is too short for exact bilinear weights
    (kernel 2, stride 2 gives nearest-neighbour).
    """
    centre = padding + (stride - 1) / 2
    taps = torch.arange(kernel_size, dtype=torch.float64)
    weights = (1 - (taps - centre).abs() / stride).clamp(min=0)
    for phase in range(stride):
        total = weights[phase::stride].sum()
        if total > 0:
            weights[phase::stride] /= total
    return weights.float()
