"""Internal errors: one line for the user, the traceback in a crash log.

Exit code 3 means "segbench itself failed", never "your runs failed" (1) or "your input
is wrong" (2), so a crash can never read as a regression in CI.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path

from . import __version__

CRASH_DIR_ENV = "SEGBENCH_CRASH_DIR"
INTERNAL_ERROR = 3


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP), raised where the program is, so that it stops the way Ctrl-C
    does: the finished runs are kept, workers stopped and temporary files removed on the way
    out. ``exit_code`` is what a shell reports for a process that signal ended."""

    def __init__(self, signum=signal.SIGTERM):
        super().__init__()
        self.exit_code = 128 + signum


@contextlib.contextmanager
def sigterm_stops_cleanly():
    """While inside, SIGTERM, and SIGHUP (a closed terminal or ssh session), raise Terminated
    in the main thread (once: a second one ends the process at once). Only in the process
    that installed it: a forked child that inherits the handler dies of the signal as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def stop(signum, frame):
        signal.signal(signum, signal.SIG_DFL)
        if os.getpid() != owner:
            os.kill(os.getpid(), signum)
            return
        raise Terminated(signum)

    signums = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {signum: signal.signal(signum, stop) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


class Halt(BaseException):
    """Raised by a watchdog of segbench's own (a contract's deadline, say) to stop what runs
    inside it: like Ctrl-C, never taken for the failure of the plugin it interrupts."""


def is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` stops segbench itself (Ctrl-C, SIGTERM, a :class:`Halt`) rather than
    failing a plugin's work: any other BaseException a plugin raises is that plugin's failure."""
    return isinstance(exc, (KeyboardInterrupt, Halt))


@contextlib.contextmanager
def step(description: str):
    """Name what segbench was doing when an unexpected exception passed through: the
    innermost step wins, so the user reads "while drawing the report", not "while running"."""
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - named, then raised on as it was
        if not hasattr(exc, "segbench_step"):
            exc.segbench_step = description
        raise


def crash_dir() -> Path:
    """$SEGBENCH_CRASH_DIR, else the user's log folder (platformdirs)."""
    if os.environ.get(CRASH_DIR_ENV):
        return Path(os.environ[CRASH_DIR_ENV])
    import platformdirs

    return Path(platformdirs.user_log_dir("segbench"))


def write_crash_log(exc: BaseException, argv, kind: str = "crash") -> Path:
    """The traceback and enough context to reproduce; falls back to the temp folder when
    the log folder cannot be written. ``kind`` begins the file's name (``reporter-NAME``
    for a plugin's failure: no "crash" of segbench)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = "".join([
        f"segbench {__version__}, Python {platform.python_version()}, {platform.platform()}\n",
        f"command: segbench {' '.join(argv)}\n",
        f"step: {getattr(exc, 'segbench_step', 'unknown')}\n\n",
        *traceback.format_exception(exc),
    ])
    for folder in (crash_dir(), Path(tempfile.gettempdir())):
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{kind}-{stamp}-{os.getpid()}.log"
            path.write_text(text, encoding="utf-8")
            return path
    return Path("(no crash log could be written)")


def save_elsewhere(name: str, text: str) -> Path | None:
    """Keep ``text`` that could not be written where it belongs (a record on a full disk)
    in the crash-log folder, else the temp folder; None when neither can be written."""
    for folder in (crash_dir(), Path(tempfile.gettempdir())):
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(text, encoding="utf-8")
            return path
    return None


def report_internal_error(exc: BaseException, argv, debug: bool) -> int:
    where = getattr(exc, "segbench_step", None)
    log = write_crash_log(exc, argv)
    message = str(exc).splitlines()[0] if str(exc) else ""
    print(f"segbench: internal error{f' while {where}' if where else ''}: {type(exc).__name__}"
          f"{f': {message}' if message else ''} (crash log: {log}; --debug prints it; please report it)", file=sys.stderr)
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    return INTERNAL_ERROR


def foreign_base_exception(exc: BaseException) -> str:
    """A plugin raised a BaseException that is neither an Exception nor Ctrl-C: name it and
    the plugin code it came from (the innermost frame outside segbench)."""
    where = plugin_frame(exc)
    message = str(exc).splitlines()[0] if str(exc) else ""
    return (f"{where or 'plugin code'} raised {type(exc).__name__}{f': {message}' if message else ''}"
            f"{f' while {exc.segbench_step}' if getattr(exc, 'segbench_step', None) else ''}; {type(exc).__name__} derives from "
            "BaseException, not Exception: a plugin must raise an Exception (e.g. RuntimeError)")


def plugin_frame(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of ``exc``'s traceback outside segbench's own
    package, where a plugin's code raised it; "" when there is none."""
    package = Path(__file__).resolve().parent
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if package not in Path(frame.filename).resolve().parents]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
