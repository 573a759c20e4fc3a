"""Checking suite values against a component's declared parameters."""

from __future__ import annotations

import collections.abc
import difflib
import types
import typing

from .components import Component


def describe_value(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_params(component: Component, given: dict):
    """Yield ``(param, message)`` for each unknown, missing or ill-typed parameter."""
    declared = component.params
    for name, value in given.items():
        if name not in declared:
            yield name, _unknown_param(component, name)
        elif not accepts(declared[name].annotation, value):
            yield name, (
                f"{component.kind} {component.name!r} parameter {name!r} expects "
                f"{type_name(declared[name].annotation)}, got {describe_value(value)}"
            )
    for param in declared.values():
        if param.required and param.name not in given:
            yield param.name, f"{component.kind} {component.name!r} needs parameter {param.name!r}"


def _unknown_param(component, name):
    valid = list(component.params)
    message = f"{component.kind} {component.name!r} has no parameter {name!r}"
    close = difflib.get_close_matches(name, valid, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return message + (f" Valid: {', '.join(p.describe() for p in component.params.values())}" if valid else " (it takes none)")


def accepts(annotation, value) -> bool:
    """Whether a TOML value fits a simple annotation; unknown annotations accept anything."""
    if annotation is None or annotation is typing.Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(accepts(arg, value) for arg in typing.get_args(annotation))
    if origin in (list, tuple, typing.Sequence, collections.abc.Sequence) or annotation in (list, tuple):
        return isinstance(value, list)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    return True


def type_name(annotation) -> str:
    if isinstance(annotation, type):
        return {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}.get(
            annotation.__name__, annotation.__name__
        )
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    return str(annotation).replace("typing.", "")
