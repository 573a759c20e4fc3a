"""Statistics over seeds, the summary table and escaping in the HTML report."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from segbench.report import write_report
from segbench.report.stats import mean_ci, paired_comparison, verdict


def test_mean_ci_matches_the_t_interval():
    values = [0.61, 0.64, 0.60, 0.66]
    mean, half_width = mean_ci(values)
    low, high = scipy_stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert mean == pytest.approx(np.mean(values))
    assert (mean - half_width, mean + half_width) == pytest.approx((low, high))


def test_clearly_separated_pairs_are_significant_and_identical_ones_are_not():
    baseline = {0: 0.50, 1: 0.52, 2: 0.51, 3: 0.49}
    better = {seed: value + 0.05 + 0.002 * seed for seed, value in baseline.items()}
    comparison = paired_comparison(baseline, better)
    assert comparison["diff"] == pytest.approx(0.053)
    assert comparison["p_value"] < 0.001 and verdict(comparison) == "better"
    assert comparison["ci_low"] < 0.053 < comparison["ci_high"]
    same = paired_comparison(baseline, dict(baseline))
    assert same["diff"] == 0 and same["p_value"] == 1.0 and verdict(same) == "indistinguishable"


def test_noisy_small_difference_is_indistinguishable():
    baseline = {0: 0.50, 1: 0.60, 2: 0.55}
    candidate = {0: 0.58, 1: 0.55, 2: 0.57}
    comparison = paired_comparison(baseline, candidate)
    assert comparison["p_value"] > 0.05 and verdict(comparison) == "indistinguishable"
    assert comparison["p_value"] == pytest.approx(scipy_stats.ttest_rel([0.58, 0.55, 0.57], [0.50, 0.60, 0.55]).pvalue)


def test_lower_is_better_flips_the_verdict():
    comparison = {"diff": -1.0, "p_value": 0.001}
    assert verdict(comparison, higher_is_better=False) == "better"
    assert verdict({"diff": 1.0, "p_value": math.nan}) == "n/a"


def _record(variant_id, label, seed, miou, status="ok"):
    record = {
        "variant_id": variant_id, "label": label, "seed": seed, "status": status, "factors": {},
        "wall_seconds": 1.0, "curves": {"epoch": [1], "miou": [miou]}, "metrics": {"miou": miou},
        "cost": {"params": 10, "latency_ms": 1.0},
    }
    if status != "ok":
        record.update(metrics={}, error={"type": "ValueError", "message": "<b>bad</b>", "traceback": ""})
    return record


def test_html_escapes_everything_from_suites_and_records(tmp_path):
    hostile = "<script>alert(1)</script> | x\ny"
    records = [_record("a", "nearest", s, 0.5 + s / 100) for s in range(3)]
    records += [_record("b", hostile, s, 0.6 + s / 100) for s in range(3)]
    records.append(_record("b", hostile, 3, 0.0, status="failed"))
    meta = {
        "name": "<i>suite</i>", "description": "<img src=x onerror=alert(2)>", "path": "s.toml",
        "text": 'name = "<script>"', "baseline_id": "a", "variant_order": ["a", "b"],
        "primary": "miou", "metrics": ["miou"],
    }
    report = write_report(records, meta, tmp_path)
    page = report["html"].read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "<i>suite</i>" not in page and "<b>bad</b>" not in page
    assert page.count("<script>") == 1  # only the report's own sorting script
    summary = report["summary"]
    assert list(summary["variant"]) == ["nearest", hostile]
    assert summary.loc[1, "runs"] == 3 and summary.loc[1, "failed"] == 1
    assert summary.loc[1, "delta"] == pytest.approx(0.1) and summary.loc[1, "verdict"] == "better"
