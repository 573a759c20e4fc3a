"""`[train] iterations`: iteration-based schedules (as mmsegmentation's 20k/40k recipes)
next to epochs. A run takes exactly that many optimiser steps, in passes over the data of
which the last is cut short; the learning-rate schedule spans exactly those steps."""

from __future__ import annotations

import json

import pytest

from segbench.cli import main
from segbench.engine import build
from segbench.engine import run as engine_run
from segbench.engine.run import TrainingLength
from segbench.plugins import load_catalogue
from segbench.suite import load_suite

from battery.harness import Case, check_case, tiny

# tiny(): 8 training images, batch 4 -> 2 steps per pass.
ITERATIONS = tiny(seeds="[0]").replace("batch_size = 4", "batch_size = 4\niterations = 5")


@pytest.mark.parametrize("config, images, expected", [
    ({"batch_size": 4, "epochs": 3, "iterations": 0}, 8, (6, 3, [(2, 8), (2, 8), (2, 8)])),
    ({"batch_size": 4, "epochs": 3, "iterations": 5}, 8, (5, 3, [(2, 8), (2, 8), (1, 4)])),
    ({"batch_size": 4, "epochs": 3, "iterations": 4}, 10, (4, 2, [(3, 10), (1, 4)])),
    ({"batch_size": 16, "epochs": 1, "iterations": 1}, 10, (1, 1, [(1, 10)])),
])
def test_a_training_length_counts_steps_and_cuts_the_last_pass(config, images, expected):
    length = TrainingLength.of(config, images)
    steps, epochs, passes = expected
    assert (length.steps, length.epochs) == (steps, epochs)
    assert [length.pass_size(epoch) for epoch in range(1, epochs + 1)] == passes
    assert sum(s for s, _ in passes) == steps


def test_a_run_takes_exactly_the_asked_steps_and_its_schedule_ends_with_them(tmp_path, monkeypatch):
    steps, schedule_lengths = [], []
    real_call, real_schedule = engine_run.Step.__call__, build.build_schedule

    def counted(self, images, masks):
        steps.append(images.shape[0])
        return real_call(self, images, masks)

    def recorded_schedule(name, optimizer, total_steps, *args):
        schedule_lengths.append(total_steps)
        return real_schedule(name, optimizer, total_steps, *args)

    monkeypatch.setattr(engine_run.Step, "__call__", counted)
    monkeypatch.setattr(build, "build_schedule", recorded_schedule)
    (tmp_path / "suite.toml").write_text(ITERATIONS)
    assert main(["run", str(tmp_path / "suite.toml"), "-o", str(tmp_path / "out"), "-q", "--executor", "local"]) == 0
    records = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*/runs/*/seed-*/record.json")]
    assert len(records) == 2 and len(steps) == 10  # 5 steps in each of the two variants
    assert steps[:5] == [4, 4, 4, 4, 4]  # the third pass is one batch, not the whole data
    assert schedule_lengths == [5, 5]
    for record in records:
        assert record["curves"]["epoch"] == [1, 2, 3]
        assert record["curves"]["train_loss"][-1] is not None
        assert record["config"]["train"]["iterations"] == 5


def test_iterations_replace_epochs_so_a_long_warmup_in_epochs_is_not_refused(tmp_path):
    text = ITERATIONS.replace("epochs = 1", "epochs = 1\nwarmup_epochs = 2")
    (tmp_path / "suite.toml").write_text(text)
    suite = load_suite(tmp_path / "suite.toml", load_catalogue)
    assert suite.variants[0].config["train"]["iterations"] == 5


def test_the_default_keeps_variant_ids_and_setting_it_gives_new_ones(tmp_path):
    (tmp_path / "base.toml").write_text(tiny())
    (tmp_path / "zero.toml").write_text(tiny().replace("batch_size = 4", "batch_size = 4\niterations = 0"))
    (tmp_path / "five.toml").write_text(tiny().replace("batch_size = 4", "batch_size = 4\niterations = 5"))
    ids = {name: [v.id for v in load_suite(tmp_path / f"{name}.toml", load_catalogue).variants] for name in ("base", "zero", "five")}
    assert ids["base"] == ids["zero"]
    assert not set(ids["base"]) & set(ids["five"])


@pytest.mark.parametrize("value", ["-1", "2.5", "true", "'20k'", "20000000"])
def test_a_count_that_is_not_a_whole_number_of_steps_is_refused_before_training(tmp_path, value):
    check_case(Case(f"iterations-{value}", ["run", "{suite}", "-o", "{tmp}/out", "--set", f"train.iterations={value}"], 2,
                    "train.iterations: expected an integer from 1 to 10,000,000 optimiser steps", suite=tiny()), tmp_path)
    assert not (tmp_path / "out").exists()
