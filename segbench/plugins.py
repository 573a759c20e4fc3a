"""Find plugins (entry points, ``-p`` modules and files, a suite's ``plugins``) and build
the component catalogue from their hooks."""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as metadata
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import pluggy

from . import hookspecs
from .components import Catalogue, Registrar
from .errors import PluginError

ENTRY_POINT_GROUP = "segbench"
HOOKS = tuple(name for name in dir(hookspecs) if name.startswith("segbench_"))


@dataclass(frozen=True)
class Provider:
    """Where a plugin came from: shown by ``segbench list`` and in duplicate errors."""

    label: str
    version: str


def load_catalogue(plugins=(), base_dir: Path | None = None) -> Catalogue:
    """Every component from installed entry points plus the ``plugins`` modules or files.

    Relative file paths in ``plugins`` are taken from ``base_dir`` (a suite's folder).
    """
    manager = pluggy.PluginManager("segbench")
    manager.add_hookspecs(hookspecs)
    providers: dict[str, Provider] = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        _register(manager, providers, *_load_entry_point(entry_point))
    for spec in plugins:
        _register(manager, providers, *_load_local(spec, base_dir))
    return Catalogue(_collect(manager, providers))


def _register(manager, providers, name, module, provider):
    if manager.is_registered(module):
        return  # the same module named twice (e.g. by -p and by the suite)
    _check_hook_names(module, provider)
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


def _load_entry_point(entry_point):
    dist = entry_point.dist
    dist_name = dist.metadata["Name"] if dist else "?"
    version = dist.version if dist else "?"
    try:
        module = entry_point.load()
    except Exception as exc:
        raise PluginError(
            f'Error importing plugin "{entry_point.name}" ({entry_point.value}) of '
            f'distribution "{dist_name} {version}": {type(exc).__name__}: {exc}'
        ) from exc
    return f"{dist_name}:{entry_point.name}", module, Provider(dist_name, version)


def _load_local(spec: str, base_dir: Path | None):
    path = Path(spec)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if spec.endswith(".py") or path.is_file():
        return f"file:{path}", _import_file(spec, path), Provider(str(path), "local")
    return f"module:{spec}", _import_module(spec), Provider(spec, "local")


def _import_file(spec, path: Path):
    if not path.is_file():
        raise PluginError(f'plugin file "{spec}" does not exist (looked at {path})')
    module_name = f"segbench_local_{abs(hash(str(path.resolve())))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    try:
        import_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(import_spec)
        sys.modules[module_name] = module
        import_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
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
    except Exception as exc:
        raise PluginError(f'Error importing plugin "{spec}": {type(exc).__name__}: {exc}') from exc


def _collect(manager, providers):
    """Call each plugin's hooks with a registrar of its own, so every component knows
    which plugin provided it."""
    components = []
    for hook_name in HOOKS:
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            provider = providers[impl.plugin_name]
            registrar = Registrar(provider.label, provider.version)
            try:
                impl.function(**{arg: registrar for arg in impl.argnames})
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f'plugin "{provider.label}" failed in {hook_name}: {type(exc).__name__}: {exc}'
                ) from exc
            components.extend(registrar.components)
    return components
