"""What every contract class shares: finding the component under test."""

from __future__ import annotations

import functools

import pytest

from ..component_checks import named
from ..components import Catalogue, Component, Registrar


class ComponentContract:
    """The base of the contract classes: the component ``kind``/``name`` under test, built
    with ``params``.

    ``hook`` (a ``segbench_<kind>s`` function, or a tuple of them) registers the component
    on its own, for a plugin that is not installed; left ``None``, the component comes from
    every installed plugin, exactly as ``segbench run`` finds it, so the registration
    through the entry point is under test too.
    """

    kind: str = ""
    name: str = ""
    params: dict = {}
    hook = None

    def catalogue(self) -> Catalogue:
        hooks = type(self).hook  # read off the class: a plain function, never a bound method
        if hooks is None:
            return installed_catalogue()
        register = Registrar("contract-test")
        for hook in hooks if isinstance(hooks, (tuple, list)) else (hooks,):
            hook(register)
        return Catalogue(register.components)

    def component(self) -> Component:
        if not self.name:
            raise NotImplementedError(f"a {type(self).__name__} subclass sets `name` to the {self.kind} under test")
        return self.catalogue().get(self.kind, self.name)

    # --- failing with a message: the component, the input, what was expected, what came back

    def described(self) -> str:
        """The component as messages name it: kind, name, plugin and version."""
        try:
            return named(self.component())
        except Exception:  # noqa: BLE001 - a component that cannot be found is named as asked for
            return f"{self.kind} {self.name!r}"

    def fail(self, message: str):
        """Fail the test with ``message``, after the component's name (no traceback: the message says it all)."""
        pytest.fail(f"{self.described()}: {message}", pytrace=False)

    def expect(self, condition, message):
        """Fail with ``message`` (a string, or a callable giving one) unless ``condition``."""
        if not condition:
            self.fail(message() if callable(message) else message)

    def expect_close(self, got, expected, what, **tolerance):
        """``got`` equals ``expected`` within pytest.approx's tolerance (NaN equals NaN)."""
        if not _approx_equal(got, expected, **tolerance):
            self.fail(f"{what}: expected {_shown(expected)}, got {_shown(got)}")


def _approx_equal(got, expected, **tolerance) -> bool:
    try:
        return bool(got == pytest.approx(expected, nan_ok=True, **tolerance))
    except TypeError:  # e.g. a value approx cannot compare: never equal
        return False


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


@functools.cache
def installed_catalogue() -> Catalogue:
    """Every installed plugin's components, loaded once per test session."""
    from ..plugins import load_catalogue

    return load_catalogue()
