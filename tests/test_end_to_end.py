"""A tiny suite run end to end: records, summary, report, resume, failure isolation."""

import json

import pandas as pd
import pytest

from segbench.cli import main
from segbench.store import read_json


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Run the tiny suite once for the whole module (training is the slow part)."""
    from conftest import TINY

    root = tmp_path_factory.mktemp("e2e")
    suite = root / "tiny.toml"
    suite.write_text(TINY)
    output = root / "results"
    cache = root / "cache"
    code = main(["run", str(suite), "--output", str(output), "--cache-dir", str(cache), "--quiet"])
    return {"code": code, "suite": suite, "output": output, "cache": cache}


def test_exit_code_zero_and_one_record_per_run(finished):
    assert finished["code"] == 0
    records = sorted((finished["output"] / "tiny" / "runs").glob("*/seed-*/record.json"))
    assert len(records) == 4
    assert not list((finished["output"] / "tiny").rglob("*.tmp"))


def test_record_contents(finished):
    record = read_json(next((finished["output"] / "tiny" / "runs").glob("*/seed-0/record.json")))
    assert record["status"] == "ok" and record["seed"] == 0 and record["suite"] == "tiny"
    assert record["config"]["train"]["epochs"] == 2
    assert record["curves"]["epoch"] == [1, 2]
    assert len(record["curves"]["train_loss"]) == 2 and len(record["curves"]["miou"]) == 2
    assert set(record["metrics"]) == {"miou", "dice", "pixel_accuracy"}
    assert all(0.0 <= value <= 1.0 for value in record["metrics"].values())
    assert record["metrics"]["miou"] == record["curves"]["miou"][-1]
    assert len(record["per_image"]["miou"]) == 8  # num_val
    assert record["classes"][0] == "background" and set(record["per_class"]["miou"]) == set(record["classes"])
    assert record["environment"]["packages"]["torch"]
    assert record["device"] == "cpu"
    cost = record["cost"]
    assert cost["params"] > 0 and cost["flops_per_image"] > 0 and cost["latency_ms"] > 0
    assert record["wall_seconds"] > 0


def test_summary_has_a_row_per_variant_with_mean_and_std(finished):
    report = finished["output"] / "tiny" / "report"
    summary = pd.read_csv(report / "summary.csv")
    runs = pd.read_csv(report / "runs.csv")
    assert list(summary["variant"]) == ["upsampler=nearest", "upsampler=transposed(kernel_size=4)"]
    assert list(summary["runs"]) == [2, 2]
    for _, row in summary.iterrows():
        mine = runs[runs["variant_id"] == row["variant_id"]]
        assert row["miou_mean"] == pytest.approx(mine["miou"].mean())
        assert row["miou_std"] == pytest.approx(mine["miou"].std())
    assert summary.loc[0, "verdict"] == "baseline"
    transposed = summary.loc[1]
    paired = runs[runs["label"] == transposed["variant"]].set_index("seed")["miou"] - runs[runs["label"] == "upsampler=nearest"].set_index("seed")["miou"]
    assert transposed["delta"] == pytest.approx(paired.mean())


def test_report_is_self_contained_html_with_the_plot(finished):
    report = finished["output"] / "tiny" / "report"
    page = (report / "index.html").read_text()
    assert (report / "plots" / "metrics.png").stat().st_size > 1000
    assert "data:image/png;base64," in page
    assert "upsampler=transposed(kernel_size=4)" in page
    assert "<link" not in page and "src='http" not in page


def test_same_suite_twice_gives_identical_metrics(finished, tmp_path):
    code = main(["run", str(finished["suite"]), "--output", str(tmp_path), "--cache-dir", str(finished["cache"]), "--quiet"])
    assert code == 0
    before = pd.read_csv(finished["output"] / "tiny" / "report" / "runs.csv")
    after = pd.read_csv(tmp_path / "tiny" / "report" / "runs.csv")
    pd.testing.assert_series_equal(before["miou"], after["miou"])


def test_rerunning_skips_finished_runs(finished, capsys):
    records = sorted((finished["output"] / "tiny" / "runs").glob("*/seed-*/record.json"))
    page = finished["output"] / "tiny" / "report" / "index.html"
    stamps = [path.stat().st_mtime_ns for path in records + [page]]
    first_summary = (finished["output"] / "tiny" / "report" / "summary.txt").read_text()
    code = main(["run", str(finished["suite"]), "--output", str(finished["output"]), "--cache-dir", str(finished["cache"])])
    assert code == 0
    assert [path.stat().st_mtime_ns for path in records + [page]] == stamps, "nothing retrained, nothing redrawn"
    out, err = capsys.readouterr()
    assert err.count("finished record exists") == 4 and first_summary in out


def test_a_failing_run_is_recorded_and_the_others_finish(tmp_path, write_suite, capsys):
    plugin = tmp_path / "exploding.py"
    plugin.write_text(
        "import torch\nfrom segbench import hookimpl\n\n"
        "class Exploding(torch.nn.Module):\n"
        "    calls = 0\n\n"
        "    def forward(self, logits, target):\n"
        "        self.calls += 1  # the first call is preflight's contract check\n"
        "        if self.calls > 1:\n"
        "            raise RuntimeError('boom from the loss')\n"
        "        return torch.nn.functional.cross_entropy(logits, target)\n\n"
        "def build(mode, num_classes, ignore_index):\n    '''Fails in training.'''\n    return Exploding()\n\n"
        "@hookimpl\ndef segbench_losses(register):\n    register.add_loss('exploding', build)\n"
    )
    from conftest import TINY

    suite = write_suite(TINY.replace('"model.upsampler" = ["nearest", { name = "transposed", kernel_size = 4 }]', '"train.loss" = ["ce", "exploding"]').replace("seeds = [0, 1]", "seeds = [0]").replace("epochs = 2", "epochs = 1"), "failing.toml")
    code = main(["run", str(suite), "-p", str(plugin), "--output", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "1 run(s) failed" in err and "boom from the loss" in err
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "tiny" / "runs").glob("*/seed-*/record.json")]
    by_status = {r["status"]: r for r in records}
    assert set(by_status) == {"ok", "failed"}
    assert by_status["failed"]["error"]["type"] == "RuntimeError"
    assert "Traceback" in by_status["failed"]["error"]["traceback"]
    page = (tmp_path / "out" / "tiny" / "report" / "index.html").read_text()
    assert "Failed runs" in page and "boom from the loss" in page


def test_report_rebuilt_from_the_records_alone_equals_the_original(finished, tmp_path, capsys):
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(finished["output"], copy)
    report = copy / "tiny" / "report"
    original = {name: (report / name).read_bytes() for name in ("runs.csv", "summary.csv", "summary.md", "per_class.csv")}
    plots = sorted(p.name for p in (report / "plots").iterdir())
    shutil.rmtree(report)
    assert main(["report", str(copy)]) == 0
    assert "report:" in capsys.readouterr().out
    for name, content in original.items():
        assert (report / name).read_bytes() == content, name
    assert sorted(p.name for p in (report / "plots").iterdir()) == plots
    assert {"metrics.png", "curves.png", "per_class.png", "cost.png", "predictions.png"} <= set(plots)
    assert "Predictions on the first validation images" in (report / "index.html").read_text()


def test_report_of_a_folder_without_records_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no run records" in capsys.readouterr().err


def test_python_api_returns_a_row_per_run_and_takes_keyword_overrides(tmp_path, write_suite):
    import segbench
    from conftest import TINY

    suite = write_suite(TINY.replace("seeds = [0, 1]", "seeds = [0]"), "api.toml")
    runs = segbench.run_suite(suite, output=tmp_path / "out", train__epochs=1, overrides={"dataset.num_train": 8})
    assert isinstance(runs, pd.DataFrame) and len(runs) == 2 and set(runs["status"]) == {"ok"}
    record = read_json(next((tmp_path / "out" / "tiny").glob("runs/*/seed-0/record.json")))
    assert record["config"]["train"]["epochs"] == 1 and record["config"]["dataset"]["params"]["num_train"] == 8
    assert {"miou", "cost.params", "label", "seed"} <= set(runs.columns)
