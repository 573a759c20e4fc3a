"""Component specs and the registrar that plugins add them through."""

from __future__ import annotations

import difflib
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import PluginError, SegbenchError
from .extensions import Executor, Reporter, new_executor, new_reporter

KINDS = ("upsampler", "architecture", "loss", "metric", "dataset")
REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    """A user-settable parameter: a keyword-only argument of the factory."""

    name: str
    default: Any = REQUIRED
    annotation: Any = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        kind = _annotation_name(self.annotation)
        text = f"{self.name}: {kind}" if kind else self.name
        return text if self.required else f"{text} = {self.default!r}"


@dataclass(frozen=True)
class Component:
    """One registered component of one kind.

    ``requires`` and ``provides`` are capability names: an upsampler that requires
    ``"pool_indices"`` only fits an architecture that provides it.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str = ""
    requires: frozenset = frozenset()
    provides: frozenset = frozenset()
    provider: str = "?"
    version: str = "?"
    params: dict = field(default_factory=dict)
    higher_is_better: bool | None = None  # metrics: declared, or read off the metric (see metric_direction)
    # What variant ids record of the provider; empty: provider and version. A local plugin's
    # is its module name and content hash, so that its path does not change ids.
    identity: str = ""
    # Parameters added after suites were written: left at their default they are left out
    # of the resolved configuration, so that the variant ids of those suites do not change.
    id_neutral: frozenset = frozenset()
    # A local or editable plugin's source (file or folder), which a dataset's cache key
    # fingerprints (segbench.engine.build); empty for an installed release, known by its version.
    source: str = ""

    @property
    def provenance(self) -> str:
        """The provider as variant ids see it: a new release, or an edited local plugin,
        gives new ids."""
        return self.identity or f"{self.provider} {self.version}"

    def build(self, *context, **params):
        return self.factory(*context, **params)

    def resolve_params(self, given: dict) -> dict:
        """Defaults merged with ``given``; assumes ``given`` was validated."""
        defaults = {p.name: p.default for p in self.params.values() if not p.required}
        resolved = {**defaults, **given}
        return {name: value for name, value in resolved.items()
                if not (name in self.id_neutral and name in defaults and _same(value, defaults[name]))}


def _same(value, default) -> bool:
    """Equal and of the same kind (``False == 0``, but a 0 given for a boolean is not its default)."""
    return type(value) is type(default) and value == default


def keyword_params(factory) -> dict[str, Param]:
    """The keyword-only parameters of ``factory``: what a suite may set."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return {}
    hints = _type_hints(factory)
    return {
        p.name: Param(p.name, p.default, hints.get(p.name, _plain(p.annotation)))
        for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


class Registrar:
    """Passed to every ``segbench_*`` hook; collects what one plugin adds."""

    def __init__(self, provider: str = "?", version: str = "?", identity: str = "", source: str = ""):
        self.provider = provider
        self.version = version
        self.identity = identity
        self.source = source
        self.components: list[Component] = []
        self.executors: list[Executor] = []
        self.reporters: list[Reporter] = []

    # Every add_* takes ``id_neutral``: names of parameters a new release added, which at
    # their default must not change the variant ids of suites written before them.

    def add_upsampler(self, name, factory, *, description=None, requires=(), id_neutral=()):
        self._add("upsampler", name, factory, description, requires=requires, id_neutral=id_neutral)

    def add_architecture(self, name, factory, *, description=None, provides=(), id_neutral=()):
        self._add("architecture", name, factory, description, provides=provides, id_neutral=id_neutral)

    def add_loss(self, name, factory, *, description=None, id_neutral=()):
        self._add("loss", name, factory, description, id_neutral=id_neutral)

    def add_metric(self, name, factory, *, description=None, higher_is_better=None, id_neutral=()):
        """``higher_is_better`` may be left out: it is then read off the class the factory
        is annotated to return, or off a metric it builds (see :func:`metric_direction`)."""
        if higher_is_better is not None and not isinstance(higher_is_better, bool):
            raise PluginError(f'plugin "{self.provider}" registers metric "{name}" with higher_is_better={higher_is_better!r}: '
                              "expected True or False")
        self._add("metric", name, factory, description, higher_is_better=higher_is_better, id_neutral=id_neutral)

    def add_dataset(self, name, factory, *, description=None, id_neutral=()):
        self._add("dataset", name, factory, description, id_neutral=id_neutral)

    # Executors and reporters are no components (segbench.extensions): no variant id sees them.

    def add_executor(self, name, factory, *, description="", options=()):
        """``factory(**options)`` returns the executor; ``options`` are ExecutorOption items."""
        self.executors.append(new_executor(name, factory, description, options, self.provider, self.version))

    def add_reporter(self, name, write, *, description="", default=True, order=0, check=None, options=()):
        """``write(context)`` writes an output; a ``default=False`` reporter is an exporter.
        ``check()``, if given, raises SegbenchError when the reporter cannot run here;
        ``options`` (ReporterOption items) are its flags on ``segbench export NAME``."""
        self.reporters.append(new_reporter(name, write, description, default, order, self.provider, self.version, check,
                                           options))

    def _add(self, kind, name, factory, description, requires=(), provides=(), higher_is_better=None, id_neutral=()):
        if not isinstance(name, str) or not name.isidentifier():
            raise PluginError(
                f'plugin "{self.provider}" registers {kind} {name!r}: a name must be an '
                "identifier (letters, digits, underscores)"
            )
        if not callable(factory):
            raise PluginError(f'plugin "{self.provider}" registers {kind} "{name}" with a non-callable factory')
        params = keyword_params(factory)
        unknown = sorted(set(id_neutral) - set(params))
        if isinstance(id_neutral, str) or unknown:
            raise PluginError(f'plugin "{self.provider}" registers {kind} "{name}" with id_neutral={id_neutral!r}: expected '
                              f"a list of its keyword parameters ({', '.join(params) or 'it has none'})")
        self.components.append(
            Component(
                kind=kind,
                name=name,
                factory=factory,
                description=description or _first_line(factory.__doc__),
                requires=frozenset(requires),
                provides=frozenset(provides),
                provider=self.provider,
                version=self.version,
                params=params,
                higher_is_better=higher_is_better if higher_is_better is not None else _declared_direction(factory),
                identity=self.identity,
                id_neutral=frozenset(id_neutral),
                source=self.source,
            )
        )


class Catalogue:
    """Every registered component, by kind and name; and the executors and reporters."""

    def __init__(self, components=(), executors=(), reporters=()):
        self._by_kind: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        for component in components:
            self._insert(component)
        self.executors: dict[str, Executor] = _by_name("executor", executors)
        self.reporters: dict[str, Reporter] = _by_name("reporter", reporters)  # in registration order

    def executor(self, name: str) -> Executor:
        return _lookup("executor", self.executors, name)

    def reporter(self, name: str) -> Reporter:
        return _lookup("reporter", self.reporters, name)

    def _insert(self, component: Component):
        existing = self._by_kind[component.kind].get(component.name)
        if existing is not None:
            raise PluginError(
                f'{component.kind} "{component.name}" is provided twice: by '
                f'"{existing.provider}" and by "{component.provider}"; uninstall one of them'
            )
        self._by_kind[component.kind][component.name] = component

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

    def all(self, kind: str | None = None) -> list[Component]:
        kinds = [kind] if kind else KINDS
        return [self._by_kind[k][n] for k in kinds for n in self.names(k)]

    def get(self, kind: str, name: str) -> Component:
        try:
            return self._by_kind[kind][name]
        except KeyError:
            raise SegbenchError(unknown_name_message(kind, name, self.names(kind))) from None

    def compatibility(self) -> dict:
        """``{architecture: {upsampler: fits}}`` over every installed pair."""
        return {
            architecture.name: {upsampler.name: fits(architecture, upsampler) for upsampler in self.all("upsampler")}
            for architecture in self.all("architecture")
        }

    def has(self, kind: str, name: str) -> bool:
        return name in self._by_kind[kind]


def _by_name(kind, entries) -> dict:
    found = {}
    for entry in entries:
        if entry.name in found:
            raise PluginError(f'{kind} "{entry.name}" is provided twice: by "{found[entry.name].provider}" and by '
                              f'"{entry.provider}"; uninstall one of them')
        found[entry.name] = entry
    return found


def _lookup(kind, entries, name):
    try:
        return entries[name]
    except KeyError:
        raise SegbenchError(unknown_name_message(kind, name, sorted(entries))) from None


def metric_direction(component: Component) -> bool:
    """Whether a larger value of this metric is better: as registered or annotated, else
    read off a metric built for a 2-class task (cheap: metrics allocate little until
    updated); True when even that fails, as the metric contract's default."""
    if component.higher_is_better is not None:
        return component.higher_is_better
    try:
        metric = component.build(2, 255)
    except Exception:  # noqa: BLE001 - a metric that needs parameters: the contract's default
        return True
    return bool(getattr(metric, "higher_is_better", True))


def _declared_direction(factory):
    """``higher_is_better`` of the class ``factory`` returns (its return annotation, or
    the class itself), when that says."""
    target = factory if inspect.isclass(factory) else _type_hints(factory).get("return")
    value = getattr(target, "higher_is_better", None) if inspect.isclass(target) else None
    return value if isinstance(value, bool) else None


def fits(architecture: Component, upsampler: Component) -> bool:
    """An upsampler fits an architecture that provides every capability it requires."""
    return upsampler.requires <= architecture.provides


def unknown_name_message(kind: str, name, valid: list[str]) -> str:
    message = f"unknown {kind} {name!r}"
    close = difflib.get_close_matches(str(name), valid, n=3)
    if close:
        message += f"; did you mean {' or '.join(repr(c) for c in close)}?"
    return message + f" Valid: {', '.join(valid) if valid else '(none installed)'}"


def _first_line(doc):
    return inspect.cleandoc(doc).splitlines()[0] if doc and doc.strip() else ""


def _type_hints(factory):
    try:
        target = factory.__init__ if inspect.isclass(factory) else factory
        return typing.get_type_hints(target)
    except Exception:
        return {}


def _plain(annotation):
    return None if annotation is inspect.Parameter.empty else annotation


def _annotation_name(annotation):
    if annotation is None:
        return ""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
