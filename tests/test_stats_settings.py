"""[stats] and adaptive seeds in a suite: defaults, overrides and every bad input (exit 2,
naming the key and what is valid)."""

import pytest

from segbench.cli import main
from segbench.design import DEFAULT_MARGIN
from segbench.errors import SuiteError
from segbench.plugins import load_catalogue
from segbench.schema import MAX_SEEDS
from segbench.suite import load_suite


def load(path, **kwargs):
    return load_suite(path, load_catalogue, **kwargs)


def problems_of(path, **kwargs):
    with pytest.raises(SuiteError) as caught:
        load(path, **kwargs)
    return caught.value.problems


def test_defaults_are_holm_alpha_005_and_a_margin_of_001(write_suite):
    suite = load(write_suite('name = "s"\n'))
    assert (suite.stats.alpha, suite.stats.correction, suite.stats.power) == (0.05, "holm", 0.8)
    assert suite.stats.margin_for("miou") == DEFAULT_MARGIN == 0.01
    assert not suite.design.adaptive and suite.design.looks == (3,)


def test_margin_per_metric_and_adaptive_seeds(write_suite):
    suite = load(write_suite("""
        name = "s"
        seeds = { min = 3, max = 8, step = 2 }
        [eval]
        metrics = ["miou", "boundary_iou"]
        [stats]
        margin = { boundary_iou = 0.02 }
        correction = "none"
    """))
    assert suite.stats.margin_for("boundary_iou") == 0.02 and suite.stats.margin_for("miou") == DEFAULT_MARGIN
    assert suite.design.adaptive and suite.design.looks == (3, 5, 7, 8) and suite.seeds == list(range(8))
    assert suite.stats.correction == "none"


def test_set_overrides_seeds_and_stats_from_the_command_line(write_suite):
    suite = load(write_suite('name = "s"\nseeds = [0, 1]\n'), overrides={"seeds": {"min": 2, "max": 5}, "stats.margin": 0.03})
    assert suite.design.adaptive and suite.design.max_seeds == 5 and suite.stats.margin == 0.03


@pytest.mark.parametrize("text, where, says", [
    ("[stats]\nmargin = -0.01", "stats.margin", "a number > 0"),
    ('[stats]\nmargin = "small"', "stats.margin", "a number > 0"),
    ("[stats]\nmargin = nan", "stats.margin", "a number > 0"),
    ("[stats]\nmargin = { miou = 0 }", "stats.margin.miou", "a number > 0"),
    ("[stats]\nmargin = { mIoU = 0.01 }", "stats.margin.mIoU", "did you mean 'miou'"),
    ('[stats]\ncorrection = "bonferroni"', "stats.correction", "Valid: holm, none"),
    ("[stats]\nalpha = 0.7", "stats.alpha", "> 0 and < 0.5 (a level such as 0.05)"),
    ("[stats]\npower = 1.2", "stats.power", "> 0 and < 1 (a probability such as 0.8)"),
    ("[stats]\nmargn = 0.01", "stats.margn", "did you mean stats.margin"),
    ("seeds = { min = 8, max = 4 }", "seeds", "min = 8 is above max = 4"),
    (f"seeds = {{ min = 3, max = {MAX_SEEDS + 1} }}", "seeds.max", f"from 2 to {MAX_SEEDS}"),
    ("seeds = { min = 1, max = 4 }", "seeds.min", ">= 2"),
    ("seeds = { min = 3, max = 6, step = 0 }", "seeds.step", ">= 1"),
    ('seeds = { min = 3, max = 6, spending = "linear" }', "seeds.spending", "Valid: obrien_fleming, pocock"),
    ("seeds = { min = 3, mx = 6 }", "seeds.mx", "did you mean seeds.max"),
    ("seeds = { min = 3 }", "seeds.max", "required: an integer from 2 to"),
    ("seeds = [0, 1, 0]", "seeds", "got repeats: [0, 1, 0]"),
    ('seeds = "0, 1"', "seeds", "expected a non-empty list of distinct integers or { min = 3, max = 12 }"),
    ("[stats]\nmargin = { miou = -1, dice = 0 }", "stats.margin.dice", "a number > 0"),
    ("seeds = [0, 4294967296]", "seeds[1]", "from 0 to 4294967295"),
])
def test_bad_stats_and_seeds_are_named_with_what_is_valid(write_suite, text, where, says):
    problems = problems_of(write_suite(f'name = "s"\n{text}\n'))
    assert any(p.startswith(f"{where}:") and says in p for p in problems), problems


def test_bad_stats_exit_2_before_training(write_suite, capsys, tmp_path):
    suite = write_suite('name = "s"\n[stats]\nmargin = -1\n')
    assert main(["run", str(suite), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "stats.margin" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_validate_prints_the_design_and_the_statistics(write_suite, capsys):
    suite = write_suite("""
        name = "s"
        seeds = { min = 3, max = 6 }
        [ablate]
        "model.upsampler" = ["nearest", "bilinear"]
    """)
    assert main(["validate", str(suite)]) == 0
    out = capsys.readouterr().out
    assert "2 variant(s) x 3 to 6 seeds = 6 to 12 run(s)" in out
    assert "alpha 0.05, correction holm, equivalence margin ±0.01; adaptive seeds: 3 to 6" in out
