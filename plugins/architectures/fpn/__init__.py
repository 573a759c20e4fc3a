"""FPN: ``model.py`` holds the model and factory, ``decoder.py`` the pyramid and semantic head."""

from .model import FPN, build_fpn

__all__ = ["FPN", "build_fpn"]
