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

import contextlib
import difflib
import functools
import hashlib
import importlib
import importlib.metadata as metadata
import importlib.util
import inspect
import json
import os
import re
import sys
import tempfile
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
    # A local or editable plugin's source (its file, or its package's folder): its datasets'
    # cache entries depend on it, as an installed one's depend on its version.
    source: str = ""


def load_catalogue(plugins=(), base_dir: Path | None = None) -> Catalogue:
    """Every component from installed entry points plus the ``plugins`` modules or files.

    Relative file paths in ``plugins`` are taken from ``base_dir`` (a suite's folder),
    else from the current directory.
    """
    disabled = {spec[len(DISABLE):] for spec in plugins if spec.startswith(DISABLE)}
    loaded = [_load_entry_point(entry_point) for entry_point in enabled_entry_points(disabled)]
    loaded += [_load_local(spec, base_dir) for spec in plugins if not spec.startswith(DISABLE)]
    manager = pluggy.PluginManager("segbench")
    manager.add_hookspecs(hookspecs)
    added = Registrar()  # what every plugin adds, in the order it is added
    # pluggy calls the plugin registered last first: registered in reverse, the hooks are
    # called in load order (the standard set first) unless tryfirst or trylast say otherwise.
    for name, module, provider in reversed(_first_of_each(loaded)):
        _register(manager, added, name, module, provider)
    _call_hooks(manager)
    return Catalogue(added.components, added.executors, added.reporters)


def _first_of_each(loaded) -> list:
    """The same module named twice (e.g. by -p and by the suite) is one plugin."""
    seen = set()
    return [seen.add(id(module)) or (name, module, provider) for name, module, provider in loaded if id(module) not in seen]


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


def _register(manager, added, name, module, provider):
    _check_hook_names(module, provider)
    _warn_unmarked_hooks(module, provider)
    try:
        manager.register(_attributed(module, provider, added), name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f'plugin "{provider.label}" has an invalid hook: {exc}') from exc


class _Attributed:
    """A plugin as segbench registers it with pluggy: its hook implementations, bound to it."""

    def __init__(self, provider: Provider):
        self.provider = provider


def _attributed(module, provider, added) -> _Attributed:
    """Each hook implementation of ``module``, with its own hookimpl options (tryfirst,
    trylast, wrapper, hookwrapper: pluggy reads them off the function), bound to its plugin:
    called with a Registrar of that plugin's, so that every component knows who provided it
    whatever order pluggy calls the implementations in, and whatever wraps them."""
    plugin = _Attributed(provider)
    for hook_name in HOOKS:
        function = getattr(module, hook_name, None)
        if callable(function) and hasattr(function, "segbench_impl"):
            setattr(plugin, hook_name, _bound(function, hook_name, provider, added))
    return plugin


def _bound(function, hook_name, provider, added):
    """``function`` as pluggy calls it (its signature and marks, through functools.wraps): a
    Registrar of the plugin's for the hook's one argument, adding to ``added``; its errors
    named after the plugin. A wrapper stays a generator, so that pluggy runs it around the
    others (what it adds before its yield comes before theirs, what it adds after, after)."""

    def registrar(args) -> list:
        register = Registrar(provider.label, provider.version, provider.identity, provider.source)
        register.components, register.executors, register.reporters = added.components, added.executors, added.reporters
        return [register] * len(args)  # the only argument a hook has is register

    if inspect.isgeneratorfunction(function):
        @functools.wraps(function)
        def wrapper(*args):
            with _named(provider, hook_name):
                return (yield from function(*registrar(args)))

        return wrapper

    @functools.wraps(function)
    def implementation(*args):
        with _named(provider, hook_name):
            return function(*registrar(args))

    return implementation


@contextlib.contextmanager
def _named(provider, hook_name):
    """An error in a plugin's hook names the plugin (another plugin's error, which reaches a
    wrapper at its yield, is named already and passes unchanged)."""
    try:
        yield
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f'plugin "{provider.label}" failed in {hook_name}: {type(exc).__name__}: {exc}') from exc


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
            f'distribution "{dist_name} {version}": {_raised(exc)}'
        ) from exc
    source = _source_of(module) if dist is not None and _is_editable(dist) else ""
    return f"{dist_name}:{entry_point.name}", module, Provider(dist_name, version, source=source)


def _is_editable(dist) -> bool:
    """Installed with ``pip install -e``: its code can change without a new version (PEP 610)."""
    try:
        direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    except (OSError, ValueError, AttributeError):  # unreadable, or no Distribution: taken as installed
        return False
    return isinstance(direct_url, dict) and bool((direct_url.get("dir_info") or {}).get("editable"))


