"""Records -> pandas tables: one row per run, one row per variant."""

from __future__ import annotations

import pandas as pd

from .stats import mean_ci, paired_comparison, verdict

COST_COLUMNS = ("params", "flops_per_image", "latency_ms", "train_images_per_s", "peak_memory_mb")


def runs_frame(records: list) -> pd.DataFrame:
    """Every record flattened: metrics as ``<name>``, cost as ``cost.<field>``."""
    rows = [_run_row(record) for record in records]
    return pd.DataFrame(rows)


def _run_row(record):
    row = {
        "variant_id": record["variant_id"],
        "label": record["label"],
        "seed": record["seed"],
        "status": record["status"],
        "baseline": record.get("is_baseline", False),
        "wall_seconds": record.get("wall_seconds"),
        "error": (record.get("error") or {}).get("message"),
    }
    row.update({f"factor.{k}": _plain(v) for k, v in record.get("factors", {}).items()})
    row.update(record.get("metrics") or {})
    row.update({f"cost.{k}": v for k, v in (record.get("cost") or {}).items() if k in COST_COLUMNS})
    return row


def _plain(value):
    from ..suite import format_value

    return format_value(value)


def summary_frame(runs: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """One row per variant: mean, std and 95% CI half-width over seeds of each metric and
    cost, and for the primary metric the paired comparison with the baseline."""
    ok = runs[runs["status"] == "ok"] if len(runs) else runs
    baseline = _by_seed(ok, meta["baseline_id"], meta["primary"])
    rows = []
    for variant_id in ordered_variants(runs, meta):
        mine = runs[runs["variant_id"] == variant_id]
        done = mine[mine["status"] == "ok"]
        row = {"variant": mine["label"].iloc[0], "variant_id": variant_id, "runs": len(done), "failed": len(mine) - len(done)}
        for column in list(meta["metrics"]) + [f"cost.{c}" for c in COST_COLUMNS]:
            if column in done:
                mean, half_width = mean_ci(done[column].astype(float))
                row[f"{column}_mean"], row[f"{column}_std"], row[f"{column}_ci95"] = mean, done[column].astype(float).std(), half_width
        row.update(_versus_baseline(baseline, _by_seed(done, variant_id, meta["primary"]), variant_id == meta["baseline_id"]))
        rows.append(row)
    return pd.DataFrame(rows)


def ordered_variants(runs, meta):
    present = list(dict.fromkeys(runs["variant_id"])) if len(runs) else []
    order = [v for v in meta.get("variant_order", []) if v in present]
    return order + [v for v in present if v not in order]


def _by_seed(frame, variant_id, metric):
    if metric not in frame:
        return {}
    mine = frame[frame["variant_id"] == variant_id]
    return dict(zip(mine["seed"], mine[metric].astype(float)))


def _versus_baseline(baseline, candidate, is_baseline):
    if is_baseline:
        return {"delta": 0.0, "delta_ci_low": None, "delta_ci_high": None, "p_value": None, "verdict": "baseline"}
    comparison = paired_comparison(baseline, candidate)
    return {
        "delta": comparison["diff"],
        "delta_ci_low": comparison["ci_low"],
        "delta_ci_high": comparison["ci_high"],
        "p_value": comparison["p_value"],
        "verdict": verdict(comparison),
    }
