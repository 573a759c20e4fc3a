"""Statistics over seeds, the summary table and escaping in the HTML report."""


import numpy as np
import pytest
from scipy import stats as scipy_stats

from segbench.design import SeedDesign, StatsSettings
from segbench.report import write_report
from segbench.statistics import image_bootstrap, mean_ci, paired_comparison
from segbench.store import encode_arrays
from segbench.verdicts import judge_family


def outcome(baseline, candidate, higher_is_better=True):
    seeds = sorted(baseline)
    return judge_family(baseline, {"b": candidate}, higher_is_better=higher_is_better, margin=0.01,
                        design=SeedDesign.fixed(seeds), settings=StatsSettings())["b"].outcome


def test_mean_ci_matches_the_t_interval():
    values = [0.61, 0.64, 0.60, 0.66]
    mean, half_width = mean_ci(values)
    low, high = scipy_stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert mean == pytest.approx(np.mean(values))
    assert (mean - half_width, mean + half_width) == pytest.approx((low, high))


EIGHT = {0: 0.50, 1: 0.52, 2: 0.51, 3: 0.49, 4: 0.505, 5: 0.515, 6: 0.495, 7: 0.50}  # enough seeds to decide


def test_clearly_separated_pairs_are_significant_and_identical_ones_are_not():
    baseline = EIGHT
    better = {seed: value + 0.05 + 0.002 * seed for seed, value in baseline.items()}
    comparison = paired_comparison(baseline, better)
    assert comparison["diff"] == pytest.approx(0.057)
    assert comparison["p_value"] == 2 / 2 ** 8 and outcome(baseline, better) == "better"  # every sign agrees
    assert comparison["ci_low"] < 0.057 < comparison["ci_high"]
    same = paired_comparison(baseline, dict(baseline))
    assert same["diff"] == 0 and same["p_value"] == 1.0 and outcome(baseline, dict(baseline)) == "equivalent"


def test_three_clearly_separated_seeds_are_not_enough_to_decide():
    baseline = {0: 0.50, 1: 0.52, 2: 0.51}
    better = {seed: value + 0.05 + 0.002 * seed for seed, value in baseline.items()}
    comparison = paired_comparison(baseline, better)
    assert scipy_stats.ttest_rel(list(better.values()), list(baseline.values())).pvalue < 0.01
    assert comparison["p_value"] == 0.25 and outcome(baseline, better) == "inconclusive"  # the sign flips' floor


def test_noisy_small_difference_is_inconclusive():
    baseline = {0: 0.50, 1: 0.60, 2: 0.55, 3: 0.52, 4: 0.58, 5: 0.56}
    candidate = {0: 0.58, 1: 0.55, 2: 0.57, 3: 0.55, 4: 0.56, 5: 0.58}
    comparison = paired_comparison(baseline, candidate)
    assert comparison["p_value"] > 0.05 and outcome(baseline, candidate) == "inconclusive"
    t = scipy_stats.ttest_rel(list(candidate.values()), list(baseline.values())).pvalue
    assert comparison["p_value"] >= t and comparison["p_t"] == pytest.approx(t)


def test_lower_is_better_flips_the_outcome():
    baseline = EIGHT
    higher = {seed: value + 0.05 + 0.002 * seed for seed, value in baseline.items()}
    assert outcome(baseline, higher, higher_is_better=True) == "better"
    assert outcome(baseline, higher, higher_is_better=False) == "worse"
    assert outcome(higher, baseline, higher_is_better=False) == "better"


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
    assert summary.loc[1, "delta"] == pytest.approx(0.1) and summary.loc[1, "verdict"] == "inconclusive"  # 3 seeds


def test_class_names_and_labels_are_escaped_in_html_and_markdown(tmp_path):
    hostile_class = "<script>alert(1)</script>"
    hostile_label = "a|b\nc"
    records = []
    for variant_id, label in (("a", "plain"), ("b", hostile_label)):
        for seed in range(2):
            record = _record(variant_id, label, seed, 0.5 + seed / 100)
            record["per_class"] = {"miou": {"background": 0.9, hostile_class: 0.1}}
            records.append(record)
    meta = {"name": "s", "description": "", "path": "s.toml", "text": "", "baseline_id": "a",
            "variant_order": ["a", "b"], "primary": "miou", "metrics": ["miou"]}
    report = write_report(records, meta, tmp_path)
    page = report["html"].read_text()
    assert hostile_class not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    markdown = (tmp_path / "summary.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| variant |"))
    row = next(line for line in markdown.splitlines() if line.startswith("| a"))
    assert row.startswith("| a\\|b c |"), "the pipe is escaped and the newline does not end the row"
    assert row.count(" | ") == header.count(" | ")  # same cell count as the header
    assert "<script>" not in markdown
    assert (tmp_path / "per_class.csv").read_text().splitlines()[0] == f"variant,background,{hostile_class}"


