"""The Ray executor on a local Ray instance (one per module: tests/conftest.py local_ray),
as on an existing cluster: the workers' working directory is not the driver's, and Ray
writes nothing into the user's home."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from types import SimpleNamespace

import pytest

from segbench.cli import main
from segbench.executors.ray import MAX_RETRIES, RayExecutor, _attempt_number
from segbench.plugins import load_catalogue
from segbench.runner import resolve_cache_dir
from segbench.suite import load_suite

SUITE = """
name = "executors"
seeds = [0, 1]

[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = 4

[model]
architecture = "unet"
decoder_channels = [16, 8, 8, 8, 8]

[train]
epochs = 1
batch_size = 4

[ablate]
"model.upsampler" = ["nearest", "bilinear"]
"""


def _records(folder):
    records = [json.loads(p.read_text()) for p in folder.glob("executors/runs/*/seed-*/record.json")]
    return {(r["variant_id"], r["seed"]): r for r in records}


@pytest.fixture(autouse=True, scope="module")
def probes_by_value(local_ray):
    """The probe functions below travel by value: the workers cannot import this test module."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _working_directory():
    return os.getcwd()


@pytest.fixture
def suite_folder(tmp_path):
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "executors.toml").write_text(SUITE)
    return folder


def test_a_suite_given_by_a_relative_path_runs_where_the_workers_cannot_resolve_it(local_ray, suite_folder, tmp_path,
                                                                                    monkeypatch, capsys):
    """The README's form, `segbench run suites/x.toml --executor ray`, from a directory that
    is not the workers' (they resolve a relative path from theirs): every run finishes, with
    the local executor's results."""
    monkeypatch.chdir(suite_folder)
    ray, _ = local_ray
    assert ray.get(ray.remote(_working_directory).remote()) != str(suite_folder)  # the workers are elsewhere
    source = load_suite("executors.toml", load_catalogue).source
    assert source["path"] == str(suite_folder / "executors.toml") and source["text"] == SUITE  # what each task is sent

    assert main(["run", "executors.toml", "-o", str(tmp_path / "ray"), "-q", "--executor", "ray"]) == 0
    assert main(["run", "executors.toml", "-o", str(tmp_path / "local"), "-q"]) == 0
    assert "Ray" not in capsys.readouterr().out  # -q: no Ray log lines among segbench's output
    ray_records, local_records = _records(tmp_path / "ray"), _records(tmp_path / "local")
    assert ray_records.keys() == local_records.keys() and len(ray_records) == 4
    for key, record in ray_records.items():
        assert record["status"] == "ok", record.get("error")
        assert record["metrics"] == pytest.approx(local_records[key]["metrics"], abs=1e-6), key
        assert record["environment"]["attempts"] == 1 and "retried_because" not in record["environment"]
        assert "attempts" not in local_records[key]["environment"]


def _reads_the_suite_from_a_moved_file(source, variant_id, seed, cache_dir, threads):
    """A run's task as on a worker that must read the suite file, which has moved."""
    from segbench.executors.task import run_task

    return run_task({**source, "path": source["path"] + ".moved-away", "text": None}, variant_id, seed, cache_dir)


def test_a_task_that_fails_outside_the_run_records_its_real_cause_without_escapes(local_ray, suite_folder, monkeypatch):
    """A task that raises before its run starts (here: its worker cannot read the suite
    file; the node check passed); Ray wraps that in a coloured RayTaskError whose first
    line says nothing. The record keeps the cause and its traceback, as plain text; with
    one node, the run is not sent again, and one failure does not drain the node."""
    import segbench.executors.ray as ray_executor

    monkeypatch.setattr(ray_executor, "_run_with_threads", _reads_the_suite_from_a_moved_file)
    suite = load_suite(suite_folder / "executors.toml", load_catalogue)
    executor = RayExecutor(None)
    records = list(executor.records(suite, [(suite.variants[0], 0)], resolve_cache_dir()))
    assert len(records) == 1
    error = records[0]["error"]
    assert records[0]["status"] == "failed" and error["type"] == "SegbenchError"
    assert error["message"] == f"Ray could not finish the run: suite file {suite.source['path']}.moved-away does not exist"
    assert "read_suite_file" in error["traceback"]
    assert not any("\x1b" in text for text in (error["message"], error["traceback"]))
    assert executor.notes == []


