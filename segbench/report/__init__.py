"""Aggregation, statistics, tables, plots and the HTML report, all from the records.

``write_report`` computes the tables once and hands them to the reporters (see
segbench.extensions): the standard ones write into ``results/<suite>/report/`` runs.csv (a
row per run), summary.csv (a row per variant), per_class.csv, summary.md (GitHub Markdown),
plots/*.png and index.html (self-contained); their functions are here, registered by the
standard plugin ``segbench_plugins.reporters``. Text from suites and datasets is made safe in each:
CSV cells cannot start a formula (``segbench.text``), HTML and Markdown are escaped,
plots draw it literally. ``segbench report DIR`` calls it again on the stored
records, so a report can be rebuilt at any time without training.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..extensions import ReportContext, ReportSection, chosen_reporters, run_reporters
from ..layout import REPORT_INDEX, RUNS_TABLE
from ..store import decode_arrays, write_text_atomic
from ..text import csv_text
from . import html, plots
from .devices import cost_by_device
from .frames import factor_columns, metric_directions, ordered_variants, per_class_frame, runs_frame, summary_frame
from .markdown import summary_markdown
from .provenance import header_lines
from .selection import SHOWN_EACH, rank_variants
from .table import summary_rows
from .terminal import summary_text

__all__ = ["write_report", "report_context", "runs_frame", "summary_frame", "summary_text", "summary_rows"]

GRID_VARIANTS = 8  # the qualitative grid shows at most this many variants


def write_report(records: list, meta: dict, out_dir: Path, load_samples=None, *, reporters=None, exporters=(), options=None,
                 suite_dir=None) -> dict:
    """Run every default reporter, then the ``exporters`` named, on the records. ``reporters``
    maps names to the registered reporters (default: those of the installed plugins);
    ``options`` maps a reporter's name to its options; ``load_samples(key)`` returns the
    stored validation inputs of a dataset (for the qualitative grid), or None. A reporter
    that fails is listed under "failures" (segbench.extensions.ReporterFailure); the
    others' outputs are still written."""
    if reporters is None:
        from ..plugins import load_catalogue  # the installed plugins, standard ones included

        reporters = load_catalogue().reporters
    context = report_context(records, meta, out_dir, load_samples, suite_dir)
    chosen = chosen_reporters(reporters, exporters)
    before = file_stamps(context.report_dir)
    failures = run_reporters(chosen, context, options)
    summary = context.summary
    rows = summary_rows(summary)
    return {
        "dir": context.report_dir,
        "html": context.report_dir / REPORT_INDEX,
        "summary": summary,
        "runs": context.runs,
        "text": summary_text(rows, context.records, meta) if rows else "(no runs)",
        "wide_text": summary_text(rows, context.records, meta, wide=True) if rows else "(no runs)",
        "failures": failures,
        "reporters": [reporter.name for reporter in chosen],
        "written": written_since(before, context.report_dir),  # what the reporters wrote: no report may have index.html
    }


def file_stamps(folder: Path) -> dict:
    """Path -> (size, modification time) of every file under ``folder``."""
    stamps = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root, name)
            with contextlib.suppress(OSError):  # gone meanwhile
                status = path.stat()
                stamps[path] = (status.st_size, status.st_mtime_ns)
    return stamps


def written_since(before: dict, folder: Path) -> list:
    """The files under ``folder`` that are new or changed since ``before`` (file_stamps)."""
    return sorted(path for path, stamp in file_stamps(folder).items() if before.get(path) != stamp)


