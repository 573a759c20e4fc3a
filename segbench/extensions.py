"""Executors and reporters: the harness's extension points beyond components.

Plugins add them through the ``segbench_executors`` and ``segbench_reporters`` hooks with
``register.add_executor(...)`` and ``register.add_reporter(...)``, the same door the five
component kinds use; the built-in ones (local, process, ray; the tables, Markdown, plots and
HTML page of the report) come in through it too. They are not components: they take no part
in variant ids or in resolving a suite.

This module is light on purpose (no torch, no pandas at import time): ``segbench --help``,
``segbench list`` and plugin modules import it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .crash import is_interrupt
from .errors import PluginError, SegbenchError
from .text import one_line

PAGE_ORDER = 100  # the built-in HTML page runs after the reporters whose sections it shows


@dataclass(frozen=True)
class Option:
    """A command-line option of an executor (``--name-with-dashes VALUE`` on ``segbench
    run``, passed to its factory as the keyword ``name``) or of a reporter (on ``segbench
    export NAME``, given to ``write`` in ``context.options["name"]``). ``type`` turns the
    text typed into the value (``int``, ``float``, ``str`` or any one-argument callable);
    ``default`` is what is passed when the option is not given. ``destination``: the option
    says where the extension writes (a folder, a file or a URI such as a tracker's), so
    the reporter contract points it into its sandbox and lets it write there. ``repeat``:
    the flag may be given several times, and the value is the list of texts given."""

    name: str
    type: Callable[[str], Any] = str
    default: Any = None
    help: str = ""
    metavar: str | None = None
    destination: bool = False
    repeat: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def value(self, given):
        """``given`` as the factory takes it: text (from the command line) is converted;
        anything else (from the Python API) is passed as it is, for the factory to check."""
        if not isinstance(given, str) or self.type is str:
            return given
        try:
            return self.type(given)
        except (TypeError, ValueError) as exc:
            kind = getattr(self.type, "__name__", "value")
            raise SegbenchError(f"{self.flag}: invalid {kind} value {given!r} ({exc})") from None


ExecutorOption = Option  # the names a plugin imports; one class
ReporterOption = Option


def option_values(options: Sequence[Option], given: Mapping[str, Any] | None, owner: str) -> dict:
    """Every declared option's value: ``given`` (by option name) over the defaults. An
    option ``owner`` (``--executor process``, ``exporter mlflow``) does not declare is bad
    input, naming the options it takes."""
    given = dict(given or {})
    declared = {option.name: option for option in options}
    stray = sorted(set(given) - set(declared))
    if stray:
        takes = ", ".join(option.flag for option in options) or "no options"
        raise SegbenchError(f"{', '.join('--' + s.replace('_', '-') for s in stray)}: not an option of {owner} (it takes {takes})")
    return {name: option.value(given[name]) if name in given else option.default for name, option in declared.items()}


@dataclass(frozen=True)
class Executor:
    """A registered executor. ``factory(**options)`` returns an object with
    ``records(suite, pending, cache_dir, on_epoch=None)`` (yield one record per pending
    (variant, seed), in any order), ``close()`` and a ``shows_epochs`` attribute."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    options: tuple = ()
    provider: str = "?"
    version: str = "?"

    def build(self, given: Mapping[str, Any] | None = None):
        """The executor, with ``given`` option values (by option name) over the declared
        defaults. An option this executor does not declare is bad input, as is a value
        its factory refuses (ValueError or TypeError, or a SegbenchError)."""
        values = option_values(self.options, given, f"--executor {self.name}")
        try:
            return self.factory(**values)
        except SegbenchError:
            raise
        except (TypeError, ValueError) as exc:
            raise SegbenchError(f"--executor {self.name}: {exc}") from None


@dataclass(frozen=True)
class Reporter:
    """A registered reporter: ``write(context)`` with a :class:`ReportContext`. A default
    reporter runs on every report; the others (exporters) only when a suite lists them in
    ``[report] exporters`` or ``segbench export NAME`` names them. Reporters run by ascending
    ``order``, then in the order they were registered. ``options`` (:class:`Option` items)
    are the flags of ``segbench export NAME``; ``write`` finds their values, defaults
    filled in, in ``context.options``."""

    name: str
    write: Callable[["ReportContext"], Any]
    description: str = ""
    default: bool = True
    order: int = 0
    provider: str = "?"
    version: str = "?"
    # ``check()`` raises SegbenchError when the reporter cannot run here (a missing extra,
    # say); run before training for a suite's exporters, so that hours of runs are not
    # followed by an export that was never going to work.
    check: Callable[[], None] | None = None
    options: tuple = ()

    def option_values(self, given: Mapping[str, Any] | None = None) -> dict:
        """``given`` (by option name) over the declared defaults; an undeclared option is
        bad input naming the flags this reporter takes. A reporter that declares none (as
        before segbench had ReporterOption) gets ``given`` as it is, from the Python API."""
        if not self.options:
            return dict(given or {})
        return option_values(self.options, given, f"{'reporter' if self.default else 'exporter'} {self.name}")

    def ready(self) -> str | None:
        """Why this reporter cannot run here, or None."""
        if self.check is None:
            return None
        try:
            self.check()
        except SegbenchError as exc:
            return str(exc)
        return None


@dataclass(frozen=True)
class ReportSection:
    """A section of the HTML report. ``title`` is plain text (the page escapes it);
    ``html`` is the body as HTML: escape every text from a suite, a record or a dataset
    in it (``html.escape``)."""

    title: str
    html: str


@dataclass(frozen=True, eq=False)
class ReportContext:
    """What a reporter is given.

    - ``records``: the run records (dicts), variants in the suite's order, seeds ascending;
    - ``meta``: what the report knows of the suite (``results/<suite>/suite.json``);
    - ``runs``, ``summary``: the pandas DataFrames of ``runs.csv`` and ``summary.csv``;
    - ``per_class``, ``class_metric``: the per-class table (DataFrame or None) and its metric;
    - ``report_dir``: ``results/<suite>/report``; ``suite_dir``: ``results/<suite>``;
    - ``load_samples(key)``: the stored validation inputs of a dataset, or None;
    - ``options``: this reporter's options (e.g. ``segbench export``'s flags), maybe empty;
    - ``sections``: the sections returned by the reporters that ran before this one.
    """

    records: list
    meta: dict
    runs: Any
    summary: Any
    report_dir: Path
    suite_dir: Path
    load_samples: Callable | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    per_class: Any = None
    class_metric: str | None = None
    sections: tuple = ()


@dataclass(frozen=True)
class ReporterFailure:
    """A reporter that raised: its name and the exception (with its traceback, for the
    crash log); the other outputs were written."""

    reporter: Reporter
    error: BaseException

    def __str__(self) -> str:
        return (f'reporter "{self.reporter.name}" of "{self.reporter.provider}" failed: '
                f"{type(self.error).__name__}: {self.error}")


class ReporterError(SegbenchError):
    """A reporter failed after the runs were recorded: exit 1, something failed (the input
    was good and the records are kept). ``failure`` says which, with the exception."""

    exit_code = 1

    def __init__(self, failure: ReporterFailure):
        super().__init__(str(failure))
        self.failure = failure


class ExecutorError(SegbenchError):
    """An executor kept back runs past every round the runner allows: exit 1 (the finished
    runs are kept)."""

    exit_code = 1


def new_executor(name, factory, description, options, provider, version) -> Executor:
    _check_name("executor", name, provider)
    if not callable(factory):
        raise PluginError(f'plugin "{provider}" registers executor "{name}" with a non-callable factory')
    options = _checked_options("executor", name, options, provider)
    missing = [o.name for o in options if not _accepts_keyword(factory, o.name)]
    if missing:
        raise PluginError(f'plugin "{provider}" registers executor "{name}": its factory takes no keyword {", ".join(missing)}, '
                          "which its options declare")
    return Executor(name, factory, description or _first_line(factory.__doc__), options, provider, version)


def _checked_options(kind, name, options, provider) -> tuple:
    options = tuple(options)
    bad = [o for o in options if not isinstance(o, Option) or not o.name.isidentifier() or not callable(o.type)]
    if bad or len({o.name for o in options}) < len(options):
        raise PluginError(f'plugin "{provider}" registers {kind} "{name}" with options={options!r}: expected '
                          f"{kind.capitalize()}Option(name, type, default, help) items with distinct identifier names")
    return options


def new_reporter(name, write, description, default, order, provider, version, check=None, options=()) -> Reporter:
    _check_name("reporter", name, provider)
    if not callable(write):
        raise PluginError(f'plugin "{provider}" registers reporter "{name}" with a non-callable write')
    if not isinstance(default, bool) or isinstance(order, bool) or not isinstance(order, int):
        raise PluginError(f'plugin "{provider}" registers reporter "{name}" with default={default!r}, order={order!r}: '
                          "expected True or False, and an integer")
    if check is not None and not callable(check):
        raise PluginError(f'plugin "{provider}" registers reporter "{name}" with a non-callable check')
    options = _checked_options("reporter", name, options, provider)
    return Reporter(name, write, description or _first_line(write.__doc__), default, order, provider, version, check, options)


def chosen_reporters(reporters: Mapping[str, Reporter], exporters: Sequence[str] = ()) -> list[Reporter]:
    """What a report runs: every default reporter by order, then the exporters named, as
    named (after the page, so that they may send it on)."""
    defaults = sorted((r for r in reporters.values() if r.default), key=lambda r: r.order)  # stable: registration order
    return defaults + [reporters[name] for name in exporters]


def run_reporters(reporters: Sequence[Reporter], context: ReportContext,
                  options: Mapping[str, Mapping] | None = None) -> list[ReporterFailure]:
    """Call each reporter with ``context``, its own ``options`` and the sections of those
    before it. One that raises is recorded and the rest still run: its failure must not
    cost the other outputs."""
    # Bad options are bad input, found before any reporter runs.
    given = {reporter.name: reporter.option_values((options or {}).get(reporter.name)) for reporter in reporters}
    sections, failures = [], []
    for reporter in reporters:
        mine = replace(context, options=given[reporter.name], sections=tuple(sections))
        try:
            sections.extend(_sections(reporter, reporter.write(mine)))
        except BaseException as exc:  # noqa: BLE001 - a plugin's failure stays its own; Ctrl-C stops
            if is_interrupt(exc):
                raise
            failures.append(ReporterFailure(reporter, exc))
    return failures


def _sections(reporter, returned) -> list[ReportSection]:
    """The sections ``write`` returned. Any other value (an exporter's summary, say) is no
    section: the report ignores it and :func:`segbench.api.run_reporter` hands it back."""
    if not isinstance(returned, (list, tuple)) or not any(isinstance(s, ReportSection) for s in returned):
        return []
    if not all(isinstance(s, ReportSection) for s in returned):
        raise TypeError("write() returned a list mixing ReportSection with other items")
    return list(returned)


def format_extensions(kind: str, entries) -> str:
    """``segbench list executors`` / ``reporters``: name, description, provider, and the
    options (executors) or when it runs (reporters). Every text a plugin wrote goes
    through ``one_line``."""
    entries = list(entries)
    if not entries:
        return f"(no {kind}s installed)"
    width = max(len(e.name) for e in entries)
    lines = [f"{kind}s:"]
    for entry in entries:
        lines.append(f"  {entry.name:<{width}}  {one_line(entry.description)}  [{one_line(entry.provider)} {one_line(entry.version)}]")
        if not isinstance(entry, Executor):
            runs = "every report" if entry.default else f"when listed in [report] exporters, or by `segbench export {entry.name}`"
            lines.append(f"  {'':<{width}}  runs: {runs}")
        if isinstance(entry, Executor) or entry.options:
            options = ", ".join(f"{o.flag} ({o.default!r})" for o in entry.options) or "(none)"
            lines.append(f"  {'':<{width}}  options: {one_line(options)}")
    return "\n".join(lines)


def _check_name(kind, name, provider):
    if not isinstance(name, str) or not name.isidentifier():
        raise PluginError(f'plugin "{provider}" registers {kind} {name!r}: a name must be an identifier (letters, digits, underscores)')


def _accepts_keyword(factory, name) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return True  # not introspectable: the call will tell
    return any(p.kind is p.VAR_KEYWORD or (p.name == name and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
               for p in parameters)


def _first_line(doc):
    return inspect.cleandoc(doc).splitlines()[0] if doc and doc.strip() else ""
