"""The CLI's error boundary: bad input exits 2, a bug exits 3 with one line and a crash
log (never a bare traceback), a closed pipe is not an error, and a second run of a
suite is refused before its preflight."""

import fcntl
import subprocess
import sys
import time

import pytest

from segbench import api, cli, crash, runner
from segbench.errors import SegbenchError
from segbench.store import ResultStore


@pytest.fixture
def crash_dir(tmp_path, monkeypatch):
    folder = tmp_path / "crashes"
    monkeypatch.setenv(crash.CRASH_DIR_ENV, str(folder))
    return folder


def _explode(*args, **kwargs):
    with crash.step("reading the catalogue"):
        raise ValueError("a bug\nwith a second line")


def test_a_bug_exits_3_with_one_line_naming_the_step_and_a_crash_log(monkeypatch, capsys, crash_dir):
    monkeypatch.setattr(api, "list_components", _explode)
    assert cli.main(["list"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "internal error while reading the catalogue: ValueError: a bug" in err
    logs = list(crash_dir.glob("crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    log = logs[0].read_text()
    assert "Traceback (most recent call last)" in log and "ValueError: a bug" in log
    assert "command: segbench list" in log and "step: reading the catalogue" in log


def test_the_outer_step_names_a_bug_without_an_inner_one(monkeypatch, capsys, crash_dir):
    monkeypatch.setattr(api, "list_components", lambda *a, **k: 1 / 0)
    assert cli.main(["list", "losses"]) == 3
    assert "while running `segbench list`: ZeroDivisionError" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--debug", "list"], ["list", "--debug"]])
def test_debug_prints_the_traceback_too(argv, monkeypatch, capsys, crash_dir):
    monkeypatch.setattr(api, "list_components", _explode)
    assert cli.main(argv) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "_explode" in err


def test_a_crash_log_folder_that_cannot_be_written_falls_back_to_the_temp_folder(monkeypatch, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(crash.CRASH_DIR_ENV, str(blocker / "crashes"))
    monkeypatch.setattr(api, "list_components", _explode)
    assert cli.main(["list"]) == 3
    err = capsys.readouterr().err
    log = err.split("crash log: ")[1].split(";")[0]
    assert "ValueError: a bug" in open(log).read()


def test_bad_input_still_exits_2_and_writes_no_crash_log(monkeypatch, capsys, crash_dir):
    def bad(*args, **kwargs):
        raise SegbenchError("kind 'x' is unknown")

    monkeypatch.setattr(api, "list_components", bad)
    assert cli.main(["list"]) == 2
    assert "segbench: error: kind 'x' is unknown" in capsys.readouterr().err
    assert not crash_dir.exists()


def test_a_reader_closing_the_pipe_is_not_an_error():
    listing = subprocess.Popen([sys.executable, "-m", "segbench", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listing.stdout.close()  # the reader leaves before segbench writes (`segbench list | head -0`)
    err = listing.stderr.read().decode()
    assert listing.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_a_second_run_of_a_suite_is_refused_before_its_preflight(tiny_suite, tmp_path, monkeypatch):
    checked = []
    monkeypatch.setattr(runner, "check_suite", lambda *a, **k: checked.append(1))  # api.run takes it from the runner
    store = ResultStore(tmp_path / "out", "tiny")
    store.suite_dir.mkdir(parents=True)
    with open(store.suite_dir / ".lock", "w") as held:  # another segbench run holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        started = time.perf_counter()
        with pytest.raises(SegbenchError, match="in use by another segbench run"):
            api.run(tiny_suite, tmp_path / "out", quiet=True)
        assert time.perf_counter() - started < 2
    assert checked == []
