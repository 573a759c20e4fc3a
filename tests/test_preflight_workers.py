"""The preflight checks only what will run, each model once, and where asked
(``--preflight-on workers``) on one of the executor's workers: a planted bad variant is
caught there with exit 2 and the very message of the driver's preflight, before anything
runs (issue 24, item 8)."""

from __future__ import annotations

import json
import os

import pytest

from segbench import api, runner
from segbench.cli import main

# Every build of a "counted" model is logged, with where it happened, in $SEGBENCH_TEST_BUILDS
# (a SEGBENCH_* variable: the Ray executor forwards those to its tasks).
PLUGIN = '''
import multiprocessing
import os
import json
import math
import time

import torch
from torch import nn

from segbench import hookimpl


def where():
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as file:
            parent = file.read().replace(b"\\0", b" ").decode(errors="replace")
    except OSError:
        parent = ""
    return {"pid": os.getpid(), "process": multiprocessing.current_process().name, "parent": parent}


def log(**entry):
    with open(os.environ["SEGBENCH_TEST_BUILDS"], "a") as file:
        file.write(json.dumps({**entry, **where()}) + "\\n")


class NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(context, x):
        return x.clone()

    @staticmethod
    def backward(context, gradient):
        raise RuntimeError("this layer has no backward")


class Counted(nn.Module):
    """A two-layer net that logs each training forward."""

    def __init__(self, width, out_channels, broken_backward):
        super().__init__()
        self.width, self.broken_backward = width, broken_backward
        self.layers = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                    nn.Conv2d(width, out_channels, 1))

    def forward(self, images):
        if self.training:
            log(forward=self.width, images=len(images))
        logits = self.layers(images)
        return NoBackward.apply(logits) if self.broken_backward else logits


def counted(out_channels, make_upsampler, *, width=4, hang_s=0.0, broken_backward=False):
    """Width 0 is refused, as a bad variant."""
    log(width=width)
    time.sleep(hang_s)
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    return Counted(width, out_channels, broken_backward)


class NotANumber(nn.Module):
    def forward(self, logits, target):
        return logits.sum() * math.nan


def nan_loss(mode, num_classes, ignore_index):
    return NotANumber()


class Bare:
    """An executor without the optional preflight method."""

    name = "bare"
    shows_epochs = False

    def records(self, suite, pending, cache_dir, on_epoch=None):
        raise AssertionError("the bare executor was given runs although its preflight could not run")

    def close(self):
        pass


@hookimpl
def segbench_architectures(register):
    register.add_architecture("counted", counted, provides=["interpolate:nearest"])


@hookimpl
def segbench_losses(register):
    register.add_loss("nan_loss", nan_loss)


@hookimpl
def segbench_executors(register):
    register.add_executor("bare", Bare)
'''

