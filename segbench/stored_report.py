"""The report on disk, drawn again only when it is out of date.

``results/<suite>/report/`` holds the report and, beside it, the terminal summaries
(``summary.txt``, ``summary-wide.txt``) and a stamp of what it was drawn from. A run of a
finished suite shows the stored summary instead of drawing the report again; ``segbench
report`` always draws it. Light to import: matplotlib and pandas load only to draw.
"""

from __future__ import annotations

import hashlib
import json

from . import __version__
from .layout import REPORT_INDEX, REPORT_STAMP, REPORT_TEXT, REPORT_TEXT_WIDE
from .store import write_text_atomic


def current_report(records, meta, store, reporters=None, exporters=(), redraw=False) -> dict:
    """The report of ``records``, written again only when a record or the suite changed
    since it was last written (re-running a finished suite then costs next to nothing), or
    ``redraw`` (``segbench report``). ``reporters`` (default: the installed ones) and the
    suite's ``exporters`` write it, and the terminal summaries are kept beside it; a failed
    reporter leaves no stamp, so that the next run draws the report again."""
    fingerprint = _report_fingerprint(records, meta)
    stamp = store.report_dir / REPORT_STAMP
    text_paths = {"text": store.report_dir / REPORT_TEXT, "wide_text": store.report_dir / REPORT_TEXT_WIDE}
    drawn = all(p.is_file() for p in (stamp, *text_paths.values(), store.report_dir / REPORT_INDEX))
    if drawn and not redraw and stamp.read_text(errors="replace") == fingerprint:  # a damaged stamp only redraws
        return {"dir": store.report_dir, "html": store.report_dir / REPORT_INDEX, "reused": True,
                **{key: path.read_text(errors="replace") for key, path in text_paths.items()}}
    from .report import write_report  # heavy: matplotlib, pandas; only when a report is drawn

    report = write_report(records, meta, store.report_dir, store.load_samples, reporters=reporters, exporters=exporters,
                          suite_dir=store.suite_dir)
    for key, path in text_paths.items():
        write_text_atomic(path, report[key])
    if not report["failures"]:
        write_text_atomic(stamp, fingerprint)
    return report


def where_written(report) -> str:
    """Where the report is, in one line: its page, or, when no reporter wrote one (none
    installed, or none that writes index.html), the files the reporters wrote."""
    if report.get("reused") or report["html"] in report.get("written", ()):
        return f"report: {report['html']}"
    folder, names = report["dir"], report.get("reporters") or []
    if not names:
        return (f"report: no reporter that runs on every report is installed (`segbench list reporters`), so no report file "
                f"was written in {folder}")
    written = report.get("written") or []
    if not written:
        return f"report: the reporters ({', '.join(names)}) wrote no file in {folder}"
    files = ", ".join(str(path.relative_to(folder)) for path in written)
    return f"report: no reporter writes {REPORT_INDEX}; {len(written)} file(s) written in {folder}: {files}"


def _report_fingerprint(records, meta) -> str:
    """A hash of the records, the suite and segbench's version, one record at a time (the
    whole as one text would be as large as every record together)."""
    digest = hashlib.sha256(json.dumps({"meta": meta, "segbench": __version__}, sort_keys=True, default=str).encode())
    for record in records:
        digest.update(json.dumps(record, sort_keys=True, default=str).encode())
    return digest.hexdigest()
