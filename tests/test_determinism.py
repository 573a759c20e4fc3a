"""`[train] deterministic = true`: deterministic algorithms, no cudnn benchmarking, the
cuBLAS workspace setting; the record stores the flags, and one run's choice does not leak
into the next run of the same process."""

import json
import warnings

import pytest
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
                    "train.deterministic: expected true, false or \"warn\"", suite=tiny()), tmp_path)


ALERTING_PLUGIN = '''
import warnings
import torch
from segbench.hookspecs import hookimpl


def alert(caller):
    """What torch's alertNotDeterministic (aten/src/ATen/Context.cpp) does for a kernel
    without a deterministic version, e.g. nll_loss2d's on CUDA: not callable from Python."""
    if not torch.are_deterministic_algorithms_enabled():
        return
    if torch.is_deterministic_algorithms_warn_only_enabled():
        warnings.warn(f"{caller} does not have a deterministic implementation, but you set "
                      "'torch.use_deterministic_algorithms(True, warn_only=True)'. ...")
    else:
        raise RuntimeError(f"{caller} does not have a deterministic implementation, but you set "
                           "'torch.use_deterministic_algorithms(True)'. ...")


class Alerting(torch.nn.Module):
    """A 1x1 conv that, like a CUDA kernel without a deterministic version, alerts torch."""

    def __init__(self, out_channels):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, out_channels, 1)

    def forward(self, images):
        if self.training:
            alert("alerting_op")
            warnings.warn("plugin says hello")
        return self.conv(images)


@hookimpl
def segbench_architectures(register):
    register.add_architecture("alerting", lambda out_channels, make_upsampler: Alerting(out_channels),
                              provides={"interpolate:nearest"})
'''


def _alerting_run(tmp_path, mode, *extra):
    (tmp_path / "alerting.py").write_text(ALERTING_PLUGIN)
    suite = tiny(seeds="[0]").replace('architecture = "unet"\nencoder = "lite"\ndecoder_channels = [16, 8, 8, 8, 8]',
                                      'architecture = "alerting"').replace(
        '"model.upsampler" = ["nearest", "bilinear"]', f'"train.deterministic" = [{mode}]')
    (tmp_path / "suite.toml").write_text(suite)
    code = main(["run", str(tmp_path / "suite.toml"), "-o", str(tmp_path / "out"), "-q", "-p", str(tmp_path / "alerting.py"), *extra])
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*/runs/*/seed-*/record.json")]
    return code, record


def test_strict_mode_fails_the_run_naming_the_op_and_what_to_set_instead(tmp_path):
    code, record = _alerting_run(tmp_path, "true")
    assert code == 1 and record["status"] == "failed"
    assert record["error"]["type"] == "NondeterministicOp"
    assert record["error"]["message"].startswith("alerting_op has no deterministic implementation on this device")
    assert 'deterministic = "warn"' in record["error"]["message"]


def test_warn_mode_runs_lists_the_op_in_the_record_and_lets_other_warnings_through(tmp_path):
    with pytest.warns(UserWarning, match="plugin says hello"):
        code, record = _alerting_run(tmp_path, '"warn"')
    assert code == 0 and record["status"] == "ok"
    assert record["determinism"]["warn_only"] is True
    assert record["determinism"]["nondeterministic_ops"] == ["alerting_op"]


def test_without_warn_mode_the_record_has_no_op_list(tmp_path):
    code, record = _alerting_run(tmp_path, "false")
    assert code == 0 and "nondeterministic_ops" not in record["determinism"]
    assert record["determinism"]["warn_only"] is False


def test_warn_mode_shows_a_warning_raised_every_step_once_not_once_per_step(tmp_path):
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        code, _ = _alerting_run(tmp_path, '"warn"', "--set", "train.epochs=3")  # warns in each of 6 steps
    assert code == 0
    # once from preflight's training step (outside the run), once for the run's six
    assert sum("plugin says hello" in str(w.message) for w in shown) == 2