SUITE = """
name = "workers"
seeds = [0]

[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = 4

[model]
architecture = "counted"

[train]
epochs = 1
batch_size = 2

[ablate]
{ablate}
"""
# 20 variants, 2 models: each loss and batch size trains each model differently
TWENTY = '''"model.architecture.width" = [4, 8]
"train.loss" = ["ce", "dice", "focal", "jaccard", "tversky"]
"train.batch_size" = [1, 2]'''
BAD_WIDTH = '''"model.architecture.width" = [4, 0]
"train.loss" = ["ce", "dice"]'''
BAD_MESSAGE = ("variants 'width=0, loss=ce', 'width=0, loss=dice': architecture counted(width=0, hang_s=0.0, broken_backward=False) "
               "with upsampler nearest() cannot be built: ValueError: width must be at least 1, got 0")


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Writes the plugin and a suite; ``builds()`` reads the builds logged so far."""
    plugin, log = tmp_path / "counting_plugin.py", tmp_path / "builds.jsonl"
    plugin.write_text(PLUGIN)
    monkeypatch.setenv("SEGBENCH_TEST_BUILDS", str(log))

    class Files:
        def suite(self, ablate, name="suite.toml"):
            path = tmp_path / name
            path.write_text(SUITE.format(ablate=ablate))
            return path

        def logged(self):
            return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

        def builds(self):
            return [entry for entry in self.logged() if "width" in entry]

        def forwards(self):
            return [entry for entry in self.logged() if "forward" in entry]

        def clear(self):
            log.unlink(missing_ok=True)

    files = Files()
    files.plugin, files.out = str(plugin), tmp_path / "out"
    return files


def run_cli(files, suite, *flags):
    return main(["run", str(suite), "-o", str(files.out), "-q", "-p", files.plugin, *flags])


def preflight_only(monkeypatch):
    """api.run up to its preflight: nothing trains (the runs are not what is measured)."""
    monkeypatch.setattr(runner, "run_prepared", lambda *args, **kwargs: "not run")


# ----------------------------------------------------------------------------- each model once


def test_twenty_variants_sharing_two_models_build_two(files, monkeypatch):
    preflight_only(monkeypatch)
    assert api.run(files.suite(TWENTY), files.out, plugins=[files.plugin], quiet=True) == "not run"
    assert sorted(build["width"] for build in files.builds()) == [4, 8], "each distinct model is built once"
    # and trained once per batch it meets (a batch of one image for batch_size = 1), not once per loss
    assert sorted((entry["forward"], entry["images"]) for entry in files.forwards()) == [(4, 1), (4, 2), (8, 1), (8, 2)]


def test_the_per_variant_checks_still_run_for_each_variant_sharing_a_model(files, capsys):
    suite = files.suite('"model.architecture.width" = [4, 8]\n"train.loss" = ["ce", "nan_loss"]')
    assert run_cli(files, suite) == 2
    err = capsys.readouterr().err
    assert "variants 'width=4, loss=nan_loss', 'width=8, loss=nan_loss': loss 'nan_loss'" in err
    assert "loss=ce" not in err, "the variants whose loss is sound are not named"
    assert sorted(build["width"] for build in files.builds()) == [4, 8]


def test_a_shared_model_that_fails_names_every_variant_of_it_and_is_built_once(files, capsys):
    assert run_cli(files, files.suite(BAD_WIDTH)) == 2
    assert BAD_MESSAGE in capsys.readouterr().err
    assert sorted(build["width"] for build in files.builds()) == [0, 4]
    assert not files.out.exists(), "nothing ran"


def test_a_shared_model_whose_backward_fails_is_named_with_every_loss_that_meets_it(files, capsys):
    suite = files.suite('"model.architecture.broken_backward" = [true]\n"train.loss" = ["ce", "dice"]')
    assert run_cli(files, suite) == 2
    err = capsys.readouterr().err
    for loss in ("ce", "dice"):
        assert (f"variant 'broken_backward=true, loss={loss}': architecture 'counted' (" in err
                and f"with upsampler 'nearest' with loss '{loss}' (segbench" in err), err
    assert err.count("backward failed: RuntimeError: this layer has no backward") == 2, err
    assert len(files.forwards()) == 1, "one forward for both losses"


# ----------------------------------------------------------------------------- on the workers


def driver_message(files, capsys):
    """What the driver's preflight (the default) says of the bad variant, and where it ran."""
    assert run_cli(files, files.suite(BAD_WIDTH)) == 2
    said = capsys.readouterr().err
    assert BAD_MESSAGE in said
    assert {build["pid"] for build in files.builds()} == {os.getpid()}, "the local executor's preflight runs in the driver"
    files.clear()
    return said


def test_process_workers_catch_a_bad_variant_with_the_drivers_message(files, capsys):
    said = driver_message(files, capsys)
    assert run_cli(files, files.suite(BAD_WIDTH), "--executor", "process", "--preflight-on", "workers") == 2
    assert capsys.readouterr().err == said, "the same message, however the preflight ran"
    builds = files.builds()
    assert builds and all(build["process"] == "segbench-worker" and build["pid"] != os.getpid() for build in builds), builds
    assert not files.out.exists(), "nothing ran"


