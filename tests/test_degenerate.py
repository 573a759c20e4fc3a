"""Degenerate runs are named: a collapsed model (every foreground class 0), a suite whose
variants all predict the same, or a primary metric constant across variants never get a
confident outcome. The report and the terminal say so first, the comparison's outcome is
``degenerate`` with its reason, the gate fails the candidate, and nothing crashes."""

from __future__ import annotations

import pytest

from segbench.cli import main
from segbench.degenerate import collapsed_reason, suite_reason
from segbench.gate import run_gate, save_baseline
from segbench.report import write_report
from segbench.store import ResultStore

CLASSES = ["background", "circle", "square"]


def record(variant_id, label, seed, miou, per_class, per_image=None, predictions="same"):
    return {
        "variant_id": variant_id, "label": label, "seed": seed, "status": "ok", "factors": {}, "classes": CLASSES,
        "is_baseline": variant_id == "a", "wall_seconds": 10.0, "curves": {"epoch": [1], "miou": [miou]},
        "metrics": {"miou": miou}, "higher_is_better": {"miou": True},
        "per_class": {"miou": dict(zip(CLASSES, per_class))},
        "per_image": {"miou": per_image if per_image is not None else [miou, miou]},
        "samples": {"predictions": predictions}, "cost": {"params": 10, "latency_ms": 1.0},
    }


META = {"name": "d", "description": "", "path": "d.toml", "text": "", "baseline_id": "a", "variant_order": ["a", "b", "c"],
        "primary": "miou", "metrics": ["miou"], "stats": {"margin": 0.02}}


def healthy(variant_id, label, seed, miou):
    return record(variant_id, label, seed, miou, [0.9, miou, miou - 0.1], [miou, miou + 0.01], predictions=f"{variant_id}{seed}")


def collapsed(variant_id, label, seed):
    # Background everywhere: mIoU is background's IoU over three classes, and it is close to the others'.
    return record(variant_id, label, seed, 0.30 + seed / 1000, [0.9 + seed / 1000, 0.0, 0.0], predictions=f"{variant_id}{seed}")


def test_a_collapsed_run_and_a_suite_with_one_answer_are_named():
    assert collapsed_reason(collapsed("b", "b", 0), "miou") == "every foreground class scores miou 0"
    assert collapsed_reason(healthy("b", "b", 0, 0.5), "miou") is None
    undefined = record("b", "b", 0, 0.3, [0.9, None, 0.0])  # a class the data never shows is left out
    assert collapsed_reason(undefined, "miou") == "every foreground class scores miou 0"
    assert collapsed_reason({**undefined, "status": "failed"}, "miou") is None
    constant = [record(v, v, s, 0.5, [0.9, 0.4, 0.3], predictions=f"{v}{s}") for v in "ab" for s in range(2)]
    assert suite_reason(constant, "miou") == "miou is 0.5000 in every run of every variant"
    same = [record(v, v, s, 0.5 + s / 100, [0.9, 0.4, 0.3], [0.1, 0.2]) for v in "ab" for s in range(2)]
    assert suite_reason(same, "miou").startswith("every run of every variant predicts the same")
    differ = same[:-1] + [record("b", "b", 1, 0.51, [0.9, 0.4, 0.3], [0.1, 0.2], predictions="other")]
    assert suite_reason(differ, "miou") is None


def test_a_collapsed_candidate_is_degenerate_first_in_every_output_and_never_equivalent(tmp_path):
    # The collapsed candidate's mIoU is within the margin of a collapsed-looking baseline: equivalent by the numbers alone.
    offsets = (0.001, -0.002, 0.0015, 0.0, -0.001, 0.002, 0.0005)  # 7 seeds: enough to decide under Holm over 2
    records = [healthy("a", "nearest", s, 0.30 + s / 1000) for s in range(7)]
    records += [collapsed("b", "bilinear", s) for s in range(7)]
    records += [healthy("c", "bicubic", s, 0.30 + s / 1000 + offset) for s, offset in enumerate(offsets)]
    report = write_report(records, META, tmp_path / "report")
    rows = report["summary"].set_index("variant")
    assert rows.loc["bilinear", "verdict"] == "degenerate"
    assert rows.loc["bilinear", "reason"] == "bilinear: every foreground class scores miou 0 in seeds 0, 1, 2, 3, 4, 5, 6"
    assert rows.loc["bicubic", "verdict"] == "equivalent", "the healthy candidate keeps its outcome"
    first = report["text"].splitlines()[1]
    assert first.startswith("- DEGENERATE: bilinear: every foreground class scores miou 0")
    markdown = (tmp_path / "report" / "summary.md").read_text()
    assert markdown.index("DEGENERATE") < markdown.index("| variant |")
    assert "**degenerate**: bilinear: every foreground" in markdown
    page = (tmp_path / "report" / "index.html").read_text()
    assert page.index("DEGENERATE") < page.index("<table") and "<tr class='degenerate'>" in page
    assert "bilinear vs nearest: degenerate: bilinear: every foreground class scores miou 0" in report["text"]


