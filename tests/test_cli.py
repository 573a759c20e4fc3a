"""The command line: exit codes and messages for good and bad input."""

import subprocess
import sys

import pytest

from segbench.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_validate_prints_the_plan_and_trains_nothing(capsys, tiny_suite, tmp_path):
    code, out, _ = run_cli(capsys, "validate", str(tiny_suite))
    assert code == 0
    assert "2 variant(s) x 2 seed(s) [0, 1] = 4 run(s)" in out
    assert "upsampler=nearest  (baseline)" in out
    assert "upsampler=transposed(kernel_size=4)" in out
    assert not (tmp_path / "results").exists()


def test_list_shows_provider_version_description_and_parameters(capsys):
    code, out, _ = run_cli(capsys, "list", "upsamplers")
    assert code == 0
    assert out.startswith("upsamplers:")
    transposed = next(line for line in out.splitlines() if line.strip().startswith("transposed"))
    assert "[segbench 0.1.0]" in transposed
    assert "kernel_size: int | None = None" in out and "align_corners: bool = False" in out
    assert "losses:" not in out


def test_list_all_kinds(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for heading in ("upsamplers:", "architectures:", "losses:", "metrics:", "datasets:"):
        assert heading in out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "no/such/suite.toml"], "suite file no/such/suite.toml does not exist"),
        (["validate", "SUITE", "-p", "no_such_plugin_module"], 'plugin "no_such_plugin_module" not found'),
        (["validate", "SUITE", "-p", "missing_plugin.py"], 'plugin file "missing_plugin.py" does not exist'),
        (["validate", "SUITE", "--set", "train.epochs"], "expected KEY=VALUE"),
        (["validate", "SUITE", "--set", "train.epochs=0"], "train.epochs: expected an integer >= 1, got 0"),
        (["list", "widgets"], "unknown component kind 'widgets'"),
    ],
)
def test_bad_input_exits_2_with_a_message(capsys, tiny_suite, argv, expected):
    argv = [str(tiny_suite) if a == "SUITE" else a for a in argv]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert expected in err


def test_bad_suite_lists_every_problem(capsys, write_suite):
    path = write_suite('seeds = ["a"]\n[train]\nepochs = "five"\n[ablate]\n"model.upsampler" = ["bilnear"]\n')
    code, _, err = run_cli(capsys, "run", str(path))
    assert code == 2
    assert f"{path}: 3 problems" in err
    assert "seeds[0]" in err and "train.epochs" in err and "did you mean 'bilinear'" in err


def test_usage_errors_exit_2():
    result = subprocess.run([sys.executable, "-m", "segbench", "run"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "the following arguments are required: suite" in result.stderr


def test_console_entry_reports_bad_suite_with_exit_2(write_suite):
    path = write_suite('name = "x"\nepochs = 3\n')
    result = subprocess.run([sys.executable, "-m", "segbench", "validate", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown key epochs" in result.stderr


def test_a_parameter_the_component_rejects_stops_before_training(capsys, tiny_suite, tmp_path):
    code, _, err = run_cli(capsys, "run", str(tiny_suite), "--set", 'model.encoder="resnet_nope"', "--output", str(tmp_path / "out"))
    assert code == 2
    assert "architecture unet(encoder='resnet_nope'" in err and "cannot be built" in err
    assert not (tmp_path / "out").exists()


def test_a_dataset_that_cannot_be_read_stops_before_training(capsys, tiny_suite, tmp_path):
    plugin = tmp_path / "missing_data.py"
    plugin.write_text(
        "from segbench import hookimpl\nfrom segbench.errors import SegbenchError\n\n"
        "def build(cache_dir, *, root: str = '/nowhere'):\n"
        "    '''Needs files that are not there.'''\n"
        "    raise SegbenchError(f'dataset root {root} does not exist; set root or $MY_DATA')\n\n"
        "@hookimpl\ndef segbench_datasets(register):\n    register.add_dataset('missing_data', build)\n"
    )
    argv = ["run", str(tiny_suite), "-p", str(plugin), "--set", 'dataset={ name = "missing_data" }', "--output", str(tmp_path / "out")]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert "dataset 'missing_data': SegbenchError: dataset root /nowhere does not exist" in err
    assert not (tmp_path / "out").exists()


def test_variants_failing_the_same_way_share_one_problem_line(capsys, write_suite):
    suite = write_suite('[model]\nencoder_weights = "/nonexistent/encoder.pth"\n\n[ablate]\n"model.upsampler" = ["nearest", "bilinear"]\n')
    assert main(["validate", str(suite)]) == 2
    problems = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1
    assert "variants 'upsampler=nearest', 'upsampler=bilinear': EncoderWeightsError" in problems[0]
    assert "/nonexistent/encoder.pth" in problems[0]


def test_the_epoch_bar_follows_the_current_run_and_closes_with_it(capsys):
    from segbench.progress import Progress

    with Progress(2) as progress:
        progress.epoch(1, 3, {"train_loss": 1.5})
        progress.epoch(3, 3, {"train_loss": 0.5})
        assert progress.epochs.n == 3 and progress.epochs.total == 3
        progress.finished({"status": "ok", "metrics": {"miou": 0.25}, "label": "a", "seed": 0, "wall_seconds": 1.0}, "miou")
        assert progress.epochs is None
    err = capsys.readouterr().err
    assert "epochs" in err and "done  a seed=0: miou=0.2500" in err
