"""DeepLabV3+: ``model.py`` holds the model and factory, ``decoder.py`` ASPP and the decoder."""

from .model import DeepLabV3Plus, build_deeplabv3plus

__all__ = ["DeepLabV3Plus", "build_deeplabv3plus"]
