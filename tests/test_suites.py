"""The ready suites: the CPU ones load and build on the embedded data and state their time;
the GPU ones stop before training with how to provide the data and the weights."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from segbench.cli import main
from segbench.plugins import load_catalogue
from segbench.suite import load_suite

SUITES = Path(__file__).parent.parent / "suites"
CPU_SUITES = ["upsampling", "upsampling_full", "losses", "losses_binary", "architectures", "skip_connections", "fcn", "atrous",
              "unpooling", "smoke"]
# The demo's budget (issue: 5 minutes on 2 CPU cores, after installation). Its variants'
# training throughput on that machine (images/s, the lite U-Net at 64 px, batch 16; the
# records' cost.train_images_per_s, 2026-11-29; benchmarks/test_demo.py measures it again).
DEMO_BUDGET_S = 300
DEMO_IMAGES_PER_S = {"nearest": 178, "bilinear": 176, "transposed": 146}
DEMO_TRAINING_SHARE = 0.9  # start-up, preflight, evaluation and the report took 7.5%
REAL_DATA_SUITES = {
    "coco-voc20-upsampling": "SEGBENCH_COCO",
    "coco-person-losses": "SEGBENCH_COCO",
    "voc-architectures": "SEGBENCH_VOC",
    "coco-fcn-skips": "SEGBENCH_COCO",
}


def test_every_suite_file_is_covered_here():
    assert sorted(p.stem for p in SUITES.glob("*.toml")) == sorted(CPU_SUITES + list(REAL_DATA_SUITES))


@pytest.mark.parametrize("name", CPU_SUITES)
def test_cpu_suites_state_their_time_and_use_the_embedded_data(name):
    suite = load_suite(SUITES / f"{name}.toml", load_catalogue)
    assert re.search(r"\d+ (s|min|minutes) on 2 CPU cores", suite.description), suite.description
    if name == "upsampling":  # the demo decides; the others are pilots and say so
        assert re.search(r"decides in \d+% of simulated suites", suite.description), suite.description
    elif name != "smoke":
        assert "is a pilot" in suite.description or "are a pilot" in suite.description, suite.description
    assert {v.config["dataset"]["name"] for v in suite.variants} == {"shapes"}
    assert len(suite.seeds) >= 2 and len(suite.variants) >= 2


def test_the_demo_configuration_fits_its_five_minute_budget():
    """Its first look (the seeds it starts with, where it decided on this machine) fits the budget;
    the adaptive design may add up to max - min seeds where the spread is larger."""
    suite = load_suite(SUITES / "upsampling.toml", load_catalogue)
    first_look = suite.design.looks[0]
    training_s = sum(first_look * v.config["train"]["epochs"] * v.config["dataset"]["params"]["num_train"]
                     / DEMO_IMAGES_PER_S[v.config["model"]["upsampler"]["name"]] for v in suite.variants)
    assert training_s <= DEMO_TRAINING_SHARE * DEMO_BUDGET_S
    assert {v.config["model"]["architecture"]["params"]["encoder"] for v in suite.variants} == {"lite"}
    assert {(v.config["train"]["batch_size"], v.config["dataset"]["params"]["image_size"]) for v in suite.variants} == {(16, 64)}
    assert [v.config["model"]["upsampler"]["name"] for v in suite.variants] == ["nearest", "bilinear"]
    minutes = re.search(r"(\d+) min (\d+) s on 2 CPU cores", suite.description)
    assert minutes and int(minutes[1]) * 60 + int(minutes[2]) <= DEMO_BUDGET_S, suite.description


@pytest.mark.parametrize("name", ["upsampling", "architectures", "unpooling"])
def test_cpu_suites_build_every_model_before_training(name, capsys):
    assert main(["validate", str(SUITES / f"{name}.toml")]) == 0
    assert "run(s)" in capsys.readouterr().out


@pytest.mark.parametrize("name, variable", REAL_DATA_SUITES.items())
def test_real_data_suites_say_how_to_provide_data_and_weights(name, variable, monkeypatch, capsys):
    monkeypatch.delenv(variable, raising=False)
    suite = load_suite(SUITES / f"{name}.toml", load_catalogue)
    assert "GPU" in suite.description and variable in suite.description
    assert {v.config["train"]["amp"] for v in suite.variants} == {"auto"}
    assert main(["validate", str(SUITES / f"{name}.toml")]) == 2
    error = capsys.readouterr().err
    assert f"set the environment variable {variable}" in error
    assert "encoder weights 'imagenet'" in error and "Hugging Face hub cache" in error
