"""U-Net: ``model.py`` holds the model and factory, ``decoder.py`` the decoder."""

from .model import UNet, build_unet

__all__ = ["UNet", "build_unet"]
