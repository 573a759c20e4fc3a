"""`[train] threads`: a run's torch thread count comes from the suite, not from the
executor or the node's cores, so every executor gives bit-identical records on one
machine; the record keeps the count, and the key at its default changes no variant id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from battery.harness import Case, check_case, tiny

from segbench.cli import main
from segbench.plugins import load_catalogue
from segbench.suite import load_suite

COMPUTED = ("metrics", "curves", "per_class", "per_image")  # what a run computes, compared bit for bit


def _records(folder):
    return {(r["variant_id"], r["seed"]): r for r in (json.loads(p.read_text()) for p in folder.glob("*/runs/*/seed-*/record.json"))}


def _run(suite, output, *extra):
    assert main(["run", str(suite), "-o", str(output), "-q", *extra]) == 0
    return _records(output)


SMOKE = Path(__file__).parents[1] / "suites" / "smoke.toml"
SHORTER = ["--set", "train.epochs=2", "--set", "dataset.num_train=32", "--set", "dataset.num_val=8"]  # the CI suite, cut short


def test_local_and_process_executors_give_bit_identical_records(tmp_path):
    """The CI's smoke suite: the process executor gives each of 2 workers half the cores,
    the local one runs with torch's default; the suite's thread count overrides both.
    (With threads = "auto" the curves differ in their last bits.)"""
    threads_before = torch.get_num_threads()
    local = _run(SMOKE, tmp_path / "local", *SHORTER)
    assert torch.get_num_threads() == threads_before  # the local executor's run gave the driver's count back
    process = _run(SMOKE, tmp_path / "process", *SHORTER, "--executor", "process", "--workers", "2")
    assert local.keys() == process.keys() and len(local) == 4
    for key, record in process.items():
        assert record["status"] == local[key]["status"] == "ok"
        for field in COMPUTED:
            assert record.get(field) == local[key].get(field), f"{field} of {key} differs between the executors"
        assert record["environment"]["torch_threads"] == local[key]["environment"]["torch_threads"] == 1
        assert (record["ran_on"]["executor"], local[key]["ran_on"]["executor"]) == ("process", "local")


def test_the_suite_s_thread_count_is_applied_and_recorded(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(tiny(seeds="[0]").replace("batch_size = 4", "batch_size = 4\nthreads = 2"))
    records = _run(suite, tmp_path / "out")
    assert {r["environment"]["torch_threads"] for r in records.values()} == {2}


def test_the_default_keeps_variant_ids_and_another_count_gives_new_ones(tmp_path):
    (tmp_path / "base.toml").write_text(tiny())
    (tmp_path / "one.toml").write_text(tiny().replace("batch_size = 4", "batch_size = 4\nthreads = 1"))
    (tmp_path / "auto.toml").write_text(tiny().replace("batch_size = 4", 'batch_size = 4\nthreads = "auto"'))
    ids = {name: [v.id for v in load_suite(tmp_path / f"{name}.toml", load_catalogue).variants] for name in ("base", "one", "auto")}
    assert ids["base"] == ids["one"]
    assert not set(ids["base"]) & set(ids["auto"])  # computed differently: never mixed with the default's runs


@pytest.mark.parametrize("value", ["0", "'many'", "1.5", "true"])
def test_a_thread_count_that_is_not_one_is_refused(tmp_path, value):
    check_case(Case(f"threads-{value}", ["validate", "{suite}", "--set", f"train.threads={value}"], 2,
                    'train.threads: expected an integer from 1 to 1024 or "auto"', suite=tiny()), tmp_path)
