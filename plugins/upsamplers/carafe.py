"""CARAFE: content-aware reassembly of features, in plain PyTorch.

Wang, Chen, Xu, Liu, Loy and Lin, "CARAFE: Content-Aware ReAssembly of FEatures", ICCV 2019
(arXiv:1905.02188; reference: mmcv's CARAFEPack, whose CUDA op this replaces with
``F.unfold``). A 1x1 "channel compressor" and a k_enc x k_enc "content encoder" predict,
for every output pixel, a k_up x k_up kernel (softmax-normalised); the output pixel is
that kernel's weighted sum of the k_up x k_up neighbourhood around its source pixel
(floor(o / s)) in the input. Out-of-image neighbours count as zero, as in mmcv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .validation import check_int, check_odd, check_scale_factor

NAME = "carafe"
ENCODER_INIT_STD = 0.001  # mmcv's: near-uniform kernels at the start


class CARAFE(nn.Module):
    """Kernel prediction (compressor + content encoder), reassembly, 1x1 conv if channels change."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale_factor: int,
        up_kernel: int,
        encoder_kernel: int,
        compressed_channels: int,
    ):
        super().__init__()
        self.scale_factor = scale_factor
        self.up_kernel = up_kernel
        self.compressor = nn.Conv2d(in_channels, compressed_channels, kernel_size=1)
        kernel_values = up_kernel**2 * scale_factor**2  # a k_up^2 kernel per output pixel
        self.encoder = nn.Conv2d(compressed_channels, kernel_values, encoder_kernel, padding=encoder_kernel // 2)
        nn.init.xavier_uniform_(self.compressor.weight)
        nn.init.zeros_(self.compressor.bias)
        nn.init.normal_(self.encoder.weight, std=ENCODER_INIT_STD)
        nn.init.zeros_(self.encoder.bias)
        self.project = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(reassemble(x, self.kernels(x), self.up_kernel, self.scale_factor))

    def kernels(self, x: torch.Tensor) -> torch.Tensor:
        """Reassembly kernels (N, k_up^2, s^2, H, W), each summing to one over its k_up^2 taps.

        Encoder channel ``tap * s^2 + sub_pixel`` is the weight of that tap for that
        sub-pixel (mmcv's order: pixel-shuffling the encoder output gives k_up^2 maps).
        """
        n, _, height, width = x.shape
        logits = self.encoder(self.compressor(x))
        return logits.reshape(n, self.up_kernel**2, self.scale_factor**2, height, width).softmax(dim=1)

    def extra_repr(self):
        return f"scale_factor={self.scale_factor}, up_kernel={self.up_kernel}"


def reassemble(x: torch.Tensor, kernels: torch.Tensor, up_kernel: int, scale_factor: int) -> torch.Tensor:
    """Output sub-pixel (i, j) of input pixel p = sum over taps of kernel * x around p.

    ``kernels``: (N, k^2, s^2, H, W). The neighbourhoods are unfolded once at the input
    resolution (k^2 times the input's memory), not at the output resolution.
    """
    n, channels, height, width = x.shape
    neighbourhoods = F.unfold(x, up_kernel, padding=up_kernel // 2).view(n, channels, up_kernel**2, height, width)
    sub_pixels = torch.einsum("nckhw,nkphw->ncphw", neighbourhoods, kernels)
    return F.pixel_shuffle(sub_pixels.reshape(n, channels * scale_factor**2, height, width), scale_factor)


def carafe(
    in_channels: int,
    out_channels: int,
    scale_factor: int,
    *,
    up_kernel: int = 5,
    encoder_kernel: int = 3,
    compressed_channels: int = 64,
) -> CARAFE:
    """CARAFE (Wang et al., ICCV 2019): reassembles each k_up x k_up neighbourhood with predicted kernels.

    ``up_kernel`` (odd) is the reassembly neighbourhood, ``encoder_kernel`` (odd) the
    content encoder's kernel and ``compressed_channels`` the channel compressor's width
    (the paper's 5, 3 and 64 for x2). The encoder predicts up_kernel^2 * scale^2 values
    per input pixel, so large scale factors cost many parameters. A 1x1 conv follows
    when ``in_channels != out_channels``.
    """
    check_scale_factor(NAME, scale_factor)
    check_odd(NAME, "up_kernel", up_kernel)
    check_odd(NAME, "encoder_kernel", encoder_kernel)
    check_int(NAME, "compressed_channels", compressed_channels)
    return CARAFE(in_channels, out_channels, scale_factor, up_kernel, encoder_kernel, compressed_channels)
