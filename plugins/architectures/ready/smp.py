"""segmentation_models_pytorch's ready architectures, with the upsamplers each can honour.

Which upsampler a suite may pair with each (declared as capabilities, checked before
training):

- ``smp_unet``, ``smp_unetplusplus``, ``smp_manet``: any interpolation mode (nearest,
  nearest-exact, bilinear, bicubic), passed as SMP's ``decoder_interpolation``; every
  decoder upsampling uses it.
- ``smp_fpn``, ``smp_pan``: any interpolation mode, as ``decoder_interpolation`` for the
  top-down path; SMP keeps its own bilinear upsampling in the segmentation blocks, and
  the final x4 upsampling of the logits uses the chosen mode.
- ``smp_linknet``: any upsampler: every x2 transposed convolution of LinkNet's decoder is
  replaced by the suite's upsampler (``transposed`` reproduces SMP's own).
- ``smp_pspnet``, ``smp_deeplabv3``, ``smp_deeplabv3plus``, ``smp_upernet``,
  ``smp_segformer``: bilinear only; SMP upsamples inside them bilinearly.

Inputs of any size are zero-padded (the mean colour after normalisation) at the bottom
and right to a multiple of the encoder's output stride, as SMP requires, and the logits
cropped back. ``smp_pan`` needs inputs of at least 128 px (its pyramid pooling).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ...capabilities import ANY_INTERPOLATION, PLUGGABLE, interpolate
from ..base import EncoderWeightsError, _download_help, _is_weight_file, _load_weights, hub_access

BILINEAR_ONLY = frozenset({interpolate("bilinear")})


class ReadyModel(nn.Module):
    """Wraps a ready model: pads the input to a multiple of ``stride``, crops the logits."""

    provides: frozenset = frozenset()

    def __init__(self, model: nn.Module, stride: int, provides: frozenset):
        super().__init__()
        self.model = model
        self.stride = stride
        self.provides = provides

    def forward(self, images):
        height, width = images.shape[-2:]
        pad_rows, pad_cols = -height % self.stride, -width % self.stride
        if pad_rows or pad_cols:
            images = F.pad(images, (0, pad_cols, 0, pad_rows))
        outputs = self.model(images)
        if not isinstance(outputs, dict):
            return outputs[..., :height, :width]
        # torchvision returns {"out": ..., "aux": ...}: the auxiliary map is trained, not evaluated
        logits = outputs["out"][..., :height, :width]
        if self.training and "aux" in outputs:
            return {"out": logits, "aux": outputs["aux"][..., :height, :width]}
        return logits


def interpolation_of(make_upsampler, architecture: str) -> tuple[str, bool | None]:
    """The (mode, align_corners) of the suite's upsampler, which must be an interpolation."""
    module = make_upsampler(8, 8, 2)
    mode = getattr(module, "mode", None)
    if mode is None:
        raise ValueError(
            f"{architecture} upsamples by interpolation only; the suite's upsampler "
            f"({type(module).__name__}) is not an interpolation"
        )
    return mode, getattr(module, "align_corners", None)


def smp_model(class_name: str, out_channels: int, encoder: str, encoder_weights, **kwargs) -> nn.Module:
    """An SMP model; ``encoder_weights`` is None, a pretrained name or a local file."""
    import segmentation_models_pytorch as smp  # heavy: import on build

    from_file = encoder_weights is not None and _is_weight_file(encoder_weights)
    try:
        with hub_access(None if from_file else encoder_weights):
            model = getattr(smp, class_name)(
                encoder_name=encoder, encoder_weights=None if from_file else encoder_weights, classes=out_channels, **kwargs
            )
    except KeyError as error:  # unknown encoder or weights name; smp's message lists the valid ones
        raise ValueError(error.args[0] if error.args else str(error)) from None
    except Exception as error:
        if encoder_weights is None or from_file or isinstance(error, ValueError):
            raise
        raise EncoderWeightsError(_download_help(encoder, encoder_weights, error)) from error
    if from_file:
        _load_weights(model.encoder, encoder, encoder_weights)
    return model


def _wrap(model, provides):
    return ReadyModel(model, model.encoder.output_stride, provides)


def _interpolating(class_name, architecture, out_channels, make_upsampler, encoder, encoder_weights, head_upsampling=False):
    mode, align_corners = interpolation_of(make_upsampler, architecture)
    if align_corners:
        raise ValueError(f"{architecture}: SMP's decoder_interpolation has no align_corners; use align_corners = false")
    model = smp_model(class_name, out_channels, encoder, encoder_weights, decoder_interpolation=mode)
    if head_upsampling:  # the logits' final upsampling follows the suite's mode too
        scale = model.segmentation_head[1].scale_factor
        model.segmentation_head[1] = nn.Upsample(scale_factor=scale, mode=mode)
    return _wrap(model, ANY_INTERPOLATION)


