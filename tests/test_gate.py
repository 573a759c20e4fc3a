"""The regression gate, baselines and result-set comparison.

Result folders are built from constructed records (fast, no training); one tiny real
suite covers run -> baseline save -> gate end to end.
"""

import json
import re
import textwrap
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from segbench.cli import main
from segbench.errors import SuiteError
from segbench.gate import compare_results, escape_markdown, gate_junit, gate_markdown, parse_rule, run_gate, save_baseline
from segbench.plugins import load_catalogue
from segbench.store import ResultStore
from segbench.suite import load_suite

COST_FIELDS = ("params", "latency_ms")
# Two variants, eight seeds (enough for the exact sign flips to decide): miou and latency per seed.
BASE = {
    "aaa": {"miou": [0.70, 0.71, 0.72, 0.705, 0.715, 0.70, 0.72, 0.71], "latency_ms": [10.0, 10.2, 9.8, 10.1, 9.9, 10.0, 10.2, 9.8]},
    "bbb": {"miou": [0.60, 0.61, 0.62, 0.605, 0.615, 0.60, 0.62, 0.61],
            "latency_ms": [12.0, 12.1, 11.9, 12.05, 11.95, 12.0, 12.1, 11.9]},
}


def record(variant_id, seed, fields, label=None, status="ok"):
    metrics = {k: v for k, v in fields.items() if k not in COST_FIELDS}
    cost = {"params": 1000, "image_size": [32, 32], **{k: v for k, v in fields.items() if k in COST_FIELDS}}
    return {"schema": 1, "suite": "s", "variant_id": variant_id, "label": label or f"variant {variant_id}", "factors": {},
            "seed": seed, "status": status, "metrics": metrics if status == "ok" else {}, "cost": cost if status == "ok" else {},
            "is_baseline": variant_id == "aaa", "wall_seconds": 1.0,
            **({"error": {"type": "RuntimeError", "message": "loss became NaN"}} if status != "ok" else {})}


def write_results(root, variants, suite="s", labels=None, seeds=None, suite_toml=None, failed=()):
    """``variants``: {id: {field: [value per seed]}}; ``failed``: (id, seed) pairs recorded as failed."""
    store = ResultStore(root, suite)
    for variant_id, fields in variants.items():
        count = len(next(iter(fields.values())))
        for index, seed in enumerate(seeds or range(count)):
            values = {name: per_seed[index] for name, per_seed in fields.items()}
            status = "failed" if (variant_id, seed) in failed else "ok"
            store.write(record(variant_id, seed, values, (labels or {}).get(variant_id), status))
    if suite_toml is not None:
        (store.suite_dir / "suite.toml").write_text(textwrap.dedent(suite_toml))
    return root


def shifted(variants, field, by):
    return {vid: {**fields, field: [v + by for v in fields[field]]} for vid, fields in variants.items()}


def scaled(variants, field, by):
    return {vid: {**fields, field: [v * by for v in fields[field]]} for vid, fields in variants.items()}


@pytest.fixture
def baseline_file(tmp_path):
    write_results(tmp_path / "before", BASE)
    return save_baseline(tmp_path / "before", tmp_path / "baselines" / "s.json").path


