"""SegNet: ``model.py`` holds the model and factory, ``decoder.py`` the mirrored decoder."""

from .model import SegNet, build_segnet

__all__ = ["SegNet", "build_segnet"]
