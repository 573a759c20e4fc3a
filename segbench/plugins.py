"""Find plugins (entry points, ``-p`` modules and files, a suite's ``plugins``) and build
the component catalogue from their hooks.

``-p no:NAME`` (or ``no:NAME`` in a suite's ``plugins``) disables an installed plugin, as in
pytest: NAME is an entry-point name of the ``segbench`` group (``no:losses``) or a
distribution's name (``no:segbench-example``, every entry point it has). A disabled plugin is
not even imported, so a broken one can be left out; the other components keep their ids.

A plugin file's relative path is read from the current directory when it comes from
``-p`` and from the suite's folder when it comes from the suite's ``plugins`` list. Its
identity in variant ids is its module name and a hash of its content, never its path, so
the same plugin named from another directory keeps its variants' ids.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata as metadata
import importlib.util
import inspect
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pluggy

from . import hookspecs
from .components import Catalogue, Registrar
from .crash import is_interrupt
from .errors import PluginError

ENTRY_POINT_GROUP = "segbench"
HOOKS = tuple(name for name in dir(hookspecs) if name.startswith("segbench_"))
DISABLE = "no:"
STANDARD_DISTRIBUTION = "segbench"  # segbench's own distribution, which installs the standard plugins


_WARNED: dict = {}  # what was warned about in this process: a command that loads plugins twice warns once


class PluginWarning(UserWarning):
    """A plugin that loads, but not as its author meant (e.g. a hook without @hookimpl)."""


@dataclass(frozen=True)
class Provider:
    """Where a plugin came from: shown by ``segbench list`` and in duplicate errors."""

    label: str
    version: str
    # What variant ids record of it; empty: label and version (an installed distribution).
    identity: str = ""


def load_catalogue(plugins=(), base_dir: Path | None = None) -> Catalogue:
    """Every component from installed entry points plus the ``plugins`` modules or files.

    Relative file paths in ``plugins`` are taken from ``base_dir`` (a suite's folder),
    else from the current directory.
    """
    manager = pluggy.PluginManager("segbench")
    manager.add_hookspecs(hookspecs)
    providers: dict[str, Provider] = {}
    disabled = {spec[len(DISABLE):] for spec in plugins if spec.startswith(DISABLE)}
    for entry_point in enabled_entry_points(disabled):
        _register(manager, providers, *_load_entry_point(entry_point))
    for spec in plugins:
        if not spec.startswith(DISABLE):
            _register(manager, providers, *_load_local(spec, base_dir))
    return Catalogue(*_collect(manager, providers))


def enabled_entry_points(disabled=frozenset()) -> list:
    """The ``segbench`` entry points, less those ``disabled`` names (entry-point or
    distribution names); a name that is neither is bad input, answered with the valid ones."""
    entry_points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    names = {entry_point.name: entry_point.name for entry_point in entry_points}
    names.update({_normalized(_dist_name(entry_point)): _dist_name(entry_point) for entry_point in entry_points if entry_point.dist})
    unknown = sorted(name for name in disabled if name not in names and _normalized(name) not in names)
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(names.values()), n=1)
        hint = f"; did you mean no:{close[0]}?" if close else ""
        raise PluginError(f"-p no:{unknown[0]}: no installed plugin is called {unknown[0]!r}{hint or '.'} Valid after no: the entry points "
                          f"and distributions of the segbench group: {', '.join(sorted(set(names.values()))) or '(none installed)'}")
    blocked = {_normalized(name) for name in disabled} | set(disabled)
    enabled = [entry_point for entry_point in entry_points
               if entry_point.name not in blocked and not (entry_point.dist and _normalized(_dist_name(entry_point)) in blocked)]
    return sorted(enabled, key=_load_order)


def _load_order(entry_point):
    """segbench's own (the standard set) first, then by distribution and name: the same order
    wherever the packages are installed (reporters run, and add report sections, in it)."""
    dist = _normalized(_dist_name(entry_point)) if entry_point.dist else ""
    return dist != STANDARD_DISTRIBUTION, dist, entry_point.name


def _dist_name(entry_point) -> str:
    return entry_point.dist.metadata["Name"] or "?"


def _normalized(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): case, ``-``, ``_`` and ``.`` aside."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _register(manager, providers, name, module, provider):
    if manager.is_registered(module):
        return  # the same module named twice (e.g. by -p and by the suite)
    _check_hook_names(module, provider)
    _warn_unmarked_hooks(module, provider)
    try:
        manager.register(module, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f'plugin "{provider.label}" has an invalid hook: {exc}') from exc
    providers[name] = provider


def _check_hook_names(module, provider):
    """A @hookimpl whose name is no hook would be silently ignored: say so instead."""
    for attr in dir(module):
        if attr not in HOOKS and hasattr(getattr(module, attr, None), "segbench_impl"):
            close = difflib.get_close_matches(attr, HOOKS, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise PluginError(f'plugin "{provider.label}" implements unknown hook {attr}{hint} Valid: {", ".join(HOOKS)}')


def _warn_unmarked_hooks(module, provider):
    """A ``segbench_*`` function without @hookimpl is never called: warn (pytest would call
    it; segbench asks for the mark, so that a helper's name cannot become a hook by accident)."""
    name = getattr(module, "__name__", None)
    for attr, value in sorted(vars(module).items()):
        if (attr.startswith("segbench_") and inspect.isfunction(value) and value.__module__ == name
                and not hasattr(value, "segbench_impl")):
            close = difflib.get_close_matches(attr, HOOKS, n=1)
            hook = attr if attr in HOOKS else f"{attr} (no hook is called that{f'; did you mean {close[0]}?' if close else ''})"
            code = value.__code__
            warnings.warn_explicit(f'plugin "{provider.label}" defines {hook} without @hookimpl; segbench ignores it. Mark it '
                                   "@segbench.hookimpl", PluginWarning, code.co_filename, code.co_firstlineno,
                                   registry=_WARNED)


def _load_entry_point(entry_point):
    dist = entry_point.dist
    dist_name = dist.metadata["Name"] if dist else "?"
    version = dist.version if dist else "?"
    try:
        module = entry_point.load()
    except BaseException as exc:  # noqa: BLE001 - SystemExit, or any a plugin defines; not Ctrl-C
        if is_interrupt(exc):
            raise
        raise PluginError(
            f'Error importing plugin "{entry_point.name}" ({entry_point.value}) of '
            f'distribution "{dist_name} {version}": {type(exc).__name__}: {exc}'
        ) from exc
    return f"{dist_name}:{entry_point.name}", module, Provider(dist_name, version)


def locate_plugin(spec: str, base_dir: Path | None = None) -> str:
    """``spec`` as :func:`load_catalogue` should be given it wherever it runs: a module name
    as it is, a file as an absolute path (a relative one is read from ``base_dir``, else
    from the current directory)."""
    if spec.startswith(DISABLE):
        return spec
    path = _plugin_file(spec, base_dir)
    return spec if path is None else str(path)


def _plugin_file(spec: str, base_dir: Path | None) -> Path | None:
    """The absolute path of the plugin file ``spec`` names, or None for a module name. A file
    that is not there is named as typed and as looked for."""
    if not spec.strip():
        raise PluginError("a plugin is named by an empty string; give a module name or a path to a .py file")
    path = Path(os.path.abspath(Path(base_dir or ".") / spec))
    if path.is_dir() and (spec.endswith(".py") or not _module_like(spec)):
        raise PluginError(f'plugin "{spec}" is a directory ({path}); give a .py file or an importable module name')
    if not spec.endswith(".py") and not path.is_file():
        return None
    if not path.is_file():
        raise PluginError(f'plugin file "{spec}" does not exist (looked at {path})')
    return path


def _module_like(spec: str) -> bool:
    return all(part.isidentifier() for part in spec.split("."))


def _load_local(spec: str, base_dir: Path | None):
    path = _plugin_file(spec, base_dir)
    if path is not None:
        identity = _content_identity(path.stem, path)
        module = _check_implements_hooks(spec, _import_file(spec, path, identity))
        return f"file:{path}", module, Provider(str(path), "local", identity)
    module = _check_implements_hooks(spec, _import_module(spec))
    source = Path(getattr(module, "__file__", None) or "")
    return f"module:{spec}", module, Provider(spec, "local", _content_identity(spec, source) if source.is_file() else "")


def _check_implements_hooks(spec, module):
    """A plugin named on purpose that adds nothing (a folder imported as a namespace package,
    the wrong file) is a mistake: say so rather than go on without it."""
    if not any(hasattr(getattr(module, attr, None), "segbench_impl") for attr in dir(module)):
        folder = " (it is a folder, imported as an empty package)" if getattr(module, "__file__", None) is None else ""
        raise PluginError(f'plugin "{spec}" implements no segbench hook{folder}; a plugin marks functions with @segbench.hookimpl, '
                          f'named one of: {", ".join(HOOKS)}')
    return module


def _content_identity(module_name: str, path: Path) -> str:
    """The module's name and a hash of its file: the same code gets the same variant ids
    from any directory, and an edit gets new ones."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise PluginError(f'plugin file "{path}" cannot be read: {exc.strerror or exc}') from None
    return f"{module_name} local sha256:{digest}"


def _import_file(spec, path: Path, identity: str):
    # Imported once per file and content: an edited file is imported again, so that its
    # code and its identity in variant ids agree.
    module_name = f"segbench_local_{abs(hash((str(path.resolve()), identity)))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    try:
        import_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(import_spec)
        sys.modules[module_name] = module
        import_spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - SystemExit, or any a plugin defines; not Ctrl-C
        sys.modules.pop(module_name, None)
        if is_interrupt(exc):
            raise
        raise PluginError(f'Error importing plugin "{spec}" (file {path}): {type(exc).__name__}: {exc}') from exc
    return module


def _import_module(spec):
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and (spec == exc.name or spec.startswith(exc.name + ".")):
            raise PluginError(
                f'plugin "{spec}" not found: give an importable module name or a path to a .py file'
            ) from exc
        raise PluginError(f'Error importing plugin "{spec}": {type(exc).__name__}: {exc}') from exc
    except BaseException as exc:  # noqa: BLE001 - SystemExit, or any a plugin defines; not Ctrl-C
        if is_interrupt(exc):
            raise
        raise PluginError(f'Error importing plugin "{spec}": {type(exc).__name__}: {exc}') from exc


def _collect(manager, providers):
    """Call each plugin's hooks with a registrar of its own, so every component knows
    which plugin provided it. Returns the components, the executors and the reporters."""
    components, executors, reporters = [], [], []
    for hook_name in HOOKS:
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            provider = providers[impl.plugin_name]
            registrar = Registrar(provider.label, provider.version, provider.identity)
            try:
                impl.function(**{arg: registrar for arg in impl.argnames})
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f'plugin "{provider.label}" failed in {hook_name}: {type(exc).__name__}: {exc}'
                ) from exc
            components.extend(registrar.components)
            executors.extend(registrar.executors)
            reporters.extend(registrar.reporters)
    return components, executors, reporters