def test_image_bootstrap_resamples_the_same_difference_the_seeds_test():
    rng = np.random.default_rng(0)
    baseline = {seed: 0.5 + rng.normal(0, 0.01, 2000) for seed in range(3)}
    shifted = {seed: baseline[seed] + 0.04 + rng.normal(0, 0.005, 2000) for seed in range(3)}
    result = image_bootstrap(baseline, shifted, [0, 1, 2])
    assert result["p_value"] < 0.01
    assert result["ci_low"] < 0.04 < result["ci_high"], "the CI covers the true shift"
    deltas = np.mean([shifted[s] - baseline[s] for s in range(3)], axis=0)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(tuple(np.percentile(deltas, [2.5, 97.5])))
    same = image_bootstrap(baseline, {s: v.copy() for s, v in baseline.items()}, [0, 1, 2])
    assert same["p_value"] == 1.0
    noise = image_bootstrap(baseline, {s: v + rng.normal(0, 0.1, 2000) for s, v in baseline.items()}, [0, 1, 2])
    assert noise["p_value"] > 0.05


def _replicated_record(variant_id, seed, miou, replicates):
    record = _record(variant_id, variant_id, seed, miou)
    record["bootstrap"] = {"resamples": len(replicates), "seed": 0, "images": 50,
                           "replicates": {"miou": encode_arrays(values=np.asarray(replicates, np.float32))}}
    return record


def test_seeds_decide_and_images_are_reported_beside_them(tmp_path):
    rng = np.random.default_rng(1)
    meta = {"name": "s", "description": "", "path": "s.toml", "text": "", "baseline_id": "a",
            "variant_order": ["a", "b"], "primary": "miou", "metrics": ["miou"]}
    # Seeds disagree (noisy, small mean gain) while every image resample agrees: inconclusive,
    # with the image evidence of the same Δ beside it.
    seeds = {0: (0.50, 0.56), 1: (0.55, 0.52), 2: (0.52, 0.55)}
    noise = rng.normal(0, 0.002, 2000)
    records = [_replicated_record("a", s, a, a + noise) for s, (a, _) in seeds.items()]
    records += [_replicated_record("b", s, b, b + noise) for s, (_, b) in seeds.items()]
    row = write_report(records, meta, tmp_path / "one")["summary"].iloc[1]
    # 3 seeds: the sign flips cannot reach p <= 0.05 (2 / 2^3 = 0.25), so no difference is detectable
    assert row["verdict"] == "inconclusive" and row["mde"] == np.inf
    assert row["outcome"] == "inconclusive: MDE ∞ (too few seeds for the level)"
    assert row["delta"] == pytest.approx(np.mean([b - a for a, b in seeds.values()]))
    assert row["image_ci_low"] > 0 and row["image_p_value"] < 0.01
    assert row["image_ci_low"] < row["delta"] < row["image_ci_high"], "the images resample the very Δ shown"
    # One seed: no seed test, so no decision, whatever the images say.
    single = [_replicated_record("a", 0, 0.5, 0.5 + noise), _replicated_record("b", 0, 0.48, 0.48 + noise)]
    row = write_report(single, meta, tmp_path / "two")["summary"].iloc[1]
    assert row["verdict"] == "inconclusive" and row["outcome"] == "inconclusive: a seed test needs 2 paired seeds"
    assert row["image_ci_high"] < 0


@pytest.mark.parametrize("text, overrides, source", [
    ('[stats]\nmargin = 0.02\n', [], "the suite's [stats] margin"),
    ('[stats]\nmargin = { miou = 0.03 }\n', [], "the suite's [stats] margin.miou"),
    ('name = "x"\n', [], "segbench's default (the suite sets none)"),
    ('[stats]\nmargin = 0.02\n', ["stats.margin=0.05"], "set on the command line (--set)"),
])
def test_the_report_says_where_the_margin_came_from(tmp_path, text, overrides, source):
    records = [_record("a", "nearest", s, 0.5 + s / 100) for s in range(2)] + [_record("b", "bilinear", s, 0.6) for s in range(2)]
    meta = {"name": "m", "description": "", "path": "s.toml", "text": text, "baseline_id": "a", "variant_order": ["a", "b"],
            "primary": "miou", "metrics": ["miou"], "stats": {"alpha": 0.05, "margin": 0.02, "correction": "holm"},
            "overrides": overrides}
    write_report(records, meta, tmp_path)
    markdown = (tmp_path / "summary.md").read_text()
    assert f"decided at alpha 0.05 (Holm), equivalence margin ±0.02 for miou: {source}" in markdown.replace("\\[", "[").replace("\\]", "]")
    assert source.split(" (")[0] in (tmp_path / "index.html").read_text().replace("&#x27;", "'")
