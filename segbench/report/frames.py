"""Records -> pandas tables: one row per run, one row per variant."""

from __future__ import annotations

import pandas as pd

from .stats import image_bootstrap, mean_ci, paired_comparison, per_image_means, verdict

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


def summary_frame(runs: pd.DataFrame, meta: dict, records: list | None = None) -> pd.DataFrame:
    """One row per variant: mean, std and 95% CI half-width over seeds of each metric and
    cost, and for the primary metric two comparisons with the baseline: paired by seed
    (training noise) and a paired bootstrap over validation images (test-set noise)."""
    ok = runs[runs["status"] == "ok"] if len(runs) else runs
    baseline = _by_seed(ok, meta["baseline_id"], meta["primary"])
    images = _images_by_variant(records or [], meta["primary"])
    rows = []
    for variant_id in ordered_variants(runs, meta):
        mine = runs[runs["variant_id"] == variant_id]
        done = mine[mine["status"] == "ok"]
        row = {"variant": mine["label"].iloc[0], "variant_id": variant_id, "runs": len(done), "failed": len(mine) - len(done)}
        for column in list(meta["metrics"]) + [f"cost.{c}" for c in COST_COLUMNS]:
            if column in done:
                mean, half_width = mean_ci(done[column].astype(float))
                row[f"{column}_mean"], row[f"{column}_std"], row[f"{column}_ci95"] = mean, done[column].astype(float).std(), half_width
        is_baseline = variant_id == meta["baseline_id"]
        row.update(_versus_baseline(baseline, _by_seed(done, variant_id, meta["primary"]), is_baseline))
        row.update(_images_versus_baseline(images.get(meta["baseline_id"]), images.get(variant_id), is_baseline))
        row["verdict"], row["evidence"] = _verdict(row, is_baseline)
        rows.append(row)
    return pd.DataFrame(rows)


def _images_by_variant(records, metric):
    by_variant = {}
    for record in records:
        by_variant.setdefault(record["variant_id"], []).append(record)
    return {variant_id: per_image_means(mine, metric) for variant_id, mine in by_variant.items()}


def _images_versus_baseline(baseline, candidate, is_baseline):
    if is_baseline:
        return {"image_delta": 0.0, "image_ci_low": None, "image_ci_high": None, "image_p_value": None, "images": None}
    comparison = image_bootstrap(baseline, candidate)
    return {
        "image_delta": comparison["diff"],
        "image_ci_low": comparison["ci_low"],
        "image_ci_high": comparison["ci_high"],
        "image_p_value": comparison["p_value"],
        "images": comparison["n_images"],
    }


def _verdict(row, is_baseline):
    """The mark and what it rests on. With two or more paired seeds the seed test decides:
    a component is better only if it wins across training runs, not just on these
    images. With one seed only the image bootstrap is available, and the mark says so."""
    if is_baseline:
        return "baseline", ""
    seed_mark = row["seed_verdict"]
    image_mark = verdict({"p_value": row["image_p_value"], "diff": row["image_delta"]})
    decided = ("better", "worse")
    if seed_mark in decided:
        return seed_mark, "seeds and images" if image_mark == seed_mark else "seeds"
    if seed_mark == "indistinguishable":
        return seed_mark, f"images alone say {image_mark}" if image_mark in decided else ""
    if image_mark == "n/a":
        return "n/a", ""
    return image_mark, "images only (one seed)"


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
        return {"delta": 0.0, "delta_ci_low": None, "delta_ci_high": None, "p_value": None, "seed_verdict": "baseline"}
    comparison = paired_comparison(baseline, candidate)
    return {
        "delta": comparison["diff"],
        "delta_ci_low": comparison["ci_low"],
        "delta_ci_high": comparison["ci_high"],
        "p_value": comparison["p_value"],
        "seed_verdict": verdict(comparison),
    }


def per_class_frame(records: list, order: list, metric: str) -> pd.DataFrame:
    """Variants (rows, by label) x classes: the per-class ``metric`` averaged over seeds."""
    rows = {}
    for variant_id in order:
        mine = [r for r in records if r["variant_id"] == variant_id and r["status"] == "ok" and metric in (r.get("per_class") or {})]
        if mine:
            table = pd.DataFrame([r["per_class"][metric] for r in mine]).astype(float)
            rows[mine[0]["label"]] = table.mean(skipna=True)
    return pd.DataFrame(rows).T if rows else pd.DataFrame()


def factor_columns(runs: pd.DataFrame) -> list:
    return [c for c in runs.columns if c.startswith("factor.")]
