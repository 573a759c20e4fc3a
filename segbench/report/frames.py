"""Records -> pandas tables: one row per run, one row per variant."""

from __future__ import annotations

import pandas as pd

from ..costs import COST_HIGHER_IS_BETTER, REPORTED_COSTS
from ..design import SeedDesign, StatsSettings
from ..format import format_value
from ..statistics import image_bootstrap, mean_ci
from ..store import decode_arrays
from ..degenerate import collapsed_runs, failure_reason, suite_reason, variant_reason
from ..verdicts import BASELINE, DEGENERATE, INCONCLUSIVE, UNSTABLE, judge_family, metric_values
from .devices import device_of
from .table import row_outcome


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
        "device": device_of(record),
    }
    row.update({f"factor.{k}": _plain(v) for k, v in record.get("factors", {}).items()})
    row.update(record.get("metrics") or {})
    row.update({f"cost.{k}": v for k, v in (record.get("cost") or {}).items() if k in REPORTED_COSTS})
    return row


def _plain(value):
    return format_value(value)


def summary_frame(runs: pd.DataFrame, meta: dict, records: list | None = None) -> pd.DataFrame:
    """One row per variant: mean, std and 95% CI half-width over seeds of each metric and
    cost, and, for the primary metric, the comparison with the baseline: its outcome
    (better / worse / equivalent / inconclusive, unstable or degenerate, see segbench.verdicts and
    segbench.degenerate), the paired seed test, P(improvement) and the image bootstrap of
    the same difference; ``outcome`` words it as every output does."""
    records = records or []
    primary, baseline_id = meta["primary"], meta["baseline_id"]
    judgements = judge_primary(records, meta, ordered_variants(runs, meta))
    replicates = image_replicates(records, primary)
    degenerate = degenerate_reasons(records, meta)
    rows = []
    decoded = {}  # the baseline's replicates, decoded once: they pair with every variant's
    by_variant = dict(iter(runs.groupby("variant_id", sort=False)))  # one pass, not a filter per variant
    for variant_id in ordered_variants(runs, meta):
        mine = by_variant[variant_id]
        done = mine[mine["status"] == "ok"]
        row = {"variant": mine["label"].iloc[0], "variant_id": variant_id, "runs": len(done), "failed": len(mine) - len(done)}
        for column in list(meta["metrics"]) + [f"cost.{c}" for c in REPORTED_COSTS]:
            if column in done:
                mean, half_width = mean_ci(done[column].astype(float))
                row[f"{column}_mean"], row[f"{column}_std"], row[f"{column}_ci95"] = mean, done[column].astype(float).std(), half_width
        if variant_id == baseline_id:
            row.update(verdict=BASELINE, delta=0.0)
        elif variant_id in judgements:
            judgement = judgements[variant_id]
            row.update(comparison_columns(judgement))
            if judgement.outcome == UNSTABLE:
                row["reason"] = failure_reason(records, variant_id, judgement.failed_seeds, judgement.attempted)
            row.update(_images(replicates.get(baseline_id, {}), replicates.get(variant_id, {}), judgements[variant_id], decoded))
            reason = degenerate.get("suite") or degenerate.get(variant_id) or degenerate.get(baseline_id)
            if reason:
                row.update(verdict=DEGENERATE, reason=reason)
        row["outcome"] = row_outcome(row) if "verdict" in row else "-"
        rows.append(row)
    return pd.DataFrame(rows)


def degenerate_reasons(records: list, meta: dict) -> dict:
    """``{"suite": why, variant id: why}``: what makes a comparison degenerate (segbench.degenerate)."""
    primary = meta["primary"]
    labels = {r["variant_id"]: r["label"] for r in records}
    reasons = {variant_id: variant_reason(labels.get(variant_id, variant_id), seeds)
               for variant_id, seeds in collapsed_runs(records, primary).items()}
    whole = suite_reason(records, primary)
    if whole:
        reasons["suite"] = whole
    return reasons


def judge_primary(records: list, meta: dict, order: list) -> dict:
    """variant id -> Judgement of every variant but the baseline, on the primary metric,
    with the suite's statistics settings and seed design (older results without them get
    the defaults and a fixed design over the seeds they have)."""
    primary, baseline_id = meta["primary"], meta["baseline_id"]
    settings = StatsSettings.from_dict(meta.get("stats"))
    design = SeedDesign.from_dict(meta.get("design"), fallback_seeds=sorted({r["seed"] for r in records}))
    values = metric_values(records, primary)
    candidates = {variant_id: values.get(variant_id, {}) for variant_id in order if variant_id != baseline_id}
    if not candidates:
        return {}
    return judge_family(values.get(baseline_id, {}), candidates, higher_is_better=metric_directions(records, meta).get(primary, True),
                        margin=settings.margin_for(primary), design=design, settings=settings)


