"""Files and folders the user names on the command line (``-o``, ``--markdown``,
``--junit``): checked before any work, so that a path that cannot be written is bad input
(exit 2) named with its flag, not a traceback after minutes of computing."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SegbenchError


def output_file(path, flag: str, suffixes=()) -> Path:
    """``path`` as a file segbench may create or replace; its folder is created."""
    path = Path(path)
    if path.is_dir():
        raise SegbenchError(f"{flag} {path}: is a folder; give a file path such as {path / ('out' + (suffixes[0] if suffixes else ''))}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise SegbenchError(f"{flag} {path}: unsupported file type {path.suffix or '(none)'!r}; valid: {', '.join(suffixes)}")
    _make_folder(path.parent, flag, path)
    if path.exists() and not os.access(path, os.W_OK):
        raise SegbenchError(f"{flag} {path}: the file exists and is not writable")
    return path


def output_folder(path, flag: str) -> Path:
    """``path`` as a folder segbench may write into; created when missing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SegbenchError(f"{flag} {path}: is a file, not a folder")
    _make_folder(path, flag, path)
    return path


def _make_folder(folder: Path, flag: str, named: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SegbenchError(f"{flag} {named}: cannot create the folder {folder} ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SegbenchError(f"{flag} {named}: the folder {folder} is not writable")


def image_suffixes() -> tuple:
    """The file types matplotlib can save (png, pdf, svg, ...), as ``.ext``."""
    from matplotlib.figure import Figure

    return tuple(f".{ext}" for ext in sorted(Figure().canvas.get_supported_filetypes()))