def _source_of(module) -> str:
    """Where a plugin module's code lives: a package's (or a module's own package's) folder,
    else the module's file (a loose file's folder may hold anything)."""
    file = getattr(module, "__file__", None)
    if not file:
        return ""
    in_package = hasattr(module, "__path__") or bool(getattr(module, "__package__", ""))
    return str(Path(file).resolve().parent if in_package else Path(file).resolve())


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
    if str(path) in _SHIPPED:  # its content came with the suite: the driver's file need not be here
        return path
    if path.is_dir() and (spec.endswith(".py") or not _module_like(spec)):
        raise PluginError(f'plugin "{spec}" is a directory ({path}); give a .py file or an importable module name')
    if not spec.endswith(".py") and not path.is_file():
        return None
    if not path.is_file():
        raise PluginError(f'plugin file "{spec}" does not exist (looked at {path})')
    return path


# Local plugin files shipped by content (a worker on another machine): the driver's
# absolute path -> this machine's copy, while :func:`shipped_plugin_files` is in effect.
_SHIPPED: dict = {}
SHIPPED_DIR = "segbench-plugin-files"


def plugin_file_contents(specs, base_dir: Path | None = None) -> dict:
    """The absolute path and bytes of each local plugin file among ``specs`` (located as
    :func:`load_catalogue` locates them), for a worker that has not got them."""
    files = {}
    for spec in specs:
        path = None if spec.startswith(DISABLE) else _plugin_file(spec, base_dir)
        if path is not None:
            try:
                files[str(path)] = Path(_SHIPPED.get(str(path), path)).read_bytes()
            except OSError as exc:
                raise PluginError(f'plugin file "{path}" cannot be read: {exc.strerror or exc}') from None
    return files


@contextlib.contextmanager
def shipped_plugin_files(files: dict | None):
    """Within this block, the plugin files ``files`` names (the driver's absolute path ->
    its bytes) are read from copies written under the temporary folder, one folder per
    content: the driver's path need not exist here. A copy keeps the file's name and bytes,
    so its identity in variant ids and its datasets' cache keys are the driver's."""
    copies = {path: _copy_of(path, content) for path, content in (files or {}).items()}
    before = dict(_SHIPPED)
    _SHIPPED.update(copies)
    try:
        yield
    finally:
        _SHIPPED.clear()
        _SHIPPED.update(before)


def _copy_of(path: str, content: bytes) -> Path:
    folder = Path(tempfile.gettempdir()) / SHIPPED_DIR / hashlib.sha256(content).hexdigest()[:16]
    copy = folder / Path(path).name
    if not copy.is_file() or copy.read_bytes() != content:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{copy.name}.{os.getpid()}.partial"  # atomic: workers of one node may write it at once
        partial.write_bytes(content)
        os.replace(partial, copy)
    return copy


def _module_like(spec: str) -> bool:
    return all(part.isidentifier() for part in spec.split("."))


def _load_local(spec: str, base_dir: Path | None):
    path = _plugin_file(spec, base_dir)
    if path is not None:
        read = _SHIPPED.get(str(path), path)  # a worker's copy of the driver's file, else the file itself
        identity = _content_identity(path.stem, read)
        module = _check_implements_hooks(spec, _import_file(spec, read, identity))
        return f"file:{path}", module, Provider(str(path), "local", identity, source=str(read))
    module = _check_implements_hooks(spec, _import_module(spec))
    source = Path(getattr(module, "__file__", None) or "")
    identity = _content_identity(spec, source) if source.is_file() else ""
    return f"module:{spec}", module, Provider(spec, "local", identity, source=_source_of(module))


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
        raise PluginError(f'Error importing plugin "{spec}" (file {path}): {_raised(exc)}') from exc
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
        raise PluginError(f'Error importing plugin "{spec}": {_raised(exc)}') from exc


def _raised(exc: BaseException) -> str:
    """What a plugin's import raised, in words: ``called sys.exit(4)`` or ``Type: message``."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


def _call_hooks(manager):
    """Call each hook once, through pluggy's hook caller, so that tryfirst, trylast and
    wrappers mean what pluggy documents; each implementation adds with a Registrar of its own
    plugin's (see _bound)."""
    for hook_name in HOOKS:
        hook = getattr(manager.hook, hook_name)
        try:
            hook(register=None)  # each implementation is given its plugin's Registrar instead
        except PluginError:
            raise
        except Exception as exc:  # pluggy's own: a wrapper that does not yield exactly once
            wrappers = [f'"{impl.plugin.provider.label}"' for impl in hook.get_hookimpls() if impl.wrapper or impl.hookwrapper]
            reason = next((words for words in ("did not yield", "did not stop", "has a second yield") if words in str(exc)), str(exc))
            raise PluginError(f"{hook_name}: a wrapper {reason} (wrappers of it: plugin {', '.join(wrappers)}); a wrapper yields "
                              "exactly once, where the other implementations run") from exc