def metric_directions(records: list, meta: dict) -> dict:
    """name -> higher is better, for every metric and cost field: as the records say (the
    metric instances that ran), else as the suite summary says, else the defaults."""
    directions = {**COST_HIGHER_IS_BETTER, **(meta.get("higher_is_better") or {})}
    for record in records:
        directions.update(record.get("higher_is_better") or {})
    return directions


def comparison_columns(judgement) -> dict:
    """The columns of summary.csv that describe one comparison with the baseline."""
    return {
        "verdict": judgement.outcome,
        "reason": "a seed test needs 2 paired seeds" if judgement.outcome == INCONCLUSIVE and judgement.n < 2 else "",
        "delta": judgement.diff, "delta_ci_low": judgement.ci_low, "delta_ci_high": judgement.ci_high,
        "paired_seeds": judgement.n, "sd": judgement.sd,
        "p_value": judgement.p_value, "p_adjusted": judgement.p_adjusted, "level": judgement.level,
        "margin": judgement.margin, "p_equivalence": judgement.p_equivalence,
        "p_equivalence_adjusted": judgement.p_equivalence_adjusted,
        "equivalence_ci_low": judgement.equivalence_low, "equivalence_ci_high": judgement.equivalence_high,
        "equivalence_level": judgement.equivalence_level,
        "mde": judgement.mde,
        "p_improve": judgement.p_improve, "p_improve_ci_low": judgement.p_improve_low, "p_improve_ci_high": judgement.p_improve_high,
        "seeds_state": judgement.state,
    }


def image_replicates(records: list, metric: str) -> dict:
    """variant id -> {seed: the run's bootstrap replicates of ``metric``} (records that
    carry them; they pair up only when drawn alike, which the key checks)."""
    found = {}
    for record in records:
        boot = record.get("bootstrap") or {}
        encoded = (boot.get("replicates") or {}).get(metric)
        if record.get("status") == "ok" and encoded:
            key = (boot.get("resamples"), boot.get("seed"), boot.get("images"))
            found.setdefault(record["variant_id"], {})[record["seed"]] = (key, encoded)
    return found


def _images(baseline, candidate, judgement, decoded=None) -> dict:
    decoded = {} if decoded is None else decoded
    paired = [s for s in judgement.paired_seeds if s in baseline and s in candidate and baseline[s][0] == candidate[s][0]]
    result = image_bootstrap({s: _decode(baseline[s][1], decoded) for s in paired}, {s: _decode(candidate[s][1], {}) for s in paired},
                             paired)  # only the baseline's are kept decoded: they pair with every variant's
    return {"image_ci_low": result["ci_low"], "image_ci_high": result["ci_high"], "image_p_value": result["p_value"]}


def _decode(encoded, decoded):
    """The replicates of one run, decoded once (``decoded``: a cache by the encoded text's identity)."""
    key = id(encoded)
    if key not in decoded:
        decoded[key] = (encoded, decode_arrays(encoded)["values"])  # the text is kept so that its id stays its own
    return decoded[key][1]


def ordered_variants(runs, meta):
    present = list(dict.fromkeys(runs["variant_id"])) if len(runs) else []
    order = [v for v in meta.get("variant_order", []) if v in present]
    return order + [v for v in present if v not in order]


def per_class_frame(records: list, order: list, metric: str) -> pd.DataFrame:
    """Variants (rows, by label) x classes: the per-class ``metric`` averaged over seeds."""
    found = {}
    for record in records:  # one pass: linear in the records
        if record["status"] == "ok" and metric in (record.get("per_class") or {}):
            found.setdefault(record["variant_id"], []).append(record)
    rows = {}
    for variant_id in order:
        mine = found.get(variant_id)
        if mine:
            table = pd.DataFrame([r["per_class"][metric] for r in mine]).astype(float)
            rows[mine[0]["label"]] = table.mean(skipna=True)
    return pd.DataFrame(rows).T if rows else pd.DataFrame()


def factor_columns(runs: pd.DataFrame) -> list:
    return [c for c in runs.columns if c.startswith("factor.")]
