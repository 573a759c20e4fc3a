"""Names a package exports but imports on first use (PEP 562), so that importing the
package stays light: ``segbench``, ``segbench.gate`` and ``segbench.testing`` use it."""

from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, exports: dict):
    """``__getattr__`` and ``__dir__`` for ``package``, whose public name ``name`` is
    defined in its submodule ``exports[name]``; a name is imported once, then cached."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{exports[name]}", package), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