def _bilinear(class_name, architecture, out_channels, make_upsampler, encoder, encoder_weights):
    interpolation_of(make_upsampler, architecture)  # refuses a learned upsampler
    return _wrap(smp_model(class_name, out_channels, encoder, encoder_weights), BILINEAR_ONLY)


def build_smp_unet(out_channels: int, make_upsampler, *, encoder: str = "resnet18", encoder_weights: str | None = None):
    """segmentation_models_pytorch Unet; any interpolation mode as its decoder_interpolation."""
    return _interpolating("Unet", "smp_unet", out_channels, make_upsampler, encoder, encoder_weights)


def build_smp_unetplusplus(out_channels: int, make_upsampler, *, encoder: str = "resnet18", encoder_weights: str | None = None):
    """segmentation_models_pytorch UnetPlusPlus (nested skips); any interpolation mode."""
    return _interpolating("UnetPlusPlus", "smp_unetplusplus", out_channels, make_upsampler, encoder, encoder_weights)


def build_smp_manet(out_channels: int, make_upsampler, *, encoder: str = "resnet18", encoder_weights: str | None = None):
    """segmentation_models_pytorch MAnet (multi-scale attention); any interpolation mode."""
    return _interpolating("MAnet", "smp_manet", out_channels, make_upsampler, encoder, encoder_weights)


def build_smp_fpn(out_channels: int, make_upsampler, *, encoder: str = "resnet18", encoder_weights: str | None = None):
    """segmentation_models_pytorch FPN; the interpolation mode drives its top-down path and final x4."""
    return _interpolating("FPN", "smp_fpn", out_channels, make_upsampler, encoder, encoder_weights, head_upsampling=True)


def build_smp_pan(out_channels: int, make_upsampler, *, encoder: str = "resnet18", encoder_weights: str | None = None):
    """segmentation_models_pytorch PAN (pyramid attention; inputs >= 128 px); any interpolation mode."""
    return _interpolating("PAN", "smp_pan", out_channels, make_upsampler, encoder, encoder_weights, head_upsampling=True)


def build_smp_linknet(out_channels: int, make_upsampler, *, encoder: str = "resnet18", encoder_weights: str | None = None):
    """segmentation_models_pytorch LinkNet with the suite's upsampler in place of each x2 transposed conv."""
    model = smp_model("Linknet", out_channels, encoder, encoder_weights)
    for block in model.decoder.blocks:
        channels = block.block[1][0].in_channels  # TransposeX2 = (ConvTranspose2d, norm, ReLU)
        block.block[1][0] = make_upsampler(channels, channels, 2)
    return _wrap(model, PLUGGABLE)


def _bilinear_builder(class_name, architecture, summary):
    def build(out_channels: int, make_upsampler, *, encoder: str = "resnet18", encoder_weights: str | None = None):
        return _bilinear(class_name, architecture, out_channels, make_upsampler, encoder, encoder_weights)

    build.__name__ = f"build_{architecture}"
    build.__doc__ = summary
    return build


BILINEAR_ARCHITECTURES = {
    "smp_pspnet": _bilinear_builder("PSPNet", "smp_pspnet", "segmentation_models_pytorch PSPNet (pyramid pooling); bilinear only."),
    "smp_deeplabv3": _bilinear_builder("DeepLabV3", "smp_deeplabv3", "segmentation_models_pytorch DeepLabV3 (ASPP); bilinear only."),
    "smp_deeplabv3plus": _bilinear_builder("DeepLabV3Plus", "smp_deeplabv3plus", "segmentation_models_pytorch DeepLabV3+; bilinear only."),
    "smp_upernet": _bilinear_builder("UPerNet", "smp_upernet", "segmentation_models_pytorch UPerNet; bilinear only."),
    "smp_segformer": _bilinear_builder("Segformer", "smp_segformer", "segmentation_models_pytorch Segformer head; bilinear only."),
}

INTERPOLATING_ARCHITECTURES = {
    "smp_unet": build_smp_unet,
    "smp_unetplusplus": build_smp_unetplusplus,
    "smp_manet": build_smp_manet,
    "smp_fpn": build_smp_fpn,
    "smp_pan": build_smp_pan,
}


def register_smp(register):
    for name, build in INTERPOLATING_ARCHITECTURES.items():
        register.add_architecture(name, build, provides=ANY_INTERPOLATION)
    register.add_architecture("smp_linknet", build_smp_linknet, provides=PLUGGABLE)
    for name, build in BILINEAR_ARCHITECTURES.items():
        register.add_architecture(name, build, provides=BILINEAR_ONLY)


__all__ = ["ReadyModel", "register_smp", "EncoderWeightsError"]
