"""Damaged results are named and contained (issue 13, root cause 2): every file read from a
results folder goes through the store's checked loader. A damaged record counts as not
finished (``segbench run`` redoes it and keeps the file as ``record.json.corrupt``);
report, gate, compare and doctor name it and leave it out, and move nothing.

The runs are stand-ins (no training): an executor returns records with chosen values."""

import json
import math
import re
import shutil

import numpy as np
import pytest

from segbench import api
from segbench.cli import main
from segbench.doctor import diagnose, format_diagnosis
from segbench.errors import SegbenchError
from segbench.gate import load_baseline, save_baseline
from segbench.gate.results import load_results
from segbench.plugins import load_catalogue
from segbench.records import RECORD_SCHEMA, decode_arrays, encode_arrays, record_problem, samples_problem, summary_problem
from segbench.runner import finished_records, run_prepared
from segbench.store import ResultStore, read_json_file
from segbench.suite import load_suite

SUITE = """
name = "damaged"
seeds = [0, 1]
[ablate]
"model.upsampler" = ["nearest", "bilinear"]
"""


class StandInExecutor:
    """A finished record per run at once, with inputs for the prediction grid; remembers the runs it was given."""

    name, shows_epochs = "stand-in", False

    def __init__(self):
        self.runs = []

    def records(self, suite, pending, cache_dir, on_epoch=None):
        for variant, seed in pending:
            self.runs.append((variant.label, seed))
            yield record_of(suite, variant, seed)

    def close(self):
        pass


