"""What every standard architecture shares: the model skeleton, conv blocks, encoders.

An architecture package follows segmentation_models_pytorch's layout,
``<arch>/{model.py, decoder.py}``: ``decoder.py`` turns encoder features into a decoder
feature map, ``model.py`` subclasses :class:`SegmentationModel` and holds the factory
that ``plugins/architectures/__init__.py`` registers.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket

import torch
import torch.nn.functional as F
from torch import nn

from segbench import SegbenchError

from ..upsamplers.validation import check_bool, check_choice, check_int  # noqa: F401 - one set of parameter checks
from .encoders import light_encoder

WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


class SegmentationModel(nn.Module):
    """Encoder -> decoder -> 1x1 head: images (N, 3, H, W) to logits (N, K, H, W).

    ``provides`` names the capabilities an upsampler may require (e.g. ``"pool_indices"``
    for max-unpooling); it is passed to ``register.add_architecture(provides=...)``.

    With an ``aux_head`` (:func:`make_aux_head`), the model in training mode returns
    ``{"out": logits, "aux": auxiliary logits}``, torchvision's convention, which the engine
    trains with ``[train] aux_weight``; in evaluation it returns the logits alone.
    """

    provides: frozenset = frozenset()

    def __init__(self, encoder: nn.Module, decoder: nn.Module, head: nn.Module, aux_head: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.head = head
        self.aux_head = aux_head

    def forward(self, images: torch.Tensor):
        features = self.encoder(images)
        logits = self.logits(features, images)
        if self.training and self.aux_head is not None:
            aux = self.aux_head(features[AUX_FEATURE])
            return {"out": logits, "aux": F.interpolate(aux, size=images.shape[-2:], mode="bilinear", align_corners=False)}
        return logits

    def logits(self, features, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(features))


AUX_FEATURE = -2  # the second-deepest encoder feature: a ResNet's stage 3 (C4), as mmsegmentation's aux heads use


def make_aux_head(encoder: nn.Module, out_channels: int, channels: int = 256) -> nn.Sequential:
    """mmsegmentation's auxiliary ``FCNHead`` (num_convs=1, dropout 0.1) on the encoder's
    second-deepest feature: a 3x3 conv block, dropout, then a 1x1 class scorer."""
    return nn.Sequential(
        conv_bn_relu(encoder.out_channels[AUX_FEATURE], channels),
        nn.Dropout2d(0.1),
        nn.Conv2d(channels, out_channels, 1),
    )


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    # No conv bias: the BatchNorm shift that follows makes it redundant.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def match_size(x: torch.Tensor, size) -> torch.Tensor:
    """Crop or edge-pad ``x`` at the bottom/right to spatial ``size``.

    Strided encoders round odd sizes up (ceil), so an upsampled map can be one row or
    column larger than its skip; cropping keeps the upsampler's output values unchanged.
    """
    height, width = size
    x = x[..., :height, :width]
    missing_rows, missing_cols = height - x.shape[-2], width - x.shape[-1]
    if missing_rows or missing_cols:
        x = F.pad(x, (0, missing_cols, 0, missing_rows), mode="replicate")
    return x


def upsample_to(upsample: nn.Module, x: torch.Tensor, size) -> torch.Tensor:
    """``upsample(x)`` cropped or padded to spatial ``size`` (see :func:`match_size`)."""
    return match_size(upsample(x), size)


class UpsampledLogitsModel(SegmentationModel):
    """A :class:`SegmentationModel` whose head scores classes at a reduced resolution;
    ``upsample`` (built by the suite's ``make_upsampler``) then brings the logits to the
    input size. FCN, FPN and DeepLabV3+ end this way, so the suite's upsampler also does
    the last, largest upsampling.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, head: nn.Module, upsample: nn.Module,
                 aux_head: nn.Module | None = None):
        super().__init__(encoder, decoder, head, aux_head)
        self.upsample = upsample

    def logits(self, features, images: torch.Tensor) -> torch.Tensor:
        return upsample_to(self.upsample, super().logits(features, images), images.shape[-2:])


# --- encoders ------------------------------------------------------------------------


class EncoderWeightsError(SegbenchError, RuntimeError):
    """Encoder weights could not be fetched or loaded (a SegbenchError: the CLI shows the message)."""


