"""torchvision's segmentation models: ``tv_fcn_resnet50``, ``tv_deeplabv3_resnet50`` and
``tv_lraspp_mobilenet_v3_large``.

Each ends with ``F.interpolate(..., mode="bilinear", align_corners=False)`` to the input
size, so bilinear is the only upsampler they honour. ``aux_loss = true`` (FCN and
DeepLabV3) turns on torchvision's auxiliary FCN head on ``layer3``, trained with
``[train] aux_weight`` (torchvision's reference uses 0.5) and dropped at evaluation.

``backbone_weights`` is None (random initialisation, the default: nothing downloads), a
torchvision weights name such as ``"IMAGENET1K_V1"`` or ``"DEFAULT"`` (fetched into
torch's hub cache when online), or the path of a local state dict of the backbone.
"""

from __future__ import annotations

import os

import torch

from ...capabilities import interpolate
from ..base import EncoderWeightsError
from .smp import ReadyModel, interpolation_of

BILINEAR_ONLY = frozenset({interpolate("bilinear")})
MODELS = {
    "tv_fcn_resnet50": ("fcn_resnet50", "ResNet50_Weights"),
    "tv_deeplabv3_resnet50": ("deeplabv3_resnet50", "ResNet50_Weights"),
    "tv_lraspp_mobilenet_v3_large": ("lraspp_mobilenet_v3_large", "MobileNet_V3_Large_Weights"),
}


def build_torchvision(name: str, out_channels: int, make_upsampler, backbone_weights, aux_loss: bool = False):
    mode, align_corners = interpolation_of(make_upsampler, name)
    if mode != "bilinear" or align_corners:
        raise ValueError(f"{name} upsamples bilinearly (align_corners = false) only, not {mode!r}")
    import torchvision.models as models
    import torchvision.models.segmentation as segmentation

    factory_name, weights_enum = MODELS[name]
    from_file = backbone_weights is not None and os.path.isfile(str(backbone_weights))
    weights = None if backbone_weights is None or from_file else _weights(getattr(models, weights_enum), backbone_weights, name)
    if not isinstance(aux_loss, bool):
        raise ValueError(f"{name}: aux_loss must be true or false, got {aux_loss!r}")
    kwargs = {"aux_loss": aux_loss} if "lraspp" not in factory_name else {}
    try:
        model = getattr(segmentation, factory_name)(weights=None, weights_backbone=weights, num_classes=out_channels, **kwargs)
    except Exception as error:
        if weights is None:
            raise
        raise EncoderWeightsError(_download_help(name, weights, error)) from error
    if from_file:
        _load_backbone(model, name, backbone_weights)
    return ReadyModel(model, 1, BILINEAR_ONLY)


def _weights(enum, value, name):
    try:
        return enum[value]
    except KeyError:
        valid = ", ".join(member.name for member in enum) + ", DEFAULT"
        raise ValueError(f"{name}: backbone_weights {value!r} is not a weights name ({valid}) or an existing file") from None


def _download_help(name, weights, error) -> str:
    file = os.path.basename(weights.url)
    return (
        f"could not fetch backbone weights {weights} for {name} ({type(error).__name__}: {error}). "
        f"Without internet, copy {file} (from {weights.url}) into {torch.hub.get_dir()}/checkpoints/, "
        "or set backbone_weights to the path of a local state dict of the backbone."
    )


def _load_backbone(model, name, path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, _ = model.backbone.load_state_dict(state, strict=False)
    if len(missing) == len(model.backbone.state_dict()):
        raise EncoderWeightsError(f"{name}: {path} holds no tensor of the backbone's (checked {len(missing)} names)")


def _builder(name, summary):
    if "lraspp" in name:
        def build(out_channels: int, make_upsampler, *, backbone_weights: str | None = None):
            return build_torchvision(name, out_channels, make_upsampler, backbone_weights)
    else:
        def build(out_channels: int, make_upsampler, *, backbone_weights: str | None = None, aux_loss: bool = False):
            return build_torchvision(name, out_channels, make_upsampler, backbone_weights, aux_loss)

    build.__name__ = f"build_{name}"
    build.__doc__ = summary
    return build


BUILDERS = {
    "tv_fcn_resnet50": _builder("tv_fcn_resnet50", "torchvision FCN-ResNet50 (dilated, stride 8); bilinear only."),
    "tv_deeplabv3_resnet50": _builder("tv_deeplabv3_resnet50", "torchvision DeepLabV3-ResNet50 (ASPP, stride 8); bilinear only."),
    "tv_lraspp_mobilenet_v3_large": _builder("tv_lraspp_mobilenet_v3_large", "torchvision LR-ASPP MobileNetV3-Large; bilinear only."),
}


def register_torchvision(register):
    for name, build in BUILDERS.items():
        neutral = () if "lraspp" in name else ("aux_loss",)  # added after the first release
        register.add_architecture(name, build, provides=BILINEAR_ONLY, id_neutral=neutral)