def gate_cli(capsys, results, baseline, *rules, extra=()):
    code = main(["gate", str(results), "--baseline", str(baseline), *[a for r in rules for a in ("--rule", r)], *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------- baseline


def test_baseline_holds_per_seed_values_with_n_mean_std(tmp_path, baseline_file):
    payload = json.loads(baseline_file.read_text())
    assert payload["format"] == "segbench-baseline" and payload["schema"] == 1 and payload["suite"] == "s"
    assert payload["segbench_version"] and payload["created"]
    aaa = next(v for v in payload["variants"] if v["id"] == "aaa")
    assert aaa["label"] == "variant aaa" and aaa["seeds"] == list(range(8))
    assert aaa["metrics"]["miou"]["values"] == {str(seed): value for seed, value in enumerate(BASE["aaa"]["miou"])}
    assert aaa["metrics"]["miou"]["n"] == 8 and aaa["metrics"]["miou"]["mean"] == pytest.approx(0.71)
    assert aaa["metrics"]["miou"]["std"] == pytest.approx(np.std(BASE["aaa"]["miou"], ddof=1))
    assert set(aaa["cost"]) == {"params", "latency_ms"}  # non-numeric cost (image_size) left out
    assert [p.name for p in baseline_file.parent.iterdir()] == ["s.json"]  # no temporary left


def test_baseline_save_cli_defaults_beside_the_suite_folder(tmp_path, capsys):
    write_results(tmp_path / "results", BASE)
    assert main(["baseline", "save", str(tmp_path / "results")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "results" / "baselines" / "s.json").is_file()


# ----------------------------------------------------------------------------- gate verdicts


def test_unchanged_results_pass(tmp_path, capsys, baseline_file):
    code, out, _ = gate_cli(capsys, tmp_path / "before", baseline_file, "miou:max_drop=0.01", "latency_ms:max_increase=10%")
    assert code == 0
    assert out.strip().splitlines()[-1].startswith("gate passed: 4 check(s), 2 rule(s) x 2 variant(s)")


def test_a_clear_regression_fails_naming_variant_metric_values_and_rule(tmp_path, capsys, baseline_file):
    write_results(tmp_path / "after", shifted(BASE, "miou", -0.05))
    code, out, _ = gate_cli(capsys, tmp_path / "after", baseline_file, "miou:max_drop=0.01")
    assert code == 1
    failure = next(line for line in out.splitlines() if "variant aaa" in line)
    assert failure.startswith("FAIL variant aaa: miou 0.7100 -> 0.6600 (-0.0500) breaks miou:max_drop=0.01")
    assert "outside the seed noise" in failure
    assert "gate FAILED: 2 of 2 check(s) failed" in out


@pytest.mark.parametrize("seeds", [None, [10, 11, 12, 13, 14, 15, 16, 17]], ids=["paired", "welch"])
def test_a_drop_within_the_seed_noise_passes_unless_noise_is_ignored(tmp_path, seeds):
    noisy = {"aaa": {"miou": [0.60, 0.70, 0.80, 0.65, 0.75, 0.62, 0.78, 0.70]}}
    write_results(tmp_path / "before", noisy)
    baseline = save_baseline(tmp_path / "before", tmp_path / "b.json").path
    after = [0.65, 0.60, 0.79, 0.70, 0.68, 0.55, 0.80, 0.63]  # mean drop 0.025 > 0.01, seeds disagree
    write_results(tmp_path / "after", {"aaa": {"miou": after}}, seeds=seeds)
    (check,) = run_gate(tmp_path / "after", baseline, ["miou:max_drop=0.01"]).checks
    assert check.fails() is None and "within the seed noise" in check.reason
    assert check.comparison["test"] == ("paired" if seeds is None else "Welch")
    (strict,) = run_gate(tmp_path / "after", baseline, ["miou:max_drop=0.01,noise=ignore"]).checks
    assert "noise=ignore" in strict.fails()


def test_with_three_paired_seeds_the_noise_cannot_be_judged_and_the_threshold_decides(tmp_path):
    """3 paired seeds: the exact sign flips' smallest p is 0.25, so no drop could ever be "outside the noise"."""
    write_results(tmp_path / "before", {"aaa": {"miou": [0.70, 0.71, 0.72]}})
    baseline = save_baseline(tmp_path / "before", tmp_path / "b.json").path
    write_results(tmp_path / "after", {"aaa": {"miou": [0.60, 0.61, 0.62]}})
    (check,) = run_gate(tmp_path / "after", baseline, ["miou:max_drop=0.01"]).checks
    assert ("the seed noise cannot be judged with 3 paired seeds: the exact test's smallest p, 0.25, is above the 0.05 it "
            "must reach (6 seeds would do); the threshold alone decides") in check.fails()


def test_with_one_seed_the_threshold_alone_decides_and_says_so(tmp_path):
    write_results(tmp_path / "before", {"aaa": {"miou": [0.70]}})
    baseline = save_baseline(tmp_path / "before", tmp_path / "b.json").path
    write_results(tmp_path / "after", {"aaa": {"miou": [0.68]}})
    (check,) = run_gate(tmp_path / "after", baseline, ["miou:max_drop=0.01"]).checks
    assert "cannot be judged with fewer than 2 seeds" in check.fails()


@pytest.mark.parametrize("rule, fails", [("miou:max_drop=5%", True), ("miou:max_drop=10%", False), ("miou:max_drop=0.06", False)])
def test_percentage_thresholds_are_of_the_baseline_mean(tmp_path, baseline_file, rule, fails):
    write_results(tmp_path / "after", shifted(BASE, "miou", -0.05))  # 7% of aaa's 0.71, 8% of bbb's 0.61
    result = run_gate(tmp_path / "after", baseline_file, [rule])
    assert (result.exit_code == 1) is fails


@pytest.mark.parametrize("factor, rule, code", [(1.2, "latency_ms:max_increase=10%", 1), (1.2, "latency_ms:max_increase=25%", 0),
                                                (0.5, "latency_ms:max_increase=0", 0)])
def test_max_increase_on_latency(tmp_path, baseline_file, factor, rule, code):
    write_results(tmp_path / "after", scaled(BASE, "latency_ms", factor))
    assert run_gate(tmp_path / "after", baseline_file, [rule]).exit_code == code


def test_a_missing_variant_fails_and_a_new_one_is_not_gated(tmp_path, capsys, baseline_file):
    write_results(tmp_path / "after", {"aaa": BASE["aaa"], "ccc": BASE["bbb"]})
    code, out, _ = gate_cli(capsys, tmp_path / "after", baseline_file, "miou:max_drop=0.01")
    assert code == 1
    assert "FAIL variant bbb: miou: variant missing from the results" in out
    assert "new, not gated: variant ccc (ccc)" in out


def test_a_failed_run_fails_its_variant(tmp_path, baseline_file):
    write_results(tmp_path / "after", BASE, failed=[("bbb", 2)])
    result = run_gate(tmp_path / "after", baseline_file, ["miou:max_drop=0.01"])
    assert [c.variant_id for c in result.failures] == ["bbb"]
    assert "1 of 8 run(s) failed (seed 2: RuntimeError: loss became NaN)" in result.failures[0].fails()


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("args, expected", [
    (["--rule", "miou>0.01"], ["rule 'miou>0.01'", "Valid forms: METRIC:max_drop=X"]),
    (["--rule", "miou:max_dorp=0.01"], ["did you mean max_drop?"]),
    (["--rule", "miou:max_drop=-1"], ["not a number >= 0"]),
    (["--rule", "miou:max_drop=1,noise=maybe"], ["unknown option 'noise=maybe'"]),
    (["--rule", "mIoU:max_drop=0.01"], ["unknown metric 'mIoU'", "did you mean 'miou'?", "Valid: miou, params, latency_ms"]),
    ([], ["no gate rules", "miou:max_drop=0.01"]),
])
def test_bad_rules_exit_2_with_the_valid_forms(tmp_path, capsys, baseline_file, args, expected):
    code = main(["gate", str(tmp_path / "before"), "--baseline", str(baseline_file), *args])
    err = capsys.readouterr().err
    assert code == 2
    for text in expected:
        assert text in err


def test_bad_folders_and_baselines_exit_2(tmp_path, capsys, baseline_file):
    (tmp_path / "empty").mkdir()
    write_results(tmp_path / "two", BASE, suite="x")
    write_results(tmp_path / "two", BASE, suite="y")
    (tmp_path / "not-a-baseline.json").write_text('{"hello": 1}')
    cases = [
        (tmp_path / "before", tmp_path / "nope.json", "baseline file"),
        (tmp_path / "before", tmp_path / "not-a-baseline.json", "is not a segbench baseline"),
        (tmp_path / "empty", baseline_file, "holds no run records"),
        (tmp_path / "two", baseline_file, "holds several suites"),
        (tmp_path / "nowhere", baseline_file, "does not exist"),
    ]
    for results, baseline, expected in cases:
        code, _, err = gate_cli(capsys, results, baseline, "miou:max_drop=0.01")
        assert code == 2 and expected in err, (results, baseline, err)
    assert main(["baseline", "save", str(tmp_path / "empty")]) == 2


# ----------------------------------------------------------------------------- rules from the suite


SUITE_WITH_GATE = """
name = "s"
[gate]
rules = ["miou:max_drop=0.01", "latency_ms:max_increase=50%"]
"""


def test_rules_come_from_the_suites_gate_table(tmp_path, capsys, baseline_file):
    write_results(tmp_path / "after", shifted(BASE, "miou", -0.05), suite_toml=SUITE_WITH_GATE)
    result = run_gate(tmp_path / "after", baseline_file)
    assert [str(r) for r in result.rules] == ["miou:max_drop=0.01", "latency_ms:max_increase=50%"]
    assert result.rules_source.endswith("suite.toml")
    assert {(c.variant_id, c.rule.metric) for c in result.failures} == {("aaa", "miou"), ("bbb", "miou")}


def test_the_suite_loader_checks_the_gate_table(write_suite):
    suite = load_suite(write_suite('[gate]\nrules = ["miou:max_drop=0.01", "latency_ms:max_increase=10%"]\n'), load_catalogue)
    assert [str(r) for r in suite.gate_rules] == ["miou:max_drop=0.01", "latency_ms:max_increase=10%"]
    bad = write_suite('[gate]\nrules = ["miou:max_drop=0.01", "miou<0.5", "latncy_ms:max_increase=1"]\nthreshold = 1\n', "bad.toml")
    with pytest.raises(SuiteError) as caught:
        load_suite(bad, load_catalogue)
    problems = caught.value.problems
    assert any(p.startswith("gate.rules[1]: rule 'miou<0.5'") and "Valid forms" in p for p in problems)
    assert any(p.startswith("gate.rules: ") and "did you mean 'latency_ms'?" in p for p in problems)
    assert any(p.startswith("gate.threshold: unknown key") for p in problems)
    with pytest.raises(SuiteError, match=r"gate: expected a table"):
        load_suite(write_suite('gate = "miou"\n', "flat.toml"), load_catalogue)


def test_rule_syntax():
    rule = parse_rule(" latency_ms : max_increase = 10% , noise=ignore ")
    assert (rule.metric, rule.direction, rule.threshold, rule.relative, rule.ignore_noise) == ("latency_ms", "max_increase", 0.1, True, True)
    assert str(rule) == "latency_ms:max_increase=10%,noise=ignore"
    assert rule.allowed_change(20.0) == pytest.approx(2.0)


# ----------------------------------------------------------------------------- reports


NASTY = "a|b\nc <script>alert(1)</script>"


def test_junit_has_one_testcase_per_rule_and_variant(tmp_path, capsys, baseline_file):
    write_results(tmp_path / "after", shifted(BASE, "miou", -0.05), labels={"aaa": NASTY})
    junit, markdown = tmp_path / "gate.xml", tmp_path / "gate.md"
    code, _, _ = gate_cli(capsys, tmp_path / "after", baseline_file, "miou:max_drop=0.01", "latency_ms:max_increase=10%",
                          extra=["--junit", str(junit), "--markdown", str(markdown)])
    assert code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 4 and {c.get("classname") for c in cases} == {"s"}
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {f"{NASTY} :: miou:max_drop=0.01", "variant bbb :: miou:max_drop=0.01"}
    assert suite.get("tests") == "4" and suite.get("failures") == "2"
    assert "0.7100 -> 0.6600" in next(c for c in cases if c.find("failure") is not None).find("failure").get("message")
    assert markdown.read_text().count("| ❌ fail |") == 2 and markdown.read_text().count("| ✅ pass |") == 2


def test_markdown_escapes_labels_from_suites(tmp_path, baseline_file):
    write_results(tmp_path / "after", BASE, labels={"aaa": NASTY})
    text = gate_markdown(run_gate(tmp_path / "after", baseline_file, ["miou:max_drop=0.01"]))
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    header = next(line for line in text.splitlines() if line.startswith("| result"))
    row = next(line for line in text.splitlines() if "alert" in line)
    assert "a\\|b c" in row
    assert len(re.split(r"(?<!\\)\|", row)) == len(header.split("|"))  # the label's pipe ends no cell
    assert escape_markdown("x\\|y") == "x\\\\\\|y"  # a backslash cannot un-escape the pipe
    ET.fromstring(gate_junit(run_gate(tmp_path / "after", baseline_file, ["miou:max_drop=0.01"])))


# ----------------------------------------------------------------------------- compare


def test_compare_marks_a_clear_improvement_better_and_identical_sets_equivalent(tmp_path, capsys):
    write_results(tmp_path / "a", BASE)
    write_results(tmp_path / "b", shifted(scaled(BASE, "latency_ms", 0.5), "miou", 0.05))
    comparison = compare_results(tmp_path / "a", tmp_path / "b")
    marks = {(v.id, f.name): f.mark for v in comparison.variants for f in v.fields}
    assert marks[("aaa", "miou")] == "better" and marks[("aaa", "latency_ms")] == "better"  # latency: lower is better
    assert marks[("aaa", "params")] == "inconclusive", "cost fields have no equivalence margin"
    miou = comparison.variants[0].fields[0]
    assert miou.comparison["diff"] == pytest.approx(0.05) and miou.comparison["test"] == "paired"
    same = compare_results(tmp_path / "a", tmp_path / "a" / "s")
    assert {f.mark for v in same.variants for f in v.fields if f.name == "miou"} == {"equivalent"}
    assert {f.mark for v in same.variants for f in v.fields if f.name == "latency_ms"} == {"inconclusive"}
    assert compare_results(tmp_path / "b", tmp_path / "a").variants[0].fields[0].mark == "worse"


def test_compare_cli_lists_one_sided_variants(tmp_path, capsys):
    write_results(tmp_path / "a", BASE)
    write_results(tmp_path / "b", {"aaa": BASE["aaa"], "ccc": BASE["bbb"]})
    markdown = tmp_path / "compare.md"
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--markdown", str(markdown)]) == 0
    out = capsys.readouterr().out
    assert "only in A:" in out and "variant bbb (bbb)" in out and "only in B:" in out and "variant ccc (ccc)" in out
    assert "| variant aaa | miou | 0.7100 | 0.7100 |" in markdown.read_text()


def test_compare_matches_by_label_when_the_ids_changed_and_says_so(tmp_path, capsys):
    write_results(tmp_path / "a", BASE)
    renamed = {"new-aaa": BASE["aaa"], "new-bbb": shifted(BASE, "miou", 0.05)["bbb"]}
    write_results(tmp_path / "b", renamed, labels={"new-aaa": "variant aaa", "new-bbb": "variant bbb"})
    comparison = compare_results(tmp_path / "a", tmp_path / "b")
    assert [v.id for v in comparison.variants] == ["new-aaa", "new-bbb"] and not comparison.only_a and not comparison.only_b
    assert comparison.relabelled == [("variant aaa", "aaa", "new-aaa"), ("variant bbb", "bbb", "new-bbb")]
    assert {v.label: v.fields[0].mark for v in comparison.variants} == {"variant aaa": "equivalent", "variant bbb": "better"}
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "2 variant(s) in both (2 matched by label)" in out and "variant bbb (A bbb, B new-bbb)" in out


def test_compare_shows_the_interval_an_equivalence_rests_on(tmp_path):
    """"equivalent" carries the (1 - 2 level) interval TOST put inside the margin, the
    same words as the report's (segbench.verdicts.outcome_text)."""
    from segbench.statistics import t_interval

    write_results(tmp_path / "a", BASE)
    noise = (0.001, -0.002, 0.003, 0.0, -0.001, 0.002, -0.002, 0.001)
    write_results(tmp_path / "b", {vid: {**f, "miou": [v + d for v, d in zip(f["miou"], noise)]} for vid, f in BASE.items()})
    miou = compare_results(tmp_path / "a", tmp_path / "b").variants[0].fields[0]
    assert miou.mark == "equivalent" and miou.equivalence_level == pytest.approx(0.05 / 2)  # Holm over 2 variants
    low, high = t_interval(noise, 0.95)
    assert (miou.equivalence_low, miou.equivalence_high) == pytest.approx((low, high))
    assert miou.mark_text == f"equivalent: 95% CI [{low:+.4f}, {high:+.4f}] within ±0.01"  # the default margin


def test_compare_calls_a_variant_with_a_failed_run_in_b_unstable_not_better(tmp_path):
    write_results(tmp_path / "a", BASE)
    write_results(tmp_path / "b", shifted(BASE, "miou", 0.05), failed=[("bbb", 1)])
    marks = {v.id: v.fields[0] for v in compare_results(tmp_path / "a", tmp_path / "b").variants}
    assert marks["aaa"].mark == "better"
    assert marks["bbb"].mark == "unstable" and marks["bbb"].mark_text == "unstable: seed 1 failed in B"


def test_compare_of_result_sets_sharing_no_variant_is_bad_input(tmp_path, capsys):
    write_results(tmp_path / "a", {"aaa": BASE["aaa"]})
    write_results(tmp_path / "b", {"zzz": BASE["aaa"]})
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "share no variant, by id or by label" in err and "'variant aaa'" in err and "'variant zzz'" in err


# ----------------------------------------------------------------------------- end to end


TINY_GATED = """
name = "g"
seeds = [0, 1]
[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = 4
[model]
decoder_channels = [16, 8, 8, 8, 8]
[train]
epochs = 1
batch_size = 4
[ablate]
"model.upsampler" = ["nearest", "bilinear"]
[gate]
rules = ["miou:max_drop=0.01", "latency_ms:max_increase=20%"]
"""


@pytest.fixture
def one_torch_thread():
    """Train on one thread: on a busy machine two threads spin against each other's
    processes and the tiny run takes many times longer."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_run_then_baseline_save_then_gate_passes(tmp_path, capsys, write_suite, one_torch_thread):
    results = tmp_path / "results"
    assert main(["run", str(write_suite(TINY_GATED, "g.toml")), "-o", str(results), "-q"]) == 0
    assert main(["baseline", "save", str(results), "-o", str(results / "baselines" / "g.json")]) == 0
    capsys.readouterr()
    code = main(["gate", str(results), "--baseline", str(results / "baselines" / "g.json")])  # rules from [gate]
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.strip().endswith("4 check(s), 2 rule(s) x 2 variant(s), against baseline " + str(results / "baselines" / "g.json"))


def test_a_variant_whose_id_changed_is_matched_by_its_label(tmp_path, capsys, baseline_file):
    # A new component default changes every id; the labels stay, and so does the gate.
    renamed = {"zzz": BASE["aaa"], "yyy": BASE["bbb"]}
    labels = {"zzz": "variant aaa", "yyy": "variant bbb"}
    write_results(tmp_path / "same", renamed, labels=labels)
    code, out, _ = gate_cli(capsys, tmp_path / "same", baseline_file, "miou:max_drop=0.01")
    assert code == 0 and "matched by label: variant aaa" in out and "aaa -> zzz" in out
    assert "new, not gated" not in out
    write_results(tmp_path / "worse", shifted(renamed, "miou", -0.05), labels=labels)
    code, out, _ = gate_cli(capsys, tmp_path / "worse", baseline_file, "miou:max_drop=0.01")
    assert code == 1 and "FAIL variant aaa: miou" in out
