"""The shipped examples (docs/examples/upsampling, the demo, and docs/examples/losses: each a
whole results folder, records and report) work with every reading command, without
training, and their reports are what the current code renders from their records. Each
command runs on a copy, so the tracked files stay as they are."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest

from segbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "docs" / "examples" / "upsampling"
DEMO_RUNS = len(list(SHIPPED.glob("runs/*/seed-*/record.json")))
RUNS = {"upsampling": DEMO_RUNS, "losses": 18}  # each example's records: the demo's adaptive seeds, the losses pilot's 6 x 3
TABLES = ("summary.csv", "summary.md", "summary.txt", "summary-wide.txt", "runs.csv", "per_class.csv")
DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")  # the plots' bytes vary with matplotlib's version


@pytest.fixture
def shipped(tmp_path):
    copy = tmp_path / "upsampling"
    shutil.copytree(SHIPPED, copy)
    return copy


def summary_rows(folder: Path) -> dict:
    with (folder / "report" / "summary.csv").open() as f:
        return {row["variant"]: row for row in csv.DictReader(f)}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_shipped_folder_holds_the_records_and_the_whole_report(name):
    folder = SHIPPED.parent / name
    assert len(list((folder / "runs").glob("*/seed-*/record.json"))) == RUNS[name]
    for table in (*TABLES, "index.html", "plots/metrics.png", "plots/predictions.png"):
        assert (folder / "report" / table).is_file(), table
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size < 2_500_000, f"{size} bytes: small enough to commit"


@pytest.mark.parametrize("name", sorted(RUNS))
def test_report_rebuilds_the_shipped_report_exactly(name, tmp_path, capsys):
    folder = SHIPPED.parent / name
    copy = tmp_path / name
    shutil.copytree(folder, copy)
    assert main(["report", str(copy)]) == 0
    assert capsys.readouterr().out.startswith("Findings:\n- ")
    for table in TABLES:
        assert (copy / "report" / table).read_text() == (folder / "report" / table).read_text(), (
            f"docs/examples/{name}/report/{table} is stale: run `segbench report docs/examples/{name}`")
    page, shipped_page = ((f / "report" / "index.html").read_text() for f in (copy, folder))
    assert DATA_URI.sub("", page) == DATA_URI.sub("", shipped_page)


def test_the_demo_decides_its_comparison(shipped, capsys):
    assert main(["report", str(shipped)]) == 0
    assert capsys.readouterr().out.startswith("Findings:\n- upsampler=bilinear vs upsampler=nearest: equivalent (Δ ")
    assert summary_rows(shipped)["upsampler=bilinear"]["verdict"] == "equivalent"


def test_the_demos_design_decides_nine_times_in_ten_at_the_spread_its_runs_show():
    """The issue: choose the demo's seeds by simulation from the observed spread, so that every comparison is
    decided with probability at least 0.9. The spread is the shipped runs' own paired SD."""
    import numpy as np

    from segbench.plugins import load_catalogue
    from segbench.simulation import simulate
    from segbench.suite import load_suite

    suite = load_suite(ROOT / "suites" / "upsampling.toml", load_catalogue)
    by_seed = {}
    with (SHIPPED / "report" / "runs.csv").open() as f:
        for row in csv.DictReader(f):
            by_seed.setdefault(row["label"], {})[int(row["seed"])] = float(row["miou"])
    nearest, bilinear = by_seed["upsampler=nearest"], by_seed["upsampler=bilinear"]
    paired_sd = float(np.std([bilinear[s] - nearest[s] for s in nearest if s in bilinear], ddof=1))
    result = simulate([0.0] * (len(suite.variants) - 1), suite.design, suite.stats, sd=paired_sd,
                      margin=suite.stats.margin_for("miou"), suites=2000, seed=7)
    assert result.familywise_rate("inconclusive") <= 0.1, (paired_sd, result.rates())


@pytest.mark.parametrize("name", sorted(RUNS))
def test_doctor_finds_every_run_sound(name, capsys):
    folder = SHIPPED.parent / name
    assert main(["doctor", str(folder)]) == 0  # doctor only reads
    assert capsys.readouterr().out.startswith(f"{folder}: {RUNS[name]} finished run(s), 0 damaged file(s), 0 run(s) to redo")


def test_compare_and_gate_read_it(shipped, tmp_path, capsys):
    assert main(["compare", str(shipped), str(shipped)]) == 0
    assert "2 variant(s) in both:" in capsys.readouterr().out
    baseline = tmp_path / "baseline.json"
    assert main(["baseline", "save", str(shipped), "-o", str(baseline)]) == 0
    assert main(["gate", str(shipped), "--baseline", str(baseline)]) == 0  # the suite's own [gate] rule
    assert "gate passed: 2 check(s), 1 rule(s) x 2 variant(s)" in capsys.readouterr().out


def test_plan_reads_it_and_prints_the_command(shipped, capsys):
    assert main(["plan", str(ROOT / "suites" / "upsampling.toml"), "--from", str(shipped)]) == 0
    out = capsys.readouterr().out
    bilinear = summary_rows(shipped)["upsampler=bilinear"]
    delta = re.escape(f"{float(bilinear['delta']):+.4f}")
    assert re.search(rf"upsampler=bilinear +{int(float(bilinear['paired_seeds']))} +{delta} ", out), out
    assert (re.search(r"\n  segbench run .*suites/upsampling.toml --set 'seeds=\[0(, \d+)*\]'\n", out)
            or "The suite already runs that many seeds." in out), out


def test_export_sends_the_answer_to_mlflow(shipped, tmp_path, monkeypatch, capsys):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = (tmp_path / "mlruns").as_uri()
    assert main(["export", "mlflow", str(shipped), "--tracking-uri", store, "--experiment", "shipped"]) == 0
    assert f"{DEMO_RUNS} run(s) logged" in capsys.readouterr().out
    client = mlflow.MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("shipped").experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    params, metrics, tags = parent.data.params, parent.data.metrics, parent.data.tags
    assert params["stats.margin"] == "0.01" and params["suite.seeds.min"] == "5" and params["primary_metric"] == "miou"
    assert params["suite.gate.rules"] == '["miou:max_drop=0.01"]' and params["overrides"] == "[]"
    rows = summary_rows(shipped)
    bilinear = rows["upsampler=bilinear"]
    for name in ("delta", "delta_ci_low", "delta_ci_high", "p_value", "p_adjusted", "equivalence_ci_low", "equivalence_ci_high"):
        assert metrics[f"upsampler_bilinear/{name}"] == pytest.approx(float(bilinear[name]), rel=1e-12), name
    assert metrics["upsampler_nearest/miou_mean"] == pytest.approx(float(rows["upsampler=nearest"]["miou_mean"]))
    assert "upsampler_nearest/delta" not in metrics  # the baseline is not compared with itself
    assert tags["segbench.outcome.upsampler_bilinear"] == bilinear["outcome"]
    assert tags["segbench.outcome.upsampler_bilinear"].startswith("equivalent: ") and tags["segbench.outcome.upsampler_bilinear"].endswith("within ±0.01")
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.csv", "summary.md", "index.html", "per_class.csv"} <= artifacts
