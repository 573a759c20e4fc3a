"""Plots (matplotlib, no display needed).

Labels, class names and factor values come from suites and datasets, and are drawn as
written: every plot is made with mathtext and TeX off (``segbench.text.literal_text``), so a label such
as ``$\\alpha$`` shows its dollar signs and backslash instead of failing to parse.

No image is wider or taller than MAX_SIDE_PX, whatever the number of variants or classes:
past selection.MANY_VARIANTS variants the plots that name variants show the top and the
bottom by the primary metric and say so in their titles (each returns a ``Plot`` whose
caption the page shows under the image), and ``_save`` lowers the resolution of any layout
that would still be larger. Many points are one artist (a collection), not one each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..costs import direction_word  # noqa: E402
from ..palette import class_colours  # noqa: E402
from ..statistics import mean_ci  # noqa: E402
from ..text import literal_text, plot_label  # noqa: E402
from .selection import LINES_EACH, Selection  # noqa: E402

DPI = 110
MAX_SIDE_PX = 4000  # no image is wider or taller, whatever the number of variants or classes
MAX_INCHES = 30.0  # layouts stay within this; _save lowers the resolution if one does not
HEATMAP_INCHES = 16.0  # a heatmap's side: past it cells only shrink (each pixel of a figure costs memory to draw)
TOP_COLOUR, BOTTOM_COLOUR, REST_COLOUR = "#2f7d32", "#c62828", "#bdbdbd"


@dataclass(frozen=True)
class Plot:
    """A drawn figure and what it leaves out, in words (None when it shows everything)."""

    path: Path
    caption: str | None = None


@literal_text
def metrics_per_variant(runs: pd.DataFrame, summary: pd.DataFrame, metrics: list, selection: Selection, path: Path) -> Plot:
    """One panel per metric, two panels a row: each seed as a dot, the mean with its 95%
    CI as a bar, for the variants ``selection`` names. When it leaves some out, a first
    panel shows every variant's mean primary metric, sorted, the named ones coloured."""
    ok = runs[runs["status"] == "ok"]
    shown = list(selection.shown)
    columns = min(2, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    width = max(4.0, min(0.9 * len(shown) + 1.5, 12.0))  # a panel: at most 12 in (20 bars, or 30 in a small suite)
    overview = selection.partial
    figure = plt.figure(figsize=(width * columns, 4.4 * (rows + overview)))
    grid = figure.add_gridspec(rows + overview, columns)
    if overview:
        _ranked_dots(figure.add_subplot(grid[0, :]), summary, selection)
    by_variant = {variant_id: frame for variant_id, frame in ok.groupby("variant_id", sort=False)}
    labels = [_wrap(selection.label(v), 18) for v in shown]
    for index, metric in enumerate(metrics):
        axis = figure.add_subplot(grid[overview + index // columns, index % columns])
        _metric_panel(axis, by_variant, metric, shown)
        _zoom(axis, ok, metric)
        axis.set_xticks(range(len(shown)), labels, rotation=30, ha="right", fontsize=8)
        if selection.bottom:
            axis.axvline(len(selection.top) - 0.5, color="grey", linestyle="--", linewidth=1)
    caption = selection.caption()
    if caption:
        figure.suptitle(_wrap(caption, 160), fontsize=9)
    figure.tight_layout()
    return Plot(_save(figure, path), caption)


def _ranked_dots(axis, summary, selection):
    """Every ranked variant's mean primary metric with its 95% CI, best first: one
    collection per colour, however many variants."""
    primary = selection.ranking.primary
    table = summary.set_index("variant_id")
    ranked = list(selection.ranking.ranked)
    means = table.loc[ranked, f"{primary}_mean"].to_numpy(float)
    spread = table.loc[ranked, f"{primary}_ci95"].to_numpy(float) if f"{primary}_ci95" in table else np.full(len(ranked), np.nan)
    position = np.arange(1, len(ranked) + 1)
    colour = np.array([REST_COLOUR] * len(ranked), dtype=object)
    top, bottom = set(selection.top), set(selection.bottom)
    colour[[v in top for v in ranked]] = TOP_COLOUR
    colour[[v in bottom for v in ranked]] = BOTTOM_COLOUR
    for shade, name in ((REST_COLOUR, "other variants"), (TOP_COLOUR, "top (named below)"), (BOTTOM_COLOUR, "bottom (named below)")):
        mask = colour == shade
        if mask.any():
            axis.errorbar(position[mask], means[mask], yerr=np.nan_to_num(spread[mask]), fmt="o", markersize=3, color=shade,
                          elinewidth=0.8, label=f"{name}: {int(mask.sum())}")
    axis.set_xlabel(f"rank by mean {primary}")
    axis.set_ylabel(f"mean {primary}")
    axis.set_title(f"mean {primary} of all {len(ranked)} ranked variants (95% CI), sorted")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="best")


def _metric_panel(axis, by_variant, metric, shown):
    """Bars, error bars and seed dots as one artist each, not one per variant."""
    positions, means, half_widths, dots_x, dots_y = [], [], [], [], []
    for position, variant_id in enumerate(shown):
        frame = by_variant.get(variant_id)
        if frame is None or metric not in frame:
            continue
        values = frame[metric].astype(float).dropna()
        if values.empty:
            continue
        mean, half_width = mean_ci(values)
        positions.append(position)
        means.append(mean)
        half_widths.append(half_width)
        dots_x.extend(position + (np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)))
        dots_y.extend(values)
    if positions:
        axis.bar(positions, means, color="#9ecae1", edgecolor="#3182bd", width=0.6)
        axis.errorbar(positions, means, yerr=np.nan_to_num(half_widths), fmt="none", color="#08519c", capsize=5, linewidth=1.5)
        axis.scatter(dots_x, dots_y, color="black", s=14, zorder=3)
    axis.set_xlim(-0.6, max(len(shown) - 0.4, 0.6))
    axis.set_title(f"{metric} (mean, 95% CI, seeds)")
    axis.grid(axis="y", alpha=0.3)


def _zoom(axis, ok, metric):
    """Bars start at 0 only when that does not flatten the differences away."""
    if metric not in ok or ok[metric].dropna().empty:
        return
    low, high = float(ok[metric].min()), float(ok[metric].max())
    spread = max(high - low, 1e-3)
    if low - 3 * spread > 0:
        axis.set_ylim(low - 1.5 * spread, high + 1.0 * spread)


@literal_text
def curves(records: list, metric: str, selection: Selection, path: Path) -> Plot:
    """Validation ``metric`` per epoch: mean over seeds with a min-max band, for the
    variants ``selection`` names (at most the top and bottom LINES_EACH); the others as
    thin grey lines, one collection, with one legend entry that counts them."""
    named = selection.ranking.pick(LINES_EACH) if selection.partial else selection
    mine = _finished_with(records, metric)
    figure, axis = plt.subplots(figsize=(7, 4.2))
    entries = 0
    for variant_id in named.shown:
        if variant_id in mine:
            epochs, stacked = _stacked(mine[variant_id], metric)
            axis.plot(epochs, np.nanmean(stacked, axis=0), marker="o", markersize=3, label=plot_label(named.label(variant_id)))
            axis.fill_between(epochs, np.nanmin(stacked, 0), np.nanmax(stacked, 0), alpha=0.2)
            entries += 1
    others = [_stacked(mine[v], metric) for v in selection.ranking.order if v in mine and v not in set(named.shown)]
    if others:
        segments = [np.column_stack([epochs, np.nanmean(stacked, axis=0)]) for epochs, stacked in others]
        axis.add_collection(LineCollection(segments, colors=REST_COLOUR, linewidths=0.6, alpha=0.6, zorder=1,
                                           label=f"the {len(others)} other variants (grey)"))
        axis.autoscale_view()
        entries += 1
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(f"validation {metric}")
    axis.grid(alpha=0.3)
    caption = named.caption()
    if caption:
        axis.set_title(_wrap(caption, 90), fontsize=8)
    _legend(figure, axis, entries)
    return Plot(_save(figure, path), caption)


def _finished_with(records, metric) -> dict:
    """variant id -> its finished records that have a curve of ``metric`` (one pass)."""
    found = {}
    for record in records:
        if record["status"] == "ok" and metric in record.get("curves", {}):
            found.setdefault(record["variant_id"], []).append(record)
    return found


def _stacked(mine, metric):
    """The validated epochs and the seeds' values there (seeds x epochs, NaN where missing)."""
    length = min(len(r["curves"][metric]) for r in mine)
    stacked = np.array([r["curves"][metric][:length] for r in mine], dtype=float)  # None (not validated) -> NaN
    epochs = np.array(mine[0]["curves"].get("epoch", range(1, length + 1))[:length])
    validated = ~np.isnan(stacked).all(axis=0)
    return epochs[validated], stacked[:, validated]


def _legend(figure, axis, entries):
    """Every entry, always: inside the axes up to 8, else beside them in as many columns as
    it takes (the figure widens, within MAX_INCHES)."""
    if entries <= 8:
        axis.legend(fontsize=8)
        figure.tight_layout()
        return
    columns = math.ceil(entries / 16)
    figure.set_size_inches(min(7 + 2.4 * columns, MAX_INCHES), 4.2)
    axis.legend(fontsize=7, ncol=columns, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    figure.tight_layout()


@literal_text
def factor_heatmap(summary: pd.DataFrame, runs: pd.DataFrame, factors: list, metric: str, path: Path) -> Plot:
    """Two-factor grid: factor A (rows) x factor B (columns), cells the mean ``metric``
    (every cell, however many; values written in them up to 400 cells)."""
    first = runs.drop_duplicates("variant_id").set_index("variant_id")[factors]
    table = summary.set_index("variant_id")[[f"{metric}_mean"]].join(first)
    grid = table.pivot_table(index=factors[0], columns=factors[1], values=f"{metric}_mean", aggfunc="mean", sort=False)
    rows, columns = len(grid.index), len(grid.columns)
    figure, axis = plt.subplots(figsize=(min(1.6 * columns + 3, HEATMAP_INCHES), min(0.7 * rows + 2, HEATMAP_INCHES)))
    image = _heatmap(axis, grid.to_numpy(dtype=float), "viridis")
    if rows * columns <= 400:
        _annotate(axis, grid.to_numpy(dtype=float), "{:.3f}")
    axis.set_xticks(range(columns), [_wrap(str(c), 18) for c in grid.columns], fontsize=_tick_size(columns, 20))
    axis.set_yticks(range(rows), [_wrap(str(i), 24) for i in grid.index], fontsize=_tick_size(rows, 40))
    axis.set_xlabel(plot_label(factors[1].removeprefix("factor.")))
    axis.set_ylabel(plot_label(factors[0].removeprefix("factor.")))
    figure.colorbar(image, ax=axis, label=f"mean {metric}")
    figure.tight_layout()
    return Plot(_save(figure, path))


@literal_text
def per_class_heatmap(table: pd.DataFrame, metric: str, selection: Selection, path: Path) -> Plot:
    """Variants x classes, the per-class ``metric`` (mean over seeds), for the variants
    ``selection`` names (``table`` is indexed by label), best first when it leaves some out."""
    if selection.partial:
        wanted = [selection.label(v) for v in selection.shown]
        table = table.loc[[label for label in wanted if label in table.index]]
    values = table.to_numpy(dtype=float)
    classes, variants = len(table.columns), len(table.index)
    figure, axis = plt.subplots(figsize=(min(0.75 * classes + 3.5, HEATMAP_INCHES), min(0.45 * variants + 2, HEATMAP_INCHES)))
    image = _heatmap(axis, values, "magma", 0, 1)
    if values.size <= 400:
        _annotate(axis, values, "{:.2f}")
    axis.set_xticks(range(classes), [plot_label(c) for c in table.columns], rotation=45, ha="right", fontsize=_tick_size(classes, 40))
    axis.set_yticks(range(variants), [_wrap(str(i), 32) for i in table.index], fontsize=_tick_size(variants, 60))
    if selection.partial and selection.bottom:
        axis.axhline(len([v for v in selection.top if selection.label(v) in table.index]) - 0.5, color="white", linewidth=2)
    caption = selection.caption()
    if caption:
        axis.set_title(_wrap(caption, 90), fontsize=8)
    figure.colorbar(image, ax=axis, label=f"{metric} per class")
    figure.tight_layout()
    return Plot(_save(figure, path), caption)


def _heatmap(axis, values, cmap, vmin=None, vmax=None):
    """Cells as one mesh, row 0 at the top: unlike an image, it is not resampled to the
    figure's pixels, which at thousands of pixels a side took hundreds of MB."""
    rows, columns = values.shape
    mesh = axis.pcolormesh(np.arange(columns + 1) - 0.5, np.arange(rows + 1) - 0.5, np.ma.masked_invalid(values), cmap=cmap,
                           vmin=vmin, vmax=vmax)
    axis.set_xlim(-0.5, columns - 0.5)
    axis.set_ylim(rows - 0.5, -0.5)
    return mesh


def _tick_size(count, comfortable):
    """Tick labels shrink when there are more than ``comfortable`` of them (down to 4 pt)."""
    return 8 if count <= comfortable else max(4, 8 * comfortable / count)


@literal_text
def cost_scatter(summary: pd.DataFrame, metric: str, path: Path, higher_is_better: bool = True, selection: Selection | None = None
                 ) -> Plot:
    """Quality against latency and against parameters, the Pareto front (no other variant
    is both better and cheaper, in the metric's direction) joined by a line and ringed.
    Every variant is a dot; names go to the Pareto front first, then the variants
    ``selection`` names (all in a small suite), and a name that would overlap one already
    placed is left out, which the caption says."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    named = set(selection.shown) if selection is not None else set(summary["variant_id"])
    placed = []
    for axis, (cost, title) in zip(axes, (("cost.latency_ms", "latency (ms / image)"), ("cost.params", "parameters"))):
        points = summary[["variant_id", "variant", f"{cost}_mean", f"{metric}_mean"]].dropna()
        x, y = points[f"{cost}_mean"].to_numpy(float), points[f"{metric}_mean"].to_numpy(float)
        front = front_of(summary, metric, cost, higher_is_better).to_numpy()
        highlighted = points["variant_id"].isin(named).to_numpy() if selection is not None and selection.partial else np.ones(len(x), bool)
        axis.scatter(x[~highlighted], y[~highlighted], color=REST_COLOUR, s=10, zorder=2, label="other variants" if (~highlighted).any() else None)
        axis.scatter(x[highlighted], y[highlighted], color="#3182bd", zorder=3)
        axis.scatter(x[front], y[front], s=160, facecolors="none", edgecolors="#e6550d", linewidths=1.6, zorder=4, label="Pareto front")
        order = sorted(np.flatnonzero(front), key=lambda i: x[i])
        axis.plot(x[order], y[order], color="#e6550d", linewidth=1, zorder=2)
        candidates = [i for i in range(len(x)) if front[i]] + [i for i in range(len(x)) if highlighted[i] and not front[i]]
        texts = [axis.annotate(_wrap(str(points["variant"].iloc[i]), 28), (x[i], y[i]), textcoords="offset points", xytext=(5, 4),
                               fontsize=7) for i in candidates]
        placed.append((texts, len(x)))
        axis.set_xlabel(title)
        axis.set_ylabel(f"mean {metric} ({direction_word(higher_is_better)})")
        axis.margins(x=0.3, y=0.12)  # room for the labels
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    kept = [(_without_overlaps(figure, texts), total) for texts, total in placed]
    caption = _cost_caption(kept, selection)
    if caption:  # the title moves the axes: place the names again under it (the title's wording keeps its lines)
        title = figure.suptitle(_wrap(caption, 160), fontsize=8)
        figure.tight_layout()
        kept = [(_without_overlaps(figure, texts), total) for texts, total in placed]
        caption = _cost_caption(kept, selection)
        title.set_text(_wrap(caption, 160))
    return Plot(_save(figure, path), caption)


def _without_overlaps(figure, texts) -> int:
    """Hide each label that overlaps one placed before it (the list is in priority order);
    returns how many stay."""
    renderer = figure.canvas.get_renderer()
    boxes = []
    for text in texts:
        text.set_visible(True)
        box = text.get_window_extent(renderer)
        if any(box.overlaps(other) for other in boxes):
            text.set_visible(False)
        else:
            boxes.append(box)
    return len(boxes)


def _cost_caption(kept, selection) -> str | None:
    """What the names on the cost plot leave out; None when every dot is named."""
    if all(shown == total for shown, total in kept):
        return None
    counts = " and ".join(f"{shown} of {total} variants ({panel})" for (shown, total), panel in zip(kept, ("latency", "parameters")))
    which = "the Pareto front first, then the top and bottom by mean " + selection.ranking.primary if selection and selection.partial \
        else "the Pareto front first"
    return f"names on {counts}: {which}; a name that would overlap another is left out; every variant is in the tables"



def front_of(summary: pd.DataFrame, metric: str, cost: str, higher_is_better: bool = True) -> pd.Series:
    """Whether each variant with both means is on the Pareto front of ``metric`` (in its
    direction) against ``cost`` (lower is cheaper), indexed by variant label."""
    points = summary[["variant", f"{cost}_mean", f"{metric}_mean"]].dropna()
    quality = points[f"{metric}_mean"].to_numpy(float)
    front = pareto_front(points[f"{cost}_mean"].to_numpy(float), quality if higher_is_better else -quality)
    return pd.Series(front, index=points["variant"].to_numpy())


def pareto_front(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Mask of the points no other point beats on both (cost lower-or-equal and quality
    higher-or-equal, one of them strictly). For a lower-is-better metric pass -quality."""
    front = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        dominated = (cost <= cost[i]) & (quality >= quality[i]) & ((cost < cost[i]) | (quality > quality[i]))
        front[i] = not dominated.any()
    return front


@literal_text
def qualitative_grid(images, masks, predictions: dict, classes: list, ignore_index: int, path: Path, caption: str | None = None
                     ) -> Plot:
    """Rows: validation images. Columns: the image, its true mask, then each variant's
    prediction (its first seed), all in one class palette, whose legend names every class
    (in as many rows of 8 as it takes). ``caption``: which variants, when not all."""
    colours = class_colours(len(classes))
    columns = 2 + len(predictions)
    legend_rows = math.ceil((len(classes) + 1) / 8)
    extra = 0.25 * (legend_rows - 1)  # inches for each legend row past the first
    height = 1.9 * len(images) + 0.6 + extra
    figure, axes = plt.subplots(len(images), columns, figsize=(1.9 * columns, height), squeeze=False)
    for row, (image, mask) in enumerate(zip(images, masks)):
        panels = [("image", image.transpose(1, 2, 0)), ("truth", _paint(mask, colours, ignore_index))]
        panels += [(label, _paint(prediction[row], colours, ignore_index)) for label, prediction in predictions.items()]
        for column, (title, picture) in enumerate(panels):
            axis = axes[row][column]
            axis.imshow(picture, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(_wrap(title, 20), fontsize=7)
    legend = [Patch(facecolor=colours[i], edgecolor="grey", label=plot_label(name)) for i, name in enumerate(classes)]
    legend.append(Patch(facecolor="white", edgecolor="grey", label="ignored"))
    figure.legend(handles=legend, loc="lower center", ncol=min(len(legend), 8), fontsize=7, frameon=False)
    if caption:
        figure.suptitle(_wrap(caption, max(40, 12 * columns)), fontsize=7)
    figure.tight_layout(rect=(0, (0.06 * (height - extra) + extra) / height, 1, 1))
    return Plot(_save(figure, path), caption)


def _paint(labels, colours, ignore_index):
    picture = colours[np.clip(labels, 0, len(colours) - 1)]
    picture[labels == ignore_index] = 1.0
    return picture


def _annotate(axis, values, fmt):
    finite = values[np.isfinite(values)]
    middle = (finite.max() + finite.min()) / 2 if finite.size else 0
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            axis.text(j, i, fmt.format(value), ha="center", va="center", fontsize=7, color="white" if value < middle else "black")


def _wrap(label, width=24):
    """Wrap at spaces; a single long word stays whole (cut words are hard to read)."""
    return textwrap.fill(plot_label(label), width=width, break_on_hyphens=False, break_long_words=False)


def _save(figure, path: Path) -> Path:
    """Write the PNG at DPI, or lower so that neither side exceeds MAX_SIDE_PX, and free the figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dpi = min(DPI, (MAX_SIDE_PX - 1) / max(figure.get_size_inches()))
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
