"""Plots (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .stats import mean_ci  # noqa: E402


def metrics_per_variant(runs: pd.DataFrame, metrics: list, order: list, path: Path) -> Path:
    """One panel per metric: each seed as a dot, the mean with its 95% CI as a bar."""
    ok = runs[runs["status"] == "ok"]
    labels = [runs.loc[runs["variant_id"] == v, "label"].iloc[0] for v in order]
    figure, axes = plt.subplots(1, len(metrics), figsize=(max(4.0, 1.3 * len(order)) * len(metrics), 4.2), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        _metric_panel(axis, ok, metric, order)
        axis.set_xticks(range(len(order)), [_wrap(label) for label in labels], rotation=20, ha="right", fontsize=8)
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


def curves(records: list, metric: str, order: list, path: Path) -> Path:
    """Validation ``metric`` per epoch: mean over seeds with a min-max band."""
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for variant_id in order:
        series = [r["curves"][metric] for r in records if r["variant_id"] == variant_id and r["status"] == "ok" and metric in r.get("curves", {})]
        if not series:
            continue
        length = min(len(s) for s in series)
        stacked = np.array([s[:length] for s in series], dtype=float)
        epochs = np.arange(1, length + 1)
        label = next(r["label"] for r in records if r["variant_id"] == variant_id)
        axis.plot(epochs, stacked.mean(0), marker="o", markersize=3, label=label)
        axis.fill_between(epochs, stacked.min(0), stacked.max(0), alpha=0.2)
    axis.set_xlabel("epoch")
    axis.set_ylabel(f"validation {metric}")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def _wrap(label, width=24):
    return "\n".join(label[i : i + width] for i in range(0, len(label), width))


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