def make_encoder(name: str, depth: int, weights: str | None, output_stride: int = 32) -> nn.Module:
    """An encoder returning ``depth + 1`` feature maps: segmentation_models_pytorch's, or
    one of the light CPU-sized encoders of :mod:`.encoders` (``"lite"``).

    ``weights`` is None (random init), a pretrained-weights name such as ``"imagenet"``
    (downloaded through the Hugging Face hub cache) or a path to a local ``.pth`` /
    ``.safetensors`` state dict of the encoder. ``output_stride`` (8 or 16 instead of the
    usual 32) replaces the last strides by dilation, as smp's ``get_encoder`` does;
    encoders that downsample by max-pooling (VGG) refuse it with a ValueError.
    """
    light = light_encoder(name, depth, output_stride)
    if light is not None and weights is not None and not _is_weight_file(weights):
        raise ValueError(f"encoder {name!r} has no pretrained weights {weights!r}: leave encoder_weights unset, "
                         "or give the path of a .pth or .safetensors state dict")
    if weights is not None and _is_weight_file(weights):
        encoder = light or _get_encoder(name, depth, None, output_stride)
        _load_weights(encoder, name, weights)  # dilation changes no tensor shapes
        return encoder
    return light or _get_encoder(name, depth, weights, output_stride)


def _load_weights(encoder: nn.Module, name: str, path: str) -> None:
    try:
        encoder.load_state_dict(_read_state_dict(path))
    except RuntimeError as error:  # missing, unexpected or mis-shaped tensors
        if isinstance(error, EncoderWeightsError):
            raise
        raise EncoderWeightsError(f"encoder weights {path!r} do not fit encoder {name!r}: {error}") from error


def _get_encoder(name: str, depth: int, weights: str | None, output_stride: int = 32) -> nn.Module:
    try:
        import segmentation_models_pytorch.encoders as smp_encoders  # heavy: import on build

        with hub_access(weights):
            return smp_encoders.get_encoder(name, in_channels=3, depth=depth, weights=weights, output_stride=output_stride)
    except KeyError as error:  # unknown encoder or weights name; smp's message lists the valid ones
        raise ValueError(error.args[0] if error.args else str(error)) from None
    except ValueError:  # a bad argument (e.g. an output_stride VGG cannot dilate to), not a failed download
        raise
    except Exception as error:
        if weights is None:
            raise
        raise EncoderWeightsError(_download_help(name, weights, error)) from error


HUB_HOST = "huggingface.co"
HUB_TIMEOUT_S = 3


@contextlib.contextmanager
def hub_access(weights):
    """Fetch pretrained weights online when the Hugging Face hub answers; otherwise read
    only the local cache, which fails at once instead of after a minute of retries."""
    if weights is None or _hub_reachable():
        yield
        return
    import huggingface_hub.constants as hub

    offline, hub.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE, True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = offline


@functools.cache
def _hub_reachable() -> bool:
    try:
        socket.create_connection((HUB_HOST, 443), timeout=HUB_TIMEOUT_S).close()
        return True
    except OSError:
        return False


def _download_help(name: str, weights: str, error: Exception) -> str:
    import segmentation_models_pytorch.encoders as smp_encoders

    settings = smp_encoders.encoders.get(name, {}).get("pretrained_settings", {}).get(weights, {})
    repo = settings.get("repo_id", "the encoder's Hugging Face repository")
    return (
        f"could not fetch encoder weights {weights!r} for encoder {name!r} "
        f"({type(error).__name__}: {error}). Without internet, either pre-populate the Hugging "
        f"Face hub cache with {repo} (download it once elsewhere and copy "
        "~/.cache/huggingface/hub, or point HF_HOME at a copy), or set encoder_weights to the "
        "path of a local .pth or .safetensors state dict of the encoder."
    )


def _is_weight_file(weights: str) -> bool:
    return str(weights).endswith(WEIGHT_FILE_SUFFIXES) or os.sep in str(weights) or os.path.isfile(weights)


def _read_state_dict(path: str) -> dict:
    if not os.path.isfile(path):
        raise EncoderWeightsError(
            f"encoder weights file {path!r} does not exist; give the path of a .pth or "
            ".safetensors state dict of the encoder, or a pretrained-weights name such as 'imagenet'"
        )
    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise EncoderWeightsError(f"could not read encoder weights {path!r}: {error}") from error
    return _encoder_part(state)


def _encoder_part(state: dict) -> dict:
    """The encoder's tensors from a bare, wrapped (``{"state_dict": ...}``) or whole-model dict."""
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), dict):
            state = state[key]
    prefix = "encoder."
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)
