"""Aggregation, statistics, tables, plots and the HTML report."""

from __future__ import annotations

from pathlib import Path

from ..store import write_text_atomic
from . import html, plots
from .frames import ordered_variants, runs_frame, summary_frame
from .terminal import summary_text

__all__ = ["write_report", "runs_frame", "summary_frame", "summary_text"]


def write_report(records: list, meta: dict, out_dir: Path) -> dict:
    """Write runs.csv, summary.csv, plots/*.png and index.html into ``out_dir``."""
    out_dir = Path(out_dir)
    runs = runs_frame(records)
    summary = summary_frame(runs, meta) if len(runs) else runs
    write_text_atomic(out_dir / "runs.csv", runs.to_csv(index=False))
    write_text_atomic(out_dir / "summary.csv", summary.to_csv(index=False))
    figures = _plots(records, runs, meta, out_dir / "plots") if len(runs) else {}
    write_text_atomic(out_dir / "index.html", html.render(summary, records, meta, figures))
    return {
        "dir": out_dir,
        "html": out_dir / "index.html",
        "summary": summary,
        "runs": runs,
        "text": summary_text(summary, meta) if len(summary) else "(no runs)",
    }


def _plots(records, runs, meta, plot_dir):
    order = ordered_variants(runs, meta)
    if runs["status"].eq("ok").sum() == 0:
        return {}
    return {
        "Metrics per variant": plots.metrics_per_variant(runs, meta["metrics"], order, plot_dir / "metrics.png"),
        f"Validation {meta['primary']} per epoch": plots.curves(records, meta["primary"], order, plot_dir / "curves.png"),
    }

