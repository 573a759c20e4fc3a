"""Write docs/api.md, the reference of segbench's public API, from the docstrings.

The public API is what ``segbench.__all__`` lists, the hooks of ``segbench.hookspecs`` and
the contract classes of ``segbench.testing``; everything else is private. Run
``python docs/generate_api.py`` after changing any of them or their docstrings;
tests/test_public_api.py fails while docs/api.md is stale.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

API_DOC = Path(__file__).with_name("api.md")
# segbench.<module> -> the heading its public names are listed under
TOPICS = {
    "hookspecs": "Writing a plugin",
    "components": "Writing a plugin",
    "params": "Writing a plugin",
    "extensions": "Executors and reporters",
    "executors.task": "Executors and reporters",
    "preflight_remote": "Executors and reporters",
    "metrics": "Metrics",
    "data.samples": "Datasets",
    "data.cache": "Datasets",
    "errors": "Errors",
    "plugins": "Using segbench from Python",
    "api": "Using segbench from Python",
}
INTRO = """# segbench API reference

Generated from the docstrings by `python docs/generate_api.py`; do not edit by hand.

This is segbench's public API: import these names from `segbench` (`from segbench import
hookimpl, Metric`), and the contract test classes from `segbench.testing`. Every other
module and name (`segbench.suite`, `segbench.engine`, `segbench.components.Catalogue`, ...)
is private: it may change in any release without notice. docs/writing-plugins.md shows how
the pieces fit together.
"""


class _Plain:
    """An annotation written as text (``from __future__ import annotations``), shown bare."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def signature(obj, method=False) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    plain = lambda a: _Plain(a) if isinstance(a, str) else a  # noqa: E731
    shown = lambda d: _Plain(d.__name__) if inspect.isclass(d) and d is not inspect.Parameter.empty else d  # noqa: E731 - `str`, not <class 'str'>
    parameters = [p.replace(annotation=plain(p.annotation), default=shown(p.default)) for p in sig.parameters.values()]
    parameters = parameters[1 if method else 0:]
    return str(sig.replace(parameters=parameters, return_annotation=plain(sig.return_annotation)))


def docstring(obj) -> str:
    doc = inspect.getdoc(obj) if obj.__doc__ else None  # not an inherited one
    return doc or "(no docstring)"


def members(cls) -> list[tuple[str, object]]:
    """The public methods and properties a class defines itself, in definition order."""
    found = []
    for name, value in vars(cls).items():
        if name.startswith("_") or name.startswith("test_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            found.append((name, value))
    return found


def document(prefix: str, name: str, obj) -> list[str]:
    if inspect.isclass(obj):
        lines = [f"### class `{prefix}{name}{signature(obj)}`", "", docstring(obj), ""]
        for member, value in members(obj):
            if isinstance(value, property):
                lines += [f"- property `{member}`: {_indented(docstring(value.fget))}" if value.fget.__doc__ else f"- property `{member}`"]
            else:
                lines += [f"- `{member}{signature(value, method=True)}`" + (f": {_indented(docstring(value))}" if value.__doc__ else "")]
        return lines + ([""] if lines[-1] else [])
    if not callable(obj):  # a constant: its value and the comment beside it in the source
        return [f"### `{prefix}{name} = {obj!r}`", "", constant_comment(name), ""]
    if name == "hookimpl":
        return [f"### `{prefix}hookimpl`", "", "The decorator that marks a plugin's hook functions (a pluggy "
                "`HookimplMarker` for the project name `segbench`): `@segbench.hookimpl`. The hooks are listed "
                "below.", ""]
    return [f"### `{prefix}{name}{signature(obj)}`", "", docstring(obj), ""]


def constant_comment(name: str) -> str:
    import segbench

    source = inspect.getsource(sys.modules[f"segbench.{segbench._PUBLIC[name]}"])
    found = re.search(rf"^{name} = .*?#\s*(.+)$", source, re.MULTILINE)
    return found.group(1)[0].upper() + found.group(1)[1:] + "." if found else "(no comment)"


def _indented(text: str) -> str:
    return text.replace("\n", "\n  ")


def public_section() -> list[str]:
    import segbench

    lines, topic = [], None
    for name, module in segbench._PUBLIC.items():
        if TOPICS.get(module, "Other") != topic:
            topic = TOPICS.get(module, "Other")
            lines += [f"## {topic}", ""]
        lines += document("segbench.", name, getattr(segbench, name))
    return lines


def hooks_section() -> list[str]:
    from segbench import hookspecs

    lines = ["## Hooks", "", "A plugin implements any of these, each decorated with `@segbench.hookimpl` and named exactly so.", ""]
    for name in sorted(n for n in dir(hookspecs) if n.startswith("segbench_")):
        lines += [f"### `{name}{signature(getattr(hookspecs, name))}`", "", docstring(getattr(hookspecs, name)), ""]
    return lines


def testing_section() -> list[str]:
    import segbench.testing as testing
    from segbench.testing import pytest_plugin

    lines = ["## segbench.testing", "", inspect.getdoc(testing), "", "### The pytest plugin", "", inspect.getdoc(pytest_plugin), ""]
    for name in testing.__all__:
        obj = getattr(testing, name)
        if inspect.isclass(obj) and name.endswith("Contract") and name != "ComponentContract":
            lines += contract(name, obj)
        else:
            lines += document("segbench.testing.", name, obj)
    return lines


def contract(name, cls) -> list[str]:
    """A contract class: its module's description, what a subclass may set, what it checks."""
    settings = {k: v for base in reversed(cls.__mro__) for k, v in vars(base).items()
                if not k.startswith("_") and not callable(v) and not isinstance(v, (property, staticmethod, classmethod))}
    checks = [k for k in dir(cls) if k.startswith("test_")]
    lines = [f"### class `segbench.testing.{name}`", "", inspect.getdoc(sys.modules[cls.__module__]), "",
             "Settings (class attributes a subclass may override): " + ", ".join(f"`{k} = {v!r}`" for k, v in settings.items()) + ".", "",
             "Checks: " + ", ".join(f"`{k}`" for k in checks) + ".", ""]
    return lines


def render() -> str:
    lines = [INTRO, *public_section(), *hooks_section(), *testing_section()]
    return "\n".join(line.rstrip() for line in "\n".join(lines).splitlines()).rstrip() + "\n"


if __name__ == "__main__":
    API_DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {API_DOC}")