def report_context(records: list, meta: dict, out_dir: Path, load_samples=None, suite_dir=None) -> ReportContext:
    """What every reporter is given: the records in the suite's order and the tables computed
    once; ``out_dir`` is made, for every reporter to write into."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = _in_suite_order(_current_labels(records, meta), meta)
    runs = runs_frame(records)
    summary = summary_frame(runs, meta, records) if len(runs) else runs
    class_metric = _per_class_metric(records, meta)
    per_class = per_class_frame(records, ordered_variants(runs, meta), class_metric) if class_metric else None
    if per_class is not None and per_class.empty:  # no class has a value in any run
        per_class = None
    return ReportContext(records, meta, runs, summary, out_dir, Path(suite_dir) if suite_dir else out_dir.parent, load_samples,
                         per_class=per_class, class_metric=class_metric)


# --- the standard reporters (registered by segbench_plugins.reporters) -----------------------


def write_tables(context: ReportContext):
    out_dir = context.report_dir
    write_text_atomic(out_dir / RUNS_TABLE, csv_text(context.runs, index=False))
    write_text_atomic(out_dir / "summary.csv", csv_text(context.summary, index=False))
    if context.per_class is not None and len(context.per_class):
        write_text_atomic(out_dir / "per_class.csv", csv_text(context.per_class, index_label="variant"))
    by_device = cost_by_device(context.records, ordered_variants(context.runs, context.meta))
    if not by_device.empty:
        write_text_atomic(out_dir / "cost_by_device.csv", csv_text(by_device, index=False))


def write_markdown(context: ReportContext):
    if len(context.summary):
        text = summary_markdown(summary_rows(context.summary), context.records, context.meta, header_lines(context.records, context.meta))
        write_text_atomic(context.report_dir / "summary.md", text)


def draw_plots(context: ReportContext) -> list:
    """The plots as PNG files, each returned as a section of the page."""
    order = ordered_variants(context.runs, context.meta)
    figures = _plots(context.records, context.runs, context.summary, context.meta, order, context.per_class, context.class_metric,
                     context.report_dir / "plots", context.load_samples)
    return [ReportSection(title, html.figure(title, plot.path, plot.caption)) for title, plot in figures.items()]


def write_page(context: ReportContext):
    page = html.render(summary_rows(context.summary), context.records, context.meta, context.sections, context.per_class,
                       context.class_metric)
    write_text_atomic(context.report_dir / REPORT_INDEX, page)


def _current_labels(records, meta):
    """Records with their variant's label as the suite now says (a label is not part of a
    variant's id, so a record keeps the label it was trained under until the suite's is used)."""
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    return [{**r, "label": labels[r["variant_id"]]} if isinstance(labels.get(r["variant_id"]), str) else r for r in records]


def _in_suite_order(records, meta):
    """Variants in the suite's order, seeds ascending: the same tables however the
    records were gathered (a run, or ``segbench report`` reading the folder)."""
    rank = {variant_id: index for index, variant_id in enumerate(meta.get("variant_order", []))}
    return sorted(records, key=lambda r: (rank.get(r["variant_id"], len(rank)), r["variant_id"], r["seed"]))


def _per_class_metric(records, meta):
    """The primary metric if it has per-class values, else the first metric that has."""
    available = {name for r in records if r["status"] == "ok" for name in (r.get("per_class") or {})}
    for name in [meta["primary"], *meta["metrics"]]:
        if name in available:
            return name
    return None


def _plots(records, runs, summary, meta, order, per_class, class_metric, plot_dir, load_samples):
    """Title -> plots.Plot. Past selection.MANY_VARIANTS variants, the plots that name
    variants name the top and bottom by the primary metric and say so (segbench.report.selection)."""
    if not len(runs) or runs["status"].eq("ok").sum() == 0:
        return {}
    primary = meta["primary"]
    higher = metric_directions(records, meta).get(primary, True)
    ranking = rank_variants(summary, order, primary, higher)
    selection = ranking.pick(SHOWN_EACH)
    figures = {
        "Metrics per variant": plots.metrics_per_variant(runs, summary, meta["metrics"], selection, plot_dir / "metrics.png"),
        f"Validation {primary} per epoch": plots.curves(records, primary, selection, plot_dir / "curves.png"),
    }
    factors = factor_columns(runs)
    if len(factors) == 2:
        title = f"{primary}: {factors[0].removeprefix('factor.')} × {factors[1].removeprefix('factor.')}"
        figures[title] = plots.factor_heatmap(summary, runs, factors, primary, plot_dir / "factors.png")
    if per_class is not None and len(per_class):
        figures[f"{class_metric} per class"] = plots.per_class_heatmap(per_class, class_metric, selection, plot_dir / "per_class.png")
    if {"cost.latency_ms_mean", f"{primary}_mean"} <= set(summary.columns):
        figures[f"{primary} against cost"] = plots.cost_scatter(summary, primary, plot_dir / "cost.png", higher, selection)
    grid = _qualitative(records, ranking.pick(GRID_VARIANTS // 2, GRID_VARIANTS), load_samples, plot_dir / "predictions.png")
    if grid:
        figures["Predictions on the first validation images (first seed of each variant)"] = grid
    return figures


def _qualitative(records, selection, load_samples, path):
    """Image | truth | each chosen variant's prediction, for variants sharing one dataset."""
    firsts = {}
    chosen = set(selection.shown)
    for record in records:  # each chosen variant's finished run with predictions of the lowest seed
        variant_id = record["variant_id"]
        if variant_id in chosen and record["status"] == "ok" and record.get("samples") and \
                (variant_id not in firsts or record["seed"] < firsts[variant_id]["seed"]):
            firsts[variant_id] = record
    firsts = [firsts[v] for v in selection.shown if v in firsts]
    if not firsts or load_samples is None:
        return None
    key = firsts[0]["samples"].get("inputs_key")
    stored = load_samples(key) if key else None
    if stored is None:
        return None
    inputs = decode_arrays(stored["inputs"])
    predictions = {r["label"]: decode_arrays(r["samples"]["predictions"])["predictions"] for r in firsts if r["samples"].get("inputs_key") == key}
    classes = firsts[0].get("classes") or []
    ignore_index = firsts[0].get("ignore_index", 255)
    return plots.qualitative_grid(inputs["images"], inputs["masks"], predictions, classes, ignore_index, path, selection.caption())