def test_a_collapsed_baseline_makes_every_comparison_degenerate(tmp_path):
    records = [collapsed("a", "nearest", s) for s in range(2)] + [healthy("b", "bilinear", s, 0.6) for s in range(2)]
    rows = write_report(records, {**META, "variant_order": ["a", "b"]}, tmp_path)["summary"]
    assert list(rows["verdict"]) == ["baseline", "degenerate"]
    assert rows.loc[1, "reason"].startswith("nearest: every foreground class scores miou 0")


def test_a_constant_metric_makes_the_whole_suite_degenerate_and_the_report_still_renders(tmp_path):
    """A 2x2 grid whose variants all predict one class: Δ +0.0000 [+0.0000, +0.0000] was
    "equivalent"; now every comparison is degenerate and the report says why, at the top."""
    meta = {**META, "variant_order": ["a", "b", "c", "d"]}
    records = [record(v, f"v{v}", s, 0.25, [1.0, 0.0, 0.0], [0.25, 0.25]) for v in "abcd" for s in range(3)]
    report = write_report(records, meta, tmp_path)
    assert list(report["summary"]["verdict"]) == ["baseline", "degenerate", "degenerate", "degenerate"]
    assert report["text"].splitlines()[1] == ("- DEGENERATE: miou is 0.2500 in every run of every variant; no comparison "
                                              "can be trusted.")
    assert "equivalent" not in report["text"] and "equivalent" not in report["wide_text"].split("\n\n")[-1]
    assert (tmp_path / "index.html").is_file() and (tmp_path / "summary.md").is_file() and not report["failures"]


def stored(item):
    """A record as the store keeps it (its sample predictions are encoded arrays, none here)."""
    return {key: value for key, value in item.items() if key != "samples"}


def test_the_gate_fails_a_collapsed_candidate_whatever_its_numbers(tmp_path, capsys):
    before, after = ResultStore(tmp_path / "before", "d"), ResultStore(tmp_path / "after", "d")
    for seed in range(3):
        before.write(stored(healthy("a", "nearest", seed, 0.30 + seed / 1000)))
        after.write(stored({**collapsed("a", "nearest", seed), "metrics": {"miou": 0.30 + seed / 1000}}))  # the same mIoU, collapsed
    baseline = save_baseline(tmp_path / "before", tmp_path / "baseline.json").path
    result = run_gate(tmp_path / "after", baseline, ["miou:max_drop=0.05"])
    assert not result.passed and result.exit_code == 1
    assert result.failures[0].reason == "degenerate: nearest: every foreground class scores miou 0 in seeds 0, 1, 2"
    assert main(["gate", str(tmp_path / "after"), "--baseline", str(baseline), "--rule", "miou:max_drop=0.05"]) == 1
    assert "FAIL nearest: miou: degenerate: nearest: every foreground" in capsys.readouterr().out


@pytest.mark.parametrize("per_class", [[0.9, None, None], [None, None, None], []])
def test_runs_without_foreground_values_are_not_judged_and_do_not_crash(tmp_path, per_class):
    records = [record(v, v, s, 0.5 + s / 100 + (v == "b") / 50, per_class[: len(CLASSES)], predictions=f"{v}{s}")
               for v in "ab" for s in range(2)]
    for item in records:
        item["per_class"]["miou"] = dict(zip(CLASSES, per_class))
    report = write_report(records, {**META, "variant_order": ["a", "b"]}, tmp_path)
    assert report["summary"].loc[1, "verdict"] != "degenerate" and not report["failures"]
