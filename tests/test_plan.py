"""`segbench plan`: the seeds each comparison needs, from the spread of earlier results."""

import json

import numpy as np

from segbench.cli import main
from segbench.plugins import load_catalogue
from segbench.planning import MAX_LISTED_SEEDS
from segbench.power import expected_difference_power, expected_equivalence_power
from segbench.runner import run_prepared
from segbench.suite import load_suite
from test_adaptive_runs import StandInExecutor

SUITE = """
name = "planned"
seeds = [0, 1, 2, 3]
baseline = { "model.upsampler" = "nearest" }
[stats]
margin = 0.02
[ablate]
"model.upsampler" = ["nearest", "bicubic", "nearest_exact"]
"""


def pilot(tmp_path, write_suite, text=SUITE):
    path = write_suite(text)
    run_prepared(load_suite(path, load_catalogue), tmp_path / "results", quiet=True, cache_dir=tmp_path / "cache",
                 executor=StandInExecutor())
    return path


def test_plan_gives_the_seeds_to_detect_the_effect_and_to_show_equivalence(tmp_path, write_suite, capsys):
    suite = pilot(tmp_path, write_suite)
    assert main(["plan", str(suite), "--from", str(tmp_path / "results"), "--effect", "0.05", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["schema"] == 1 and plan["metric"] == "miou" and plan["comparisons"] == 2 and plan["level"] == 0.025
    rows = {row["variant"]: row for row in plan["variants"]}
    bicubic = rows["upsampler=bicubic"]
    assert bicubic["pilot_seeds"] == 4
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "results" / "planned" / "runs").glob("*/seed-*/record.json"))]
    by = {(r["label"], r["seed"]): r["metrics"]["miou"] for r in records}
    diffs = np.array([by[("upsampler=bicubic", s)] - by[("upsampler=nearest", s)] for s in range(4)])
    assert bicubic["paired_sd"] == np.std(diffs, ddof=1)
    # the decision rule's power (t-test and sign flips), averaged over the true SD given 4 pilot seeds
    n, sd = bicubic["seeds_to_detect"], bicubic["paired_sd"]
    assert expected_difference_power(n, 0.05, sd, 3, 0.025) >= 0.8 > expected_difference_power(n - 1, 0.05, sd, 3, 0.025)
    m = bicubic["seeds_to_show_equivalence"]
    assert expected_equivalence_power(m, sd, 3, 0.02, 0.025) >= 0.8 > expected_equivalence_power(m - 1, sd, 3, 0.02, 0.025)
    quiet = rows["upsampler=nearest_exact"]
    assert quiet["paired_sd"] < sd and quiet["seeds_to_show_equivalence"] <= m


def test_plan_prints_a_table(tmp_path, write_suite, capsys):
    suite = pilot(tmp_path, write_suite)
    assert main(["plan", str(suite), "--from", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "seeds to detect ±0.02" in out and "seeds to show equivalence ±0.02" in out and "upsampler=bicubic" in out


def test_plan_ends_with_the_runs_it_would_take_their_time_and_the_command(tmp_path, write_suite, capsys):
    suite = pilot(tmp_path, write_suite)
    assert main(["plan", str(suite), "--from", str(tmp_path / "results"), "--effect", "0.2", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    step = plan["next"]
    needed = max(max(r["seeds_to_detect"], r["seeds_to_show_equivalence"]) for r in plan["variants"])
    assert step["seeds"] == max(needed, 4) and step["more_runs"] == (step["seeds"] - 4) * 3
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "planned" / "runs").glob("*/seed-*/record.json")]
    walls = [r["wall_seconds"] for r in records]
    assert step["seconds_per_run"] == sum(walls) / len(walls) and step["seconds"] == step["more_runs"] * step["seconds_per_run"]
    assert main(["plan", str(suite), "--from", str(tmp_path / "results"), "--effect", "0.2"]) == 0
    out = capsys.readouterr().out
    if step["seeds"] > MAX_LISTED_SEEDS:  # the pilot's equivalence needs more: no command to paste, the way on instead
        assert step["command"] is None and f"That is more than {MAX_LISTED_SEEDS} seeds" in out
        return
    seeds = ", ".join(str(s) for s in range(step["seeds"]))
    assert step["command"] == f"segbench run {suite} --set 'seeds=[{seeds}]'"
    if step["more_runs"]:
        assert f"{step['seeds']} seeds per variant, {step['more_runs']} more run(s) (≈ " in " ".join(out.split())
        assert f"\n  {step['command']}\n" in out  # one line, ready to paste


def test_the_command_keeps_the_suites_seeds_and_adds_new_ones():
    from types import SimpleNamespace

    from segbench.planning import next_step

    suite = SimpleNamespace(seeds=[7, 0, 3], variants=[1, 2], path="s.toml")
    rows = [{"seeds_to_detect": 5, "seeds_to_show_equivalence": 4}]
    step = next_step(suite, rows, 30.0)
    assert step == {"seeds": 5, "more_runs": 4, "seconds_per_run": 30.0, "seconds": 120.0,
                    "command": "segbench run s.toml --set 'seeds=[7, 0, 3, 1, 2]'"}
    assert next_step(suite, [{"seeds_to_detect": None, "seeds_to_show_equivalence": 4}], 30.0)["command"] is None
    assert next_step(suite, [{"seeds_to_detect": 500, "seeds_to_show_equivalence": 4}], None)["command"] is None


def test_too_few_seeds_say_how_many_are_needed(tmp_path, write_suite, capsys):
    suite = pilot(tmp_path, write_suite, SUITE.replace("seeds = [0, 1, 2, 3]", "seeds = [0, 1]"))
    assert main(["plan", str(suite), "--from", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert "needs at least 3 finished seeds" in err and "upsampler=bicubic: 2" in err


def test_bad_requests_exit_2(tmp_path, write_suite, capsys):
    suite = pilot(tmp_path, write_suite)
    assert main(["plan", str(suite), "--from", str(tmp_path / "results"), "--effect", "-1"]) == 2
    assert "--effect" in capsys.readouterr().err
    assert main(["plan", str(suite), "--from", str(tmp_path / "results"), "--power", "1.5"]) == 2
    assert "--power" in capsys.readouterr().err
    assert main(["plan", str(suite), "--from", str(tmp_path / "nowhere")]) == 2
    assert "do not exist" in capsys.readouterr().err


def test_plan_reads_a_reports_runs_csv(tmp_path, write_suite, capsys):
    suite = pilot(tmp_path, write_suite)
    assert main(["plan", str(suite), "--from", str(tmp_path / "results"), "--json"]) == 0
    from_folder = json.loads(capsys.readouterr().out)
    runs_csv = tmp_path / "results" / "planned" / "report" / "runs.csv"
    assert main(["plan", str(suite), "--from", str(runs_csv), "--json"]) == 0
    from_csv = json.loads(capsys.readouterr().out)
    assert from_csv["variants"] == from_folder["variants"]
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert main(["plan", str(suite), "--from", str(tmp_path / "other.csv")]) == 2
    assert "not a segbench runs.csv" in capsys.readouterr().err
