"""Plots (matplotlib, no display needed).

Labels, class names and factor values come from suites and datasets, and are drawn as
written: every plot is made with mathtext and TeX off (``segbench.text.literal_text``), so a label such
as ``$\\alpha$`` shows its dollar signs and backslash instead of failing to parse.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..costs import direction_word  # noqa: E402
from ..statistics import mean_ci  # noqa: E402
from ..text import literal_text, plot_label  # noqa: E402


@literal_text
def metrics_per_variant(runs: pd.DataFrame, metrics: list, order: list, path: Path) -> Path:
    """One panel per metric, two panels a row: each seed as a dot, the mean with its 95%
    CI as a bar."""
    ok = runs[runs["status"] == "ok"]
    labels = [runs.loc[runs["variant_id"] == v, "label"].iloc[0] for v in order]
    columns = min(2, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    width = max(4.0, 0.9 * len(order) + 1.5)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, 4.4 * rows), squeeze=False)
    for axis, metric in zip(axes.flat, metrics):
        _metric_panel(axis, ok, metric, order)
        axis.set_xticks(range(len(order)), [_wrap(label, 18) for label in labels], rotation=30, ha="right", fontsize=8)
    for axis in list(axes.flat)[len(metrics):]:
        axis.set_visible(False)
    figure.tight_layout()
    return _save(figure, path)


def _metric_panel(axis, ok, metric, order):
    for position, variant_id in enumerate(order):
        values = ok.loc[ok["variant_id"] == variant_id, metric].astype(float).dropna() if metric in ok else pd.Series([], dtype=float)
        if values.empty:
            continue
        mean, half_width = mean_ci(values)
        axis.bar(position, mean, color="#9ecae1", edgecolor="#3182bd", width=0.6)
        if not np.isnan(half_width):
            axis.errorbar(position, mean, yerr=half_width, color="#08519c", capsize=5, linewidth=1.5)
        jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else [0.0]
        axis.scatter(position + np.asarray(jitter), values, color="black", s=14, zorder=3)
    axis.set_title(f"{metric} (mean, 95% CI, seeds)")
    axis.grid(axis="y", alpha=0.3)
    _zoom(axis, ok, metric)


def _zoom(axis, ok, metric):
    """Bars start at 0 only when that does not flatten the differences away."""
    if metric not in ok or ok[metric].dropna().empty:
        return
    low, high = float(ok[metric].min()), float(ok[metric].max())
    spread = max(high - low, 1e-3)
    if low - 3 * spread > 0:
        axis.set_ylim(low - 1.5 * spread, high + 1.0 * spread)


@literal_text
def curves(records: list, metric: str, order: list, path: Path) -> Path:
    """Validation ``metric`` per epoch: mean over seeds with a min-max band."""
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for variant_id in order:
        mine = [r for r in records if r["variant_id"] == variant_id and r["status"] == "ok" and metric in r.get("curves", {})]
        if not mine:
            continue
        length = min(len(r["curves"][metric]) for r in mine)
        stacked = np.array([r["curves"][metric][:length] for r in mine], dtype=float)  # None (not validated) -> NaN
        epochs = np.array(mine[0]["curves"].get("epoch", range(1, length + 1))[:length])
        validated = ~np.isnan(stacked).all(axis=0)
        mean = np.nanmean(stacked[:, validated], axis=0)
        axis.plot(epochs[validated], mean, marker="o", markersize=3, label=plot_label(mine[0]["label"]))
        axis.fill_between(epochs[validated], np.nanmin(stacked[:, validated], 0), np.nanmax(stacked[:, validated], 0), alpha=0.2)
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(f"validation {metric}")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


@literal_text
def factor_heatmap(summary: pd.DataFrame, runs: pd.DataFrame, factors: list, metric: str, path: Path) -> Path:
    """Two-factor grid: factor A (rows) x factor B (columns), cells the mean ``metric``."""
    first = runs.drop_duplicates("variant_id").set_index("variant_id")[factors]
    table = summary.set_index("variant_id")[[f"{metric}_mean"]].join(first)
    grid = table.pivot_table(index=factors[0], columns=factors[1], values=f"{metric}_mean", aggfunc="mean", sort=False)
    figure, axis = plt.subplots(figsize=(1.6 * len(grid.columns) + 3, 0.7 * len(grid.index) + 2))
    image = axis.imshow(grid.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    _annotate(axis, grid.to_numpy(dtype=float), "{:.3f}")
    axis.set_xticks(range(len(grid.columns)), [_wrap(str(c), 18) for c in grid.columns], fontsize=8)
    axis.set_yticks(range(len(grid.index)), [_wrap(str(i), 24) for i in grid.index], fontsize=8)
    axis.set_xlabel(plot_label(factors[1].removeprefix("factor.")))
    axis.set_ylabel(plot_label(factors[0].removeprefix("factor.")))
    figure.colorbar(image, ax=axis, label=f"mean {metric}")
    figure.tight_layout()
    return _save(figure, path)


@literal_text
def per_class_heatmap(table: pd.DataFrame, metric: str, path: Path) -> Path:
    """Variants x classes, the per-class ``metric`` (mean over seeds)."""
    values = table.to_numpy(dtype=float)
    figure, axis = plt.subplots(figsize=(0.75 * len(table.columns) + 3.5, 0.45 * len(table.index) + 2))
    image = axis.imshow(values, cmap="magma", vmin=0, vmax=1, aspect="auto")
    if values.size <= 400:
        _annotate(axis, values, "{:.2f}")
    axis.set_xticks(range(len(table.columns)), [plot_label(c) for c in table.columns], rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(table.index)), [_wrap(str(i), 32) for i in table.index], fontsize=8)
    figure.colorbar(image, ax=axis, label=f"{metric} per class")
    figure.tight_layout()
    return _save(figure, path)


@literal_text
def cost_scatter(summary: pd.DataFrame, metric: str, path: Path, higher_is_better: bool = True) -> Path:
    """Quality against latency and against parameters, the Pareto front (no other variant
    is both better and cheaper, in the metric's direction) joined by a line and ringed."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for axis, (cost, title) in zip(axes, (("cost.latency_ms", "latency (ms / image)"), ("cost.params", "parameters"))):
        points = summary[["variant", f"{cost}_mean", f"{metric}_mean"]].dropna()
        x, y = points[f"{cost}_mean"].to_numpy(float), points[f"{metric}_mean"].to_numpy(float)
        front = front_of(summary, metric, cost, higher_is_better).to_numpy()
        axis.scatter(x, y, color="#3182bd", zorder=3)
        axis.scatter(x[front], y[front], s=160, facecolors="none", edgecolors="#e6550d", linewidths=1.6, zorder=4, label="Pareto front")
        order = sorted(np.flatnonzero(front), key=lambda i: x[i])
        axis.plot(x[order], y[order], color="#e6550d", linewidth=1, zorder=2)
        for label, xi, yi in zip(points["variant"], x, y):
            axis.annotate(_wrap(str(label), 28), (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=7)
        axis.set_xlabel(title)
        axis.set_ylabel(f"mean {metric} ({direction_word(higher_is_better)})")
        axis.margins(x=0.3, y=0.12)  # room for the labels
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return _save(figure, path)


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
def qualitative_grid(images, masks, predictions: dict, classes: list, ignore_index: int, path: Path) -> Path:
    """Rows: validation images. Columns: the image, its true mask, then each variant's
    prediction (its first seed), all in one class palette."""
    from ..data.show import class_colours  # heavy: segbench.data loads torch; only a report with samples draws this

    colours = class_colours(len(classes))
    columns = 2 + len(predictions)
    figure, axes = plt.subplots(len(images), columns, figsize=(1.9 * columns, 1.9 * len(images) + 0.6), squeeze=False)
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
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return _save(figure, path)


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
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
