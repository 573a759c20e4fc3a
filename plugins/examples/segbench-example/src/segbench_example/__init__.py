"""segbench-example: one upsampler, one loss and two metrics (one where lower is better),
shipped as a segbench plugin."""

from __future__ import annotations

import torch
from torch import nn

from segbench import ConfusionMatrixMetric, hookimpl

# --- upsampler -------------------------------------------------------------------------


class PixelShuffleUpsampler(nn.Module):
    """A convolution to ``out_channels * s**2`` channels, then ``nn.PixelShuffle(s)``."""

    def __init__(self, in_channels, out_channels, scale_factor, kernel_size=3, icnr=True):
        super().__init__()
        s = int(scale_factor)
        if s != scale_factor or s < 1:
            raise ValueError(f"example_pixel_shuffle needs a positive integer scale_factor, got {scale_factor!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (1, 3, 5, ...), got {kernel_size}")
        self.conv = nn.Conv2d(in_channels, out_channels * s * s, kernel_size, padding=kernel_size // 2)
        self.shuffle = nn.PixelShuffle(s)
        if icnr:  # ICNR: all s*s sub-pixels start from the same kernel, avoiding checkerboards
            weight = torch.empty(out_channels, in_channels, kernel_size, kernel_size)
            nn.init.kaiming_normal_(weight)
            with torch.no_grad():
                self.conv.weight.copy_(weight.repeat_interleave(s * s, dim=0))

    def forward(self, x):
        return self.shuffle(self.conv(x))


def pixel_shuffle(
    in_channels: int, out_channels: int, scale_factor: int, *, kernel_size: int = 3, icnr: bool = True
) -> nn.Module:
    """Sub-pixel convolution: conv to C_out*s^2 channels, then PixelShuffle(s)."""
    return PixelShuffleUpsampler(in_channels, out_channels, scale_factor, kernel_size, icnr)


# --- loss ------------------------------------------------------------------------------


class Focal(nn.Module):
    """smp's FocalLoss, which averages over the pixels not ignored; 0 when all are (smp
    gives NaN then, which would wreck a training run)."""

    def __init__(self, mode, ignore_index, gamma):
        super().__init__()
        from segmentation_models_pytorch.losses import FocalLoss  # heavy: imported on build

        self.focal = FocalLoss(mode, gamma=gamma, ignore_index=ignore_index)
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        if (target == self.ignore_index).all():
            return logits.sum() * 0.0  # nothing to score: 0, still part of the graph
        return self.focal(logits, target)


def focal(mode: str, num_classes: int, ignore_index: int, *, gamma: float = 2.0) -> nn.Module:
    """Focal loss (Lin et al., 2017): cross-entropy down-weighting easy pixels."""
    if mode not in ("binary", "multiclass"):  # smp's multilabel focal fails on ignored pixels
        raise ValueError(f"example_focal supports the binary and multiclass modes, not {mode!r}")
    return Focal(mode, ignore_index, gamma)


# --- metric ----------------------------------------------------------------------------


class Recall(ConfusionMatrixMetric):
    """Mean per-class recall TP / (TP + FN) over the classes present in the target."""

    def score(self, confusion):
        true_positives = confusion.diagonal()
        actual = confusion.sum(dim=1)  # rows are the true classes
        return torch.where(actual > 0, true_positives / actual.clamp(min=1), float("nan"))


def recall(num_classes: int, ignore_index: int) -> Recall:
    """Mean per-class recall TP / (TP + FN) over the classes present in the target."""
    return Recall(num_classes, ignore_index)


class ErrorRate(ConfusionMatrixMetric):
    """Share of scored pixels given the wrong class: 1 - trace / total. Lower is better,
    which every verdict, plot and gate rule of segbench honours."""

    higher_is_better = False

    def score(self, confusion):
        # Per class: the share of that class's pixels given another class (1 - recall).
        actual = confusion.sum(dim=1)
        return torch.where(actual > 0, 1 - confusion.diagonal() / actual.clamp(min=1), float("nan"))

    def reduce(self, per_class, confusion):
        total = confusion.sum()
        return float(1 - confusion.trace() / total) if total > 0 else float("nan")


def error_rate(num_classes: int, ignore_index: int) -> ErrorRate:
    """Pixel error rate, 1 - pixel accuracy (lower is better)."""
    return ErrorRate(num_classes, ignore_index)


# --- hooks: how segbench finds the above -----------------------------------------------


@hookimpl
def segbench_upsamplers(register):
    register.add_upsampler("example_pixel_shuffle", pixel_shuffle, requires=["module"])


@hookimpl
def segbench_losses(register):
    register.add_loss("example_focal", focal)


@hookimpl
def segbench_metrics(register):
    register.add_metric("example_recall", recall)
    register.add_metric("example_error_rate", error_rate)
