"""Executors: the same records whatever runs them, and bad settings stopped before training."""

from __future__ import annotations

import json

import pytest

from segbench.cli import main

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


def _run(tmp_path, write_suite, name, *extra):
    suite = write_suite(SUITE, "executors.toml")
    output = tmp_path / name
    assert main(["run", str(suite), "-o", str(output), "-q", *extra]) == 0
    return _records(output)


@pytest.fixture(scope="module")
def local_records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local")
    suite = folder / "executors.toml"
    suite.write_text(SUITE)
    assert main(["run", str(suite), "-o", str(folder / "out"), "-q"]) == 0
    return _records(folder / "out")


def _assert_same_results(records, expected):
    assert records.keys() == expected.keys() and len(records) == 4
    for key, record in records.items():
        assert record["status"] == "ok"
        assert record["metrics"] == pytest.approx(expected[key]["metrics"], abs=1e-6), key
        assert record["curves"]["train_loss"] == pytest.approx(expected[key]["curves"]["train_loss"], rel=1e-5), key
        assert record["cost"]["params"] == expected[key]["cost"]["params"]


def test_process_executor_gives_the_local_results(tmp_path, write_suite, local_records):
    records = _run(tmp_path, write_suite, "process", "--executor", "process", "--workers", "2")
    _assert_same_results(records, local_records)


# The Ray executor's runs, on a local Ray that writes nothing into the home folder: tests/test_ray_executor.py


@pytest.mark.parametrize("flags, expected", [
    (["--executor", "proces"], "did you mean 'process'"),
    (["--executor", "process", "--workers", "0"], "--workers must be an integer >= 1"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "nothing answers there"),
    (["--executor", "ray", "--ray-address", "not-an-address"], "expected 'auto' or HOST:PORT"),
])
def test_bad_executor_settings_exit_2_before_training(tmp_path, write_suite, capsys, flags, expected):
    pytest.importorskip("ray") if "ray" in flags else None
    suite = write_suite(SUITE, "executors.toml")
    assert main(["run", str(suite), "-o", str(tmp_path / "out"), "-q", *flags]) == 2
    assert expected in capsys.readouterr().err
    assert not list(tmp_path.glob("out/executors/runs/*"))


def test_ray_missing_says_how_to_install_it(tmp_path, write_suite, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "ray" and level == 0:
            raise ImportError("No module named 'ray'")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    suite = write_suite(SUITE, "executors.toml")
    assert main(["run", str(suite), "-o", str(tmp_path / "out"), "-q", "--executor", "ray"]) == 2
    assert "pip install 'segbench[ray]'" in capsys.readouterr().err


def test_a_batch_larger_than_the_training_set_is_bad_input(tmp_path, write_suite, capsys):
    suite = write_suite(SUITE.replace("batch_size = 4", "batch_size = 9"), "executors.toml")
    assert main(["run", str(suite), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "batch_size = 9 is larger than the 8 training images" in capsys.readouterr().err


def test_adaptive_rounds_through_the_process_pool_equal_the_local_ones(tmp_path, write_suite):
    """Adaptive seeds send one round after another to the same pool; the seeds each
    variant gets and the records are the local executor's."""
    adaptive = SUITE.replace("seeds = [0, 1]", "seeds = { min = 2, max = 3 }")
    suite = write_suite(adaptive, "executors.toml")
    runs = {}
    for name, extra in (("local", []), ("process", ["--executor", "process", "--workers", "2"])):
        assert main(["run", str(suite), "-o", str(tmp_path / name), "-q", *extra]) == 0
        runs[name] = _records(tmp_path / name)
    assert runs["process"].keys() == runs["local"].keys()
    assert {seed for _, seed in runs["local"]} <= {0, 1, 2} and len(runs["local"]) >= 4
    for key, record in runs["process"].items():
        assert record["metrics"] == pytest.approx(runs["local"][key]["metrics"], abs=1e-6), key