def _probe():
    import ray

    return {"SEGBENCH_PROBE": os.environ.get("SEGBENCH_PROBE"), "MY_TOKEN": os.environ.get("MY_TOKEN"),
            "NOT_NAMED": os.environ.get("NOT_NAMED"), "task": ray.get_runtime_context().get_task_name()}


def test_segbench_variables_and_those_named_with_env_reach_the_tasks_named_after_their_run(local_ray, monkeypatch):
    ray, home = local_ray
    monkeypatch.setenv("SEGBENCH_PROBE", "data-here")
    monkeypatch.setenv("MY_TOKEN", "t0k")
    monkeypatch.setenv("NOT_NAMED", "stays-here")
    executor = RayExecutor(None, env="MY_TOKEN")
    task = executor._task(ray.remote(num_cpus=1)(_probe), SimpleNamespace(label="upsampler=bilinear"), 2)
    seen = ray.get(task.remote())
    assert seen == {"SEGBENCH_PROBE": "data-here", "MY_TOKEN": "t0k", "NOT_NAMED": None, "task": "segbench upsampler=bilinear seed=2"}
    assert (home / ".ray").is_dir()  # Ray's own files went to the stand-in home


def _dies_on_its_first_attempt():
    if _attempt_number() == 0:
        os._exit(1)  # the worker dies, as on an out-of-memory kill or a lost node
    return _attempt_number()


def _raises():
    raise ValueError(f"raised on attempt {_attempt_number()}")


def test_a_task_whose_worker_died_is_retried_and_one_that_raised_is_not(local_ray):
    ray, _ = local_ray
    executor = RayExecutor(None)
    run = SimpleNamespace(label="x")
    assert MAX_RETRIES >= 1
    assert ray.get(executor._task(ray.remote(num_cpus=1)(_dies_on_its_first_attempt), run, 0).remote()) == 1
    with pytest.raises(Exception, match="raised on attempt 0"):
        ray.get(executor._task(ray.remote(num_cpus=1)(_raises), run, 0).remote())


@pytest.mark.parametrize("env, expected", [
    ("SEGBENCH_SURELY_UNSET_NAME", "not set in this environment"),
    ("BAD-NAME", "not a variable name"),
])
def test_a_bad_env_name_exits_2_before_training(tmp_path, suite_folder, capsys, env, expected):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    out = tmp_path / "out"
    assert main(["run", str(suite_folder / "executors.toml"), "-o", str(out), "-q", "--executor", "ray", "--env", env]) == 2
    err = capsys.readouterr().err
    assert f"--env {env}" in err or f"--env '{env}'" in err, err
    assert expected in err and not list(out.glob("executors/runs/*"))


def test_ray_started_by_segbench_keeps_its_log_lines_and_the_workers_output_out_of_segbench_output(monkeypatch):
    """`--executor ray` without an address starts Ray itself; under -q only segbench speaks."""
    import segbench.executors.ray as ray_executor

    started = {}

    class NotStartedRay:
        def is_initialized(self):
            return False

        def init(self, **settings):
            started.update(settings)

    monkeypatch.setattr(ray_executor, "import_ray", NotStartedRay)
    RayExecutor(None)
    assert started["log_to_driver"] is False and started["logging_level"] >= logging.ERROR


def test_env_may_be_repeated_or_comma_separated_and_every_name_is_forwarded(monkeypatch):
    from segbench.cli import build_parser, executor_options
    from segbench.executors.ray import env_names, forwarded_env
    from segbench.plugins import load_catalogue as catalogue

    parser = build_parser(catalogue([]).executors)
    args = parser.parse_args(["run", "x.toml", "--executor", "ray", "--env", "HF_HOME", "--env", "TORCH_HOME,MY_TOKEN"])
    names = env_names(executor_options(args)["env"])
    assert names == ["HF_HOME", "TORCH_HOME", "MY_TOKEN"]
    environ = {"HF_HOME": "/h", "TORCH_HOME": "/t", "MY_TOKEN": "k", "SEGBENCH_COCO": "/coco", "OTHER": "x"}
    assert forwarded_env(names, environ) == {"HF_HOME": "/h", "TORCH_HOME": "/t", "MY_TOKEN": "k", "SEGBENCH_COCO": "/coco"}
