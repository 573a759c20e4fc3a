"""A lower-is-better metric from a real plugin (segbench-example's ``example_error_rate``)
through listing, validation, a real run, the report, the Pareto front, compare and the
gate. The records of a real run are then edited so that one effect is isolated."""

import json
import shutil
from pathlib import Path

import pytest

from segbench.cli import main
from segbench.gate import compare_results, run_gate, save_baseline
from segbench.report.plots import front_of

EXAMPLE = Path(__file__).resolve().parents[1] / "plugins" / "examples" / "segbench-example" / "src" / "segbench_example" / "__init__.py"
SUITE = f"""
name = "errors"
seeds = [0, 1, 2, 3, 4, 5, 6]  # 7: the fewest with which the exact sign flips decide under Holm over 2 (compare)
plugins = ["{EXAMPLE}"]
baseline = {{ "model.upsampler" = "nearest" }}

[dataset]
name = "shapes"
image_size = 32
num_train = 32
num_val = 8

[model]
architecture = "unet"
encoder = "resnet18"
decoder_channels = [16, 8, 8, 8, 8]

[train]
epochs = 1
batch_size = 16

[eval]
metrics = ["example_error_rate", "miou"]

[ablate]
"model.upsampler" = ["nearest", "bilinear"]
"""


def test_list_shows_each_metric_direction(capsys):
    assert main(["list", "metrics", "-p", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    error_rate = out[out.index("example_error_rate"):]
    assert error_rate.splitlines()[2].strip() == "direction: lower is better"
    miou = out[out.index("  miou"):]
    assert miou.splitlines()[2].strip() == "direction: higher is better"


def test_a_suite_gate_rule_guarding_the_wrong_way_is_refused(write_suite, capsys):
    suite = write_suite(SUITE + '\n[gate]\nrules = ["example_error_rate:max_drop=0.01", "miou:max_increase=0.01"]\n')
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert "use 'example_error_rate:max_increase=0.01'" in err and "use 'miou:max_drop=0.01'" in err


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("directions")
    suite = root / "errors.toml"
    suite.write_text(SUITE)
    assert main(["run", str(suite), "-o", str(root / "results"), "-q"]) == 0
    return root / "results" / "errors"


def records_of(folder):
    return {path: json.loads(path.read_text()) for path in sorted(folder.glob("runs/*/seed-*/record.json"))}


def edited(real_run, tmp_path, change):
    """A copy of the real results where the bilinear variant's error rate is ``change``d
    from the baseline's, seed by seed (everything else as trained)."""
    copy = tmp_path / "edited" / "errors"
    shutil.copytree(real_run, copy)
    records = records_of(copy)
    baseline = {r["seed"]: r for r in records.values() if r["is_baseline"]}
    for path, record in records.items():
        if not record["is_baseline"]:
            record["metrics"]["example_error_rate"] = baseline[record["seed"]]["metrics"]["example_error_rate"] + change(record["seed"])
            record.pop("bootstrap")
            path.write_text(json.dumps(record))
    return copy


def test_records_carry_every_direction(real_run):
    for record in records_of(real_run).values():
        assert record["higher_is_better"]["example_error_rate"] is False and record["higher_is_better"]["miou"] is True
        assert record["higher_is_better"]["latency_ms"] is False and record["higher_is_better"]["train_images_per_s"] is True
        assert set(record["bootstrap"]["replicates"]) == {"example_error_rate", "miou"}


def test_a_rise_in_error_rate_is_worse_in_the_report(real_run, tmp_path, capsys):
    folder = edited(real_run, tmp_path, lambda seed: 0.3 + 0.01 * seed)
    assert main(["report", str(folder)]) == 0
    capsys.readouterr()
    summary = (folder / "report" / "summary.csv").read_text()
    row = next(line for line in summary.splitlines() if line.startswith("upsampler=bilinear"))
    assert ",worse," in row
    markdown = (folder / "report" / "summary.md").read_text()
    assert "(lower is better)" in markdown and "**worse**" in markdown


def test_the_pareto_front_keeps_the_lower_error_rate(real_run, tmp_path):
    from segbench.api import rebuild_report

    folder = edited(real_run, tmp_path, lambda seed: -0.2)  # bilinear: far fewer errors
    summary = rebuild_report(folder)["summary"]
    front = front_of(summary, "example_error_rate", "cost.params", higher_is_better=False)
    assert bool(front["upsampler=bilinear"]), "equal parameters, fewer errors: on the front"
    assert not bool(front["upsampler=nearest"]), "dominated by bilinear"
    upside_down = front_of(summary, "example_error_rate", "cost.params", higher_is_better=True)
    assert bool(upside_down["upsampler=nearest"]), "read as higher-is-better the front would be the other variant"


def test_compare_calls_a_drop_in_error_rate_better(real_run, tmp_path):
    folder = edited(real_run, tmp_path, lambda seed: -0.2 - 0.01 * seed)
    comparison = compare_results(real_run, folder)
    bilinear = next(v for v in comparison.variants if v.label == "upsampler=bilinear")
    error_rate = next(f for f in bilinear.fields if f.name == "example_error_rate")
    assert error_rate.comparison["diff"] < 0 and error_rate.mark == "better" and error_rate.higher_is_better is False


def test_the_gate_fails_a_rise_passes_a_drop_and_refuses_max_drop(real_run, tmp_path, capsys):
    baseline = save_baseline(real_run, tmp_path / "baseline.json").path
    assert json.loads(baseline.read_text())["higher_is_better"]["example_error_rate"] is False
    rise = edited(real_run, tmp_path / "rise", lambda seed: 0.3 + 0.01 * seed)
    drop = edited(real_run, tmp_path / "drop", lambda seed: -0.2 - 0.01 * seed)
    rule = "example_error_rate:max_increase=0.05"
    assert run_gate(rise, baseline, [rule]).exit_code == 1
    assert run_gate(drop, baseline, [rule]).exit_code == 0
    code = main(["gate", str(drop), "--baseline", str(baseline), "--rule", "example_error_rate:max_drop=0.05"])
    assert code == 2
    assert "use 'example_error_rate:max_increase=0.05'" in capsys.readouterr().err