def record_of(suite, variant, seed):
    value = 0.6 + 0.01 * seed + (0.05 if "bilinear" in variant.label else 0.0)
    images, masks = np.zeros((2, 3, 8, 8), np.float32), np.zeros((2, 8, 8), np.uint8)
    return {"schema": RECORD_SCHEMA, "suite": suite.name, "variant_id": variant.id, "label": variant.label, "factors": variant.factors,
            "seed": seed, "config": variant.config, "is_baseline": variant.id == suite.baseline_id, "status": "ok", "wall_seconds": 0.1,
            "curves": {"epoch": [1], "miou": [value]}, "metrics": {"miou": value, "dice": value}, "cost": {"params": 10, "latency_ms": 1.0},
            "classes": ["background", "shape"], "ignore_index": 255,
            "samples": {"indices": [0, 1], "predictions": encode_arrays(predictions=masks), "inputs": encode_arrays(images=images, masks=masks)}}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A finished stand-in suite, run once per module: (suite, its results root)."""
    root = tmp_path_factory.mktemp("template")
    (root / "suite.toml").write_text(SUITE)
    suite = load_suite(root / "suite.toml", load_catalogue)
    run_prepared(suite, root / "results", quiet=True, cache_dir=root / "cache", executor=StandInExecutor())
    return suite, root / "results"


@pytest.fixture
def finished(template, tmp_path):
    """A fresh copy of the finished suite: (suite, its suite folder)."""
    suite, results = template
    shutil.copytree(results, tmp_path / "results")
    return suite, tmp_path / "results" / "damaged"


def rerun(suite, suite_dir):
    executor = StandInExecutor()
    outcome = run_prepared(suite, suite_dir.parent, quiet=True, cache_dir=suite_dir.parent.parent / "cache", executor=executor)
    return outcome, executor


def record_paths(suite_dir):
    return sorted(suite_dir.glob("runs/*/seed-*/record.json"))


def edit_record(path, **changes):
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


# What is wrong with a file, in words that say it.

SOUND = {"variant_id": "abc", "seed": 0, "status": "ok", "metrics": {"miou": 0.5}}


@pytest.mark.parametrize("payload, says", [
    ([1, 2], "holds a JSON array, not a run record"),
    (None, "holds a JSON null"),
    ({"seed": 0, "status": "ok"}, "no variant_id"),
    ({**SOUND, "seed": "0"}, "field 'seed' is a JSON string, expected integer"),
    ({**SOUND, "seed": True}, "field 'seed' is a JSON boolean"),
    ({**SOUND, "metrics": [0.5]}, "field 'metrics' is a JSON array"),
    ({**SOUND, "metrics": {}}, "status ok but holds no metrics"),
    ({k: v for k, v in SOUND.items() if k != "metrics"}, "status ok but holds no metrics"),
    ({**SOUND, "metrics": {"miou": None}}, "metric 'miou' is null, not a finite number"),
    ({**SOUND, "metrics": {"miou": math.nan}}, "metric 'miou' is nan"),
    ({**SOUND, "metrics": {"miou": math.inf}}, "metric 'miou' is inf"),
    ({**SOUND, "metrics": {"miou": "0.5"}}, "metric 'miou' is a JSON string"),
    ({**SOUND, "status": "failed", "error": {"type": 3}}, "its error 'type' is not a text"),
    ({**SOUND, "schema": RECORD_SCHEMA + 1}, f"record schema {RECORD_SCHEMA + 1}, written by a newer segbench"),
    ({**SOUND, "schema": 0}, "record schema 0; valid: 1"),
    ({**SOUND, "seed": 3}, "names seed 3 but sits in folder 'seed-0'"),
    ({**SOUND, "variant_id": "xyz"}, "names variant 'xyz' but sits in the folder of variant 'abc'"),
    ({**SOUND, "curves": {"miou": "0.5"}}, "curve 'miou' is not a list of numbers"),
    ({**SOUND, "curves": {"miou": [0.5, "x"]}}, "curve 'miou' is not a list of numbers"),
    ({**SOUND, "per_class": {"iou": {"cat": "x"}}}, "per-class 'iou' is not an object of numbers"),
    ({**SOUND, "cost": {"latency_ms": "fast"}}, "cost 'latency_ms' is a JSON string"),
    ({**SOUND, "bootstrap": {"replicates": {"miou": "not base64!"}}}, "bootstrap replicates of 'miou' are not readable encoded arrays"),
    ({**SOUND, "bootstrap": {"replicates": [1]}}, "bootstrap replicates are a JSON array"),
    ({**SOUND, "samples": {"predictions": "UEsDBA=="}}, "sample predictions are not readable encoded arrays"),
])
def test_a_wrong_record_says_what_is_wrong(payload, says):
    assert says in record_problem(payload, variant_folder="abc", seed_folder="seed-0")


def test_a_sound_record_has_no_problem_and_a_failed_one_needs_no_metrics():
    assert record_problem(SOUND, "abc", "seed-0") is None
    assert record_problem({**SOUND, "metrics": {}, "status": "failed"}, "abc", "seed-0") is None


@pytest.mark.parametrize("content, says", [
    ('{"variant_id": "abc", "se', "not valid JSON"),
    ("", "is empty"),
    ("  \n", "is empty"),
    ("garbage", "not valid JSON (Expecting value: line 1 column 1)"),
    (b"\xff\xfe\x00garbage", "not UTF-8 text"),
])
def test_an_unreadable_file_says_why(tmp_path, content, says):
    path = tmp_path / "record.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    payload, problem = read_json_file(path)
    assert payload is None and says in problem


def test_a_truncated_file_is_called_truncated_and_a_directory_a_directory(tmp_path):
    (tmp_path / "cut.json").write_text(json.dumps(SOUND)[:-7])
    assert "looks truncated" in read_json_file(tmp_path / "cut.json")[1]
    (tmp_path / "dir.json").mkdir()
    assert read_json_file(tmp_path / "dir.json") == (None, "is a directory, not a file")


def test_summary_and_samples_schemas():
    assert "no primary" in summary_problem({"name": "s", "metrics": [], "baseline_id": "a", "variant_order": []})
    assert "'variant_order' holds a JSON object" in summary_problem(
        {"name": "s", "primary": "miou", "metrics": ["miou"], "baseline_id": "a", "variant_order": [{}]})
    assert "no validation inputs" in samples_problem({"inputs": 3})
    assert "lack the images or the masks" in samples_problem({"inputs": encode_arrays(x=np.zeros(2))})
    with pytest.raises(ValueError, match="not readable encoded arrays"):
        decode_arrays("AAAA")


# run: a damaged record is not finished; its run is redone and the file kept aside.

@pytest.mark.parametrize("damage", ["truncate", "empty", "directory", "no-metrics", "nan", "wrong-seed"])
def test_run_redoes_a_damaged_run_and_keeps_the_file_aside(finished, capsys, damage):
    suite, suite_dir = finished
    path = record_paths(suite_dir)[0]
    original = path.read_text()
    if damage == "truncate":
        path.write_text(original[: len(original) // 2])
    elif damage == "empty":
        path.write_text("")
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    elif damage == "no-metrics":
        edit_record(path, metrics={})
    elif damage == "nan":
        edit_record(path, metrics={"miou": math.nan, "dice": 0.5})  # json writes the NaN literal Python reads back
        assert '"miou": NaN' in path.read_text()
    elif damage == "wrong-seed":
        edit_record(path, seed=7)
    kept = path.read_text() if path.is_file() else None
    capsys.readouterr()
    outcome, executor = rerun(suite, suite_dir)
    err = capsys.readouterr().err
    seed = int(path.parent.name.removeprefix("seed-"))
    assert len(executor.runs) == 1 and executor.runs[0][1] == seed, "only the damaged run is redone"
    assert str(path) in err and "left out; `segbench run` redoes that run" in err and "aside as record.json.corrupt" in err
    aside = path.with_name("record.json.corrupt")
    assert aside.is_dir() if damage == "directory" else aside.read_text() == kept, "the damaged file is kept, as it was"
    assert json.loads(path.read_text())["status"] == "ok" and len(outcome.records) == 4 and not outcome.failures


def test_a_second_damage_keeps_both_files(finished, capsys):
    suite, suite_dir = finished
    path = record_paths(suite_dir)[0]
    for garbage in ("first", "second"):
        path.write_text(garbage)
        rerun(suite, suite_dir)
    assert path.with_name("record.json.corrupt").read_text() == "first"
    assert path.with_name("record.json.corrupt.1").read_text() == "second"


def test_finished_records_leaves_damaged_runs_out_and_moves_nothing(finished, capsys):
    suite, suite_dir = finished
    paths = record_paths(suite_dir)
    paths[0].write_text("{")
    edit_record(paths[1], status="ok", metrics={"miou": None})
    store = ResultStore(suite_dir.parent, suite_dir.name)
    done = finished_records(suite, store)
    assert len(done) == 2 and [d.path for d in store.damaged] == paths[:2]
    assert paths[0].read_text() == "{" and not list(suite_dir.glob("runs/*/seed-*/*.corrupt")), "reading moves nothing"
    err = capsys.readouterr().err
    assert err.count("segbench: warning:") == 2 and "metric 'miou' is null" in err


def test_a_damaged_suite_json_is_written_again_by_run(finished, capsys):
    suite, suite_dir = finished
    (suite_dir / "suite.json").write_text("[]")
    _, executor = rerun(suite, suite_dir)
    assert executor.runs == [] and json.loads((suite_dir / "suite.json").read_text())["name"] == "damaged"
    assert (suite_dir / "suite.json.corrupt").read_text() == "[]"


def test_damaged_samples_are_written_again_when_their_runs_are_redone(finished, capsys):
    suite, suite_dir = finished
    samples = next(suite_dir.glob("samples/*.json"))
    samples.write_text('{"inputs": "garbage"}')
    for path in record_paths(suite_dir):
        path.write_text("")
    rerun(suite, suite_dir)
    assert samples_problem(json.loads(samples.read_text())) is None
    assert "written again" in capsys.readouterr().err


# A record written by a newer segbench is not damage: every command stops, naming it.

NEWER = f"was written by a newer segbench (schema {RECORD_SCHEMA + 1} > {RECORD_SCHEMA}); upgrade segbench"


@pytest.mark.parametrize("command", ["report", "gate", "compare", "doctor", "baseline save"])
def test_a_newer_record_stops_every_reader_with_exit_2_naming_it(finished, capsys, tmp_path, command):
    _, suite_dir = finished
    save_baseline(suite_dir, tmp_path / "base.json")
    path = record_paths(suite_dir)[1]
    edit_record(path, schema=RECORD_SCHEMA + 1, metrics="a layout this segbench does not know")
    before = sorted(p.name for p in suite_dir.rglob("*"))
    argv = {"gate": ["gate", str(suite_dir), "--baseline", str(tmp_path / "base.json"), "--rule", "miou:max_drop=0.5,noise=ignore"],
            "compare": ["compare", str(suite_dir), str(suite_dir)], "baseline save": ["baseline", "save", str(suite_dir), "-o", str(tmp_path / "b.json")]}
    assert main(argv.get(command, [command, str(suite_dir)])) == 2
    assert f"segbench: error: record {path} {NEWER}" in capsys.readouterr().err
    assert sorted(p.name for p in suite_dir.rglob("*")) == before, "nothing is moved aside"


def test_run_stops_at_a_newer_record_instead_of_redoing_its_run(finished, capsys):
    suite, suite_dir = finished
    path = record_paths(suite_dir)[0]
    edit_record(path, schema=RECORD_SCHEMA + 1)
    kept = path.read_text()
    with pytest.raises(SegbenchError, match=re.escape(f"record {path} {NEWER}")):
        rerun(suite, suite_dir)
    assert path.read_text() == kept and not path.with_name("record.json.corrupt").exists()


def test_a_newer_baseline_file_stops_the_gate(finished, tmp_path):
    _, suite_dir = finished
    baseline = tmp_path / "base.json"
    save_baseline(suite_dir, baseline)
    payload = json.loads(baseline.read_text())
    baseline.write_text(json.dumps({**payload, "schema": payload["schema"] + 1}))
    with pytest.raises(SegbenchError, match=f"baseline file {baseline} was written by a newer segbench .schema 2 > 1.; upgrade"):
        load_baseline(baseline)


# report, gate, compare, baseline save: damaged files named and left out.

def test_report_leaves_damaged_records_out_and_draws_without_a_damaged_grid(finished, capsys):
    _, suite_dir = finished
    paths = record_paths(suite_dir)
    paths[0].write_text("garbage")
    next(suite_dir.glob("samples/*.json")).write_text("{")
    (suite_dir / "report" / "plots" / "predictions.png").unlink()
    report = api.rebuild_report(suite_dir)
    err = capsys.readouterr().err
    assert report["runs"]["seed"].count() == 3 and paths[0].read_text() == "garbage"
    assert str(paths[0]) in err and "samples" in err and "drawn without its prediction grid" in err
    assert not (suite_dir / "report" / "plots" / "predictions.png").exists()


@pytest.mark.parametrize("content, says", [("{", "suite.json: is not valid JSON"), ('{"name": 1}', "is not a suite summary: no primary")])
def test_report_stops_with_exit_2_naming_a_damaged_suite_json(finished, content, says):
    _, suite_dir = finished
    (suite_dir / "suite.json").write_text(content)
    with pytest.raises(SegbenchError, match=says) as caught:
        api.rebuild_report(suite_dir)
    assert "the report cannot be drawn without it" in str(caught.value) and "segbench run" in str(caught.value)


def test_gate_and_baseline_read_only_sound_records(finished, capsys, tmp_path):
    _, suite_dir = finished
    paths = record_paths(suite_dir)
    edit_record(paths[0], seed=9)
    (suite_dir / "suite.json").write_text("")
    results = load_results(suite_dir)
    assert sum(len(v.ok) for v in results.variants) == 3 and results.meta == {}
    saved = save_baseline(suite_dir, tmp_path / "base.json")
    assert saved.runs == 3 and load_baseline(saved.path).suite == "damaged"
    err = capsys.readouterr().err
    assert "names seed 9 but sits in folder 'seed-" in err and "suite.json: is empty" in err
    assert paths[0].is_file() and not (suite_dir / "suite.json.corrupt").exists()


def test_results_with_only_damaged_records_say_so(finished):
    _, suite_dir = finished
    for path in record_paths(suite_dir):
        path.write_text("[]")
    with pytest.raises(SegbenchError, match=r"no usable run records \(4 damaged file\(s\) left out; `segbench doctor"):
        load_results(suite_dir)


def test_a_damaged_baseline_file_is_named(tmp_path):
    path = tmp_path / "base.json"
    path.write_text('{"format": "segbench-baseline", "sch')
    with pytest.raises(SegbenchError, match="base.json: is not valid JSON.*truncated.*segbench baseline save"):
        load_baseline(path)


# doctor: lists, exits 0 or 1, moves nothing.

def test_doctor_on_a_sound_folder_exits_0(finished, capsys):
    _, suite_dir = finished
    diagnosis = diagnose(suite_dir.parent)
    assert diagnosis.exit_code == 0 and diagnosis.damaged == [] and diagnosis.redo == []
    assert sum(map(len, diagnosis.finished.values())) == 4
    assert main(["doctor", str(suite_dir)]) == 0
    assert "4 finished run(s), 0 damaged file(s), 0 run(s) to redo" in capsys.readouterr().out


def test_doctor_lists_damage_and_the_runs_to_redo(finished, capsys):
    _, suite_dir = finished
    paths = record_paths(suite_dir)
    paths[0].write_text("")
    edit_record(paths[1], status="failed", error={"type": "RuntimeError", "message": "loss became NaN"})
    paths[2].unlink()
    samples = next(suite_dir.glob("samples/*.json"))
    samples.write_text("[")
    before = sorted(p.name for p in suite_dir.rglob("*"))
    assert main(["doctor", str(suite_dir)]) == 1
    out = capsys.readouterr()
    assert out.err == "", "doctor lists damage on stdout, once"
    assert "1 finished run(s), 2 damaged file(s), 3 run(s) to redo" in out.out
    assert f"{paths[0]}: is empty" in out.out and f"{samples}: is not valid JSON" in out.out
    assert "damaged record" in out.out and "failed: RuntimeError: loss became NaN" in out.out and "no record" in out.out
    assert sorted(p.name for p in suite_dir.rglob("*")) == before, "doctor moves nothing"


def test_doctor_text_is_one_line_per_entry_even_with_hostile_labels(finished):
    _, suite_dir = finished
    path = record_paths(suite_dir)[0]
    edit_record(path, status="failed", label="evil\x1b[2J\nlabel", error={"type": "E", "message": "m"})
    text = format_diagnosis(diagnose(suite_dir))
    assert "evil label seed" in text and "\x1b" not in text
