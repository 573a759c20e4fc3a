"""Tests of the segbench-example-reporter plugin on a hand-made summary (no training):
the ranking follows the metric's direction, the file and the section say the same, and
the section escapes the labels. (A real suite through it: segbench's
tests/test_example_extensions.py.)"""

import json

import pandas as pd

import segbench
import segbench_example_reporter
from segbench import ReportContext

SUMMARY = pd.DataFrame({"variant": ["<b>base</b>", "wide", "failed"], "variant_id": ["a", "b", "c"],
                        "error_mean": [0.30, 0.20, float("nan")]})


def written(tmp_path, higher_is_better):
    meta = {"name": "s", "primary": "error", "higher_is_better": {"error": higher_is_better}}
    context = ReportContext(records=[], meta=meta, runs=None, summary=SUMMARY, report_dir=tmp_path / "report", suite_dir=tmp_path)
    sections = segbench_example_reporter.leaderboard(context)
    return json.loads((tmp_path / "report" / "leaderboard.json").read_text()), sections


def test_the_hook_registers_a_default_reporter():
    register = segbench.Registrar("segbench-example-reporter", "test")
    segbench_example_reporter.segbench_reporters(register=register)
    assert [(r.name, r.default) for r in register.reporters] == [("leaderboard", True)]


def test_lower_is_better_ranks_the_smallest_first_and_leaves_out_variants_without_a_value(tmp_path):
    board, _ = written(tmp_path, higher_is_better=False)
    assert [(e["rank"], e["variant_id"], e["mean"]) for e in board["ranking"]] == [(1, "b", 0.20), (2, "a", 0.30)]
    board, _ = written(tmp_path, higher_is_better=True)
    assert [e["variant_id"] for e in board["ranking"]] == ["a", "b"]


def test_the_section_escapes_labels(tmp_path):
    _, (section,) = written(tmp_path, higher_is_better=False)
    assert section.title == "Leaderboard"
    assert "&lt;b&gt;base&lt;/b&gt;" in section.html and "<b>base" not in section.html
