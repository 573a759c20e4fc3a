"""Battery rows for issue 23, item 11: faults lose nothing and say what happened.

A results folder that cannot be written is bad input before training (exit 2, naming the
path); a record that cannot be written during the suite stops it (exit 1, "could not write
<path>: <reason>") and keeps every finished record; a plugin raising a BaseException that
is no Exception is named, never a traceback; SIGTERM stops a run with one line and exit
143, leaving no temporary file; a plugin's ``os.chdir`` does not move the results. The
MLflow export's interruptions are tested in tests/test_export_mlflow.py.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segbench.cli import main

from .harness import TINY, Case, check_case

BEFORE_ABLATE = TINY.split("[ablate]")[0]
ONE_VARIANT = BEFORE_ABLATE + '[[variants]]\nlabel = "only"\n'
BOOM_LOSS = BEFORE_ABLATE + '[[variants]]\nlabel = "booming"\ntrain.loss = "booming"\n[[variants]]\nlabel = "ce"\ntrain.loss = "ce"\n'

# A plugin whose loss, model factory or reporter raises Boom, a BaseException that is no
# Exception (what a plugin's own "stop everything" class might be), or whose import does.
BOOM_PLUGIN = '''
import os

import torch
from segbench import hookimpl


class Boom(BaseException):
    """Not an Exception: slips past every `except Exception`."""



class BoomsOnSecondCall(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, logits, target):
        self.calls += 1
        if self.calls >= 2:
            raise Boom("in the loss")
        return torch.nn.functional.cross_entropy(logits, target)


def booming_factory(mode, num_classes, ignore_index):
    raise Boom("in the factory")


def booming_reporter(context):
    raise Boom("in the reporter")


@hookimpl
def segbench_losses(register):
    register.add_loss("booming", lambda mode, num_classes, ignore_index: BoomsOnSecondCall())
    register.add_loss("booming_factory", booming_factory)


@hookimpl
def segbench_reporters(register):
    register.add_reporter("booming", booming_reporter, description="raises Boom")
'''


def write_boom(tmp):
    (tmp / "boom.py").write_text(BOOM_PLUGIN)


def runs_as_a_file(tmp):
    (tmp / "out" / "tiny").mkdir(parents=True)
    (tmp / "out" / "tiny" / "runs").write_text("not a folder")


def out_as_a_file(tmp):
    (tmp / "out").write_text("not a folder")


def boom_at_import(tmp):
    (tmp / "boom.py").write_text("class Boom(BaseException):\n    pass\n\n\nraise Boom('at import')\n")


def read_only_out(tmp):
    (tmp / "out").mkdir()
    (tmp / "out").chmod(0o555)


AS_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")

CASES = [
    Case("runs-is-a-file", ["run", "{suite}", "-o", "{tmp}/out", "-q"], 2, "cannot write results to", suite=TINY, setup=runs_as_a_file),
    Case("output-is-a-file", ["run", "{suite}", "-o", "{tmp}/out", "-q"], 2, "cannot write results to", suite=TINY, setup=out_as_a_file),
    pytest.param(Case("read-only-output", ["run", "{suite}", "-o", "{tmp}/out", "-q"], 2, "cannot write results to", suite=TINY,
                      setup=read_only_out), marks=AS_ROOT, id="read-only-output"),
    pytest.param(Case("baseline-into-read-only", ["baseline", "save", "{results}", "-o", "{tmp}/out/base.json"], 2, "out/base.json",
                      results=True, setup=read_only_out), marks=AS_ROOT, id="baseline-into-read-only"),
    Case("baseline-under-a-file", ["baseline", "save", "{results}", "-o", "{tmp}/out/base.json"], 2, "out/base.json", results=True,
         setup=out_as_a_file),
    Case("boom-in-a-run", ["run", "{suite}", "-o", "{tmp}/out", "-q", "-p", "{tmp}/boom.py"], 1, "Boom: in the loss", suite=BOOM_LOSS,
         setup=write_boom),
    Case("boom-in-a-factory", ["validate", "{suite}", "-p", "{tmp}/boom.py", "--set", "train.loss=booming_factory"], 2, "boom.py",
         suite=TINY, setup=write_boom),
    Case("boom-in-a-reporter", ["report", "{results}", "-p", "{tmp}/boom.py"], 1, 'reporter "booming"', results=True, setup=write_boom),
    Case("boom-at-import", ["list", "-p", "{tmp}/boom.py"], 2, "Boom: at import", setup=boom_at_import),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case, tmp_path):
    check_case(case, tmp_path)


def test_a_plugin_non_exception_names_the_plugin_file_not_a_traceback(tmp_path, capsys):
    write_boom(tmp_path)
    (tmp_path / "suite.toml").write_text(TINY)
    assert main(["validate", str(tmp_path / "suite.toml"), "-p", str(tmp_path / "boom.py"), "--set", "train.loss=booming_factory"]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'boom.py'}:" in error and "raised Boom: in the factory" in error and "must raise an Exception" in error


# ------------------------------------------------------------------------ a full disk mid-suite


def test_a_record_that_cannot_be_written_stops_the_suite_and_keeps_the_finished_ones(tmp_path, monkeypatch, capsys):
    """The disk fills after the first record: the second run's record cannot be written.
    The suite stops (exit 1) naming the path and the reason; the first record stays whole,
    the unwritten one is kept in the crash-log folder, and no temporary file is left."""
    monkeypatch.setenv("SEGBENCH_CRASH_DIR", str(tmp_path / "crash"))
    (tmp_path / "suite.toml").write_text(TINY)
    real_fsync, records = os.fsync, []

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if Path(name).name.startswith(".record.json."):
            records.append(name)
            if len(records) >= 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert main(["run", str(tmp_path / "suite.toml"), "-o", str(tmp_path / "out"), "-q"]) == 1
    error = capsys.readouterr().err
    kept = sorted((tmp_path / "out" / "tiny" / "runs").glob("*/seed-*/record.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["status"] == "ok"
    assert f"could not write {Path(records[1]).parent / 'record.json'}: No space left on device" in error
    assert "the suite stopped; 1 finished runs kept" in error
    saved = Path(error.split("its record is saved as ")[1].split(": move it to")[0])  # nothing computed is lost
    assert json.loads(saved.read_text())["status"] == "ok", saved.read_text()[:3000]
    assert f"move it to {Path(records[1]).parent / 'record.json'}" in error
    assert not list((tmp_path / "out").rglob("*.tmp")), "a temporary file was left"


def test_a_stale_temporary_file_is_removed_by_the_next_run(tmp_path, capsys):
    """What a kill -9 during a write leaves (``.<name>.<random>.tmp``) goes at the next run."""
    (tmp_path / "suite.toml").write_text(ONE_VARIANT.replace("seeds = [0, 1]", "seeds = [0]"))
    stale = tmp_path / "out" / "tiny" / "report" / ".index.html.abc123.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_text("half")
    assert main(["run", str(tmp_path / "suite.toml"), "-o", str(tmp_path / "out"), "-q"]) == 0
    assert not stale.exists()


def test_data_show_onto_a_full_disk_is_exit_2_naming_the_file(tmp_path, monkeypatch, capsys):
    import matplotlib.figure

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    output = tmp_path / "show.png"
    args = ["data", "show", "shapes", "--set", "image_size=32", "--set", "num_train=2", "--set", "num_val=2", "-o", str(output)]
    assert main([*args, "--data-cache", str(tmp_path / "cache")]) == 2
    assert f"could not write {output}: No space left on device" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp")) and not output.exists()


def test_baseline_save_onto_a_full_disk_is_exit_2_naming_the_file(tmp_path, monkeypatch, capsys):
    from .harness import finished_results

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    results = finished_results()
    monkeypatch.setattr(os, "fsync", full)
    assert main(["baseline", "save", str(results), "-o", str(tmp_path / "base.json")]) == 2
    assert f"could not write {tmp_path / 'base.json'}: No space left on device" in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "no half file, no temporary file"


# ------------------------------------------------------------------------ os.chdir in a plugin

CHDIR_PLUGIN = '''
import os

import torch
from segbench import hookimpl


def wandering(mode, num_classes, ignore_index):
    os.makedirs({elsewhere!r}, exist_ok=True)
    os.chdir({elsewhere!r})
    return torch.nn.CrossEntropyLoss(ignore_index=ignore_index)


@hookimpl
def segbench_losses(register):
    register.add_loss("wandering", wandering)
'''


def test_a_plugin_that_changes_directory_does_not_move_the_results(tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "wander.py").write_text(CHDIR_PLUGIN.format(elsewhere=str(elsewhere)))
    (tmp_path / "suite.toml").write_text(ONE_VARIANT)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "suite.toml", "-o", "out", "-q", "-p", "wander.py", "--set", "train.loss=wandering"]) == 0
    assert Path.cwd() == elsewhere, "the plugin did change directory"
    assert len(list((tmp_path / "out" / "tiny" / "runs").glob("*/seed-*/record.json"))) == 2
    assert (tmp_path / "out" / "tiny" / "report" / "index.html").is_file()
    assert not list(elsewhere.iterdir()), "nothing may be written where the plugin went"


# ------------------------------------------------------------------------ SIGTERM


def test_sigterm_stops_a_run_with_one_line_keeping_its_records_and_no_temporary_file(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(TINY.replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3]"))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-m", "segbench", "run", str(suite), "-o", str(out), "-q"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list(out.glob("tiny/runs/*/seed-*/record.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    kept = list(out.glob("tiny/runs/*/seed-*/record.json"))
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == f"segbench: terminated: {len(kept)} finished runs kept"
    assert stderr.count("terminated") == 1 and "Traceback" not in stderr
    assert 1 <= len(kept) < 8 and all(json.loads(path.read_text())["status"] == "ok" for path in kept)
    assert not list(out.rglob("*.tmp")), "a temporary file was left"


def test_a_read_only_results_folder_is_exit_2_before_anything_trains(tmp_path, monkeypatch, capsys):
    """As a read-only file system answers (EROFS, which root meets too): the probe write at
    the lock fails, so nothing is built or trained and nothing is left behind."""
    import segbench.store

    def read_only(folder):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(segbench.store, "probe_write", read_only)
    (tmp_path / "suite.toml").write_text(TINY)
    assert main(["run", str(tmp_path / "suite.toml"), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert f"cannot write results to {tmp_path / 'out' / 'tiny'}: Read-only file system" in capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "the folders it made are removed again"


def test_baseline_save_past_the_file_size_limit_is_exit_2(tmp_path):
    """A real limit (``ulimit -f``): Python ignores SIGXFSZ, so the write fails with EFBIG."""
    from .harness import finished_results

    results = finished_results()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = f"ulimit -f 1 && exec {sys.executable} -m segbench baseline save {results} -o {tmp_path / 'base.json'}"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"could not write {tmp_path / 'base.json'}: File too large" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir()), "no half file, no temporary file"