def test_a_step_that_hangs_on_a_worker_is_named_within_timeout_s(files, capsys):
    suite = files.suite('"model.architecture.hang_s" = [60.0]')
    assert run_cli(files, suite, "--executor", "process", "--preflight-on", "workers", "--set", "train.timeout_s=2") == 2
    err = capsys.readouterr().err
    assert ("the preflight did not finish a step within train.timeout_s = 2 s: it was still checking variant 'hang_s=60.0': "
            "one training step and one evaluation forward, building architecture counted(width=4, hang_s=60.0, broken_backward=False) with upsampler nearest()") in err, err


def test_local_workers_are_the_driver(files, capsys):
    said = driver_message(files, capsys)
    assert run_cli(files, files.suite(BAD_WIDTH), "--preflight-on", "workers") == 2
    assert capsys.readouterr().err == said
    assert {build["pid"] for build in files.builds()} == {os.getpid()}


def test_ray_workers_catch_a_bad_variant_with_the_drivers_message(files, capsys, local_ray):
    said = driver_message(files, capsys)
    assert run_cli(files, files.suite(BAD_WIDTH), "--executor", "ray", "--preflight-on", "workers") == 2
    assert capsys.readouterr().err == said
    builds = files.builds()
    # checked in a process of its own (a plugin that kills it is named), started by a Ray worker
    assert builds and all(build["pid"] != os.getpid() and "ray::" in build["parent"] for build in builds), builds
    assert not files.out.exists(), "nothing ran"


def test_an_executor_without_the_method_is_refused_before_anything_runs(files, capsys):
    assert run_cli(files, files.suite(BAD_WIDTH), "--executor", "bare", "--preflight-on", "workers") == 2
    err = capsys.readouterr().err
    assert 'executor "bare" cannot run the preflight on its workers' in err and "--preflight-on driver" in err, err
    assert files.builds() == [], "refused before any check"
    assert not files.out.exists()


def test_an_unknown_place_is_bad_input(files, monkeypatch):
    preflight_only(monkeypatch)
    with pytest.raises(Exception, match="--preflight-on 'nodes': expected driver or workers"):
        api.run(files.suite(BAD_WIDTH), files.out, plugins=[files.plugin], quiet=True, preflight_on="nodes")


def test_after_a_sound_preflight_the_same_workers_run_the_runs(files, capsys):
    suite = files.suite('"model.architecture.width" = [4]\n"train.loss" = ["ce", "dice"]')
    assert run_cli(files, suite, "--executor", "process", "--preflight-on", "workers") == 0, capsys.readouterr().err
    records = list(files.out.glob("workers/runs/*/seed-*/record.json"))
    assert len(records) == 2 and all(json.loads(path.read_text())["status"] == "ok" for path in records)
    pids = {build["pid"] for build in files.builds()}
    assert len(pids) == 1 and os.getpid() not in pids, "one worker checked and ran both (its pool kept for the runs)"


def test_slurm_tasks_catch_a_bad_variant_with_the_drivers_message(files, capsys):
    """On Slurm the login node may lack the GPU or the data: the preflight goes as one job
    (submitit's local cluster here), asking what a run's task asks."""
    pytest.importorskip("submitit")
    said = driver_message(files, capsys)
    assert run_cli(files, files.suite(BAD_WIDTH), "--executor", "slurm", "--slurm-cluster", "local", "--preflight-on", "workers") == 2
    assert capsys.readouterr().err == said
    builds = files.builds()
    # checked in a process of its own (a plugin that kills it is named), started by the job
    assert builds and all(build["pid"] != os.getpid() and "submitit" in build["parent"] for build in builds), builds
    assert not files.out.exists(), "nothing ran"
