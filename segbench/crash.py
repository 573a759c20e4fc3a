"""Internal errors: one line for the user, the traceback in a crash log.

Exit code 3 means "segbench itself failed", never "your runs failed" (1) or "your input
is wrong" (2), so a crash can never read as a regression in CI.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import sys
import tempfile
import traceback
from pathlib import Path

from . import __version__

CRASH_DIR_ENV = "SEGBENCH_CRASH_DIR"
INTERNAL_ERROR = 3


@contextlib.contextmanager
def step(description: str):
    """Name what segbench was doing when an unexpected exception passed through: the
    innermost step wins, so the user reads "while drawing the report", not "while running"."""
    try:
        yield
    except (Exception, SystemExit) as exc:
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


def report_internal_error(exc: BaseException, argv, debug: bool) -> int:
    where = getattr(exc, "segbench_step", None)
    log = write_crash_log(exc, argv)
    message = str(exc).splitlines()[0] if str(exc) else ""
    print(f"segbench: internal error{f' while {where}' if where else ''}: {type(exc).__name__}"
          f"{f': {message}' if message else ''} (crash log: {log}; --debug prints it; please report it)", file=sys.stderr)
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    return INTERNAL_ERROR
