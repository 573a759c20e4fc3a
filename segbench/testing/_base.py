"""What every contract class shares: finding the component under test."""

from __future__ import annotations

import functools

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


@functools.cache
def installed_catalogue() -> Catalogue:
    """Every installed plugin's components, loaded once per test session."""
    from ..plugins import load_catalogue

    return load_catalogue()
