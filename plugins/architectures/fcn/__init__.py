"""FCN: ``model.py`` holds the model and factory, ``decoder.py`` the skip fusion."""

from .model import FCN, build_fcn

__all__ = ["FCN", "build_fcn"]
