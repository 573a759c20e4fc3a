"""`[train] deterministic = true`: deterministic algorithms, no cudnn benchmarking, the
cuBLAS workspace setting; the record stores the flags, and one run's choice does not leak
into the next run of the same process."""

import json

import torch

from segbench.cli import main
from segbench.plugins import load_catalogue
from segbench.suite import load_suite

from battery.harness import Case, check_case, tiny

SUITE = tiny(seeds="[0]").replace('"model.upsampler" = ["nearest", "bilinear"]',
                                  '"train.deterministic" = [true, false]')


def _records(folder):
    return {r["config"]["train"]["deterministic"]: r for r in
            (json.loads(p.read_text()) for p in folder.glob("*/runs/*/seed-*/record.json"))}


def test_deterministic_runs_record_their_flags_and_do_not_leak_into_the_next(tmp_path):
    (tmp_path / "suite.toml").write_text(SUITE)
    assert main(["run", str(tmp_path / "suite.toml"), "-o", str(tmp_path / "out"), "-q"]) == 0
    records = _records(tmp_path / "out")
    assert records[True]["determinism"]["deterministic_algorithms"] is True
    assert records[True]["determinism"]["cublas_workspace_config"] == ":4096:8"
    assert records[False]["determinism"]["deterministic_algorithms"] is False  # ran second: no leak
    assert not torch.are_deterministic_algorithms_enabled()
    # On the CPU every run is bit-identical anyway: the mode changes nothing computed.
    assert records[True]["metrics"] == records[False]["metrics"]


def test_the_default_keeps_variant_ids_and_setting_it_gives_new_ones(tmp_path):
    (tmp_path / "base.toml").write_text(tiny())
    (tmp_path / "off.toml").write_text(tiny().replace("batch_size = 4", "batch_size = 4\ndeterministic = false"))
    (tmp_path / "on.toml").write_text(tiny().replace("batch_size = 4", "batch_size = 4\ndeterministic = true"))
    ids = {name: [v.id for v in load_suite(tmp_path / f"{name}.toml", load_catalogue).variants] for name in ("base", "off", "on")}
    assert ids["base"] == ids["off"]
    assert not set(ids["base"]) & set(ids["on"])


def test_a_value_that_is_not_a_boolean_is_refused(tmp_path):
    check_case(Case("deterministic-text", ["validate", "{suite}", "--set", "train.deterministic='yes'"], 2,
                    "train.deterministic: expected true or false", suite=tiny()), tmp_path)
