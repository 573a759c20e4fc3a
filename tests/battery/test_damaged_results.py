"""Battery rows for issue 13, root cause 2: damaged results never crash ``run``,
``report``, ``gate``, ``compare``, ``baseline save`` or ``doctor``; the damaged file is
named. Each row damages the finished tiny results (``{results}/tiny``) one way.

Under ``run`` a damaged record's run is redone (exit 0) and the file kept aside as
``record.json.corrupt``; the read-only commands leave it out and move nothing."""

import json
import math
import os

import pytest

from segbench.gate import save_baseline

from .harness import Case, check_case, run_case, tiny


def first_record(tmp):
    return min((tmp / "results" / "tiny").glob("runs/*/seed-*/record.json"))


def edited(**changes):
    def damage(path):
        record = json.loads(path.read_text())
        record.update(changes)
        path.write_text(json.dumps(record))
    return damage


def without(key):
    def damage(path):
        record = json.loads(path.read_text())
        del record[key]
        path.write_text(json.dumps(record))
    return damage


def made_a_directory(path):
    path.unlink()
    path.mkdir()
    (path / "inside").write_text("x")


def made_a_fifo(path):
    path.unlink()
    os.mkfifo(path)  # opened as a file, it would block its reader for ever


def made_a_dangling_link(path):
    path.unlink()
    path.symlink_to(path.with_name("gone.json"))


def nan_metric(path):
    record = json.loads(path.read_text())
    record["metrics"]["miou"] = math.nan
    path.write_text(json.dumps(record))  # json writes the NaN literal that Python reads back


DAMAGES = {  # name -> (how the record is damaged, a fragment of the problem named)
    "truncated": (lambda p: p.write_text(p.read_text()[:300]), "looks truncated"),
    "empty": (lambda p: p.write_text(""), "is empty"),
    "garbage": (lambda p: p.write_text("garbage, not JSON"), "is not valid JSON"),
    "binary": (lambda p: p.write_bytes(b"\x89PNG\xff\xfe\x00"), "is not UTF-8 text"),
    "json-list": (lambda p: p.write_text("[1, 2, 3]"), "holds a JSON array, not a run record"),
    "json-null": (lambda p: p.write_text("null"), "holds a JSON null"),
    "directory": (made_a_directory, "is a directory, not a file"),
    "fifo": (made_a_fifo, "is a named pipe (FIFO), not a regular file"),
    "dangling-link": (made_a_dangling_link, "gone.json', which does not exist (a dangling link)"),
    "no-metrics": (edited(metrics={}), "says status ok but holds no metrics"),
    "null-metric": (edited(metrics={"miou": None, "dice": 0.5}), "metric 'miou' is null"),
    "nan-metric": (nan_metric, "metric 'miou' is nan"),
    "wrong-seed": (edited(seed=7), "names seed 7 but sits in folder"),
    "wrong-variant": (edited(variant_id="0123456789ab"), "names variant '0123456789ab'"),
    "string-seed": (edited(seed="0"), "field 'seed' is a JSON string, expected integer"),
    "no-variant-id": (without("variant_id"), "is not a run record: no variant_id"),
}


def damage_record(name):
    return lambda tmp: DAMAGES[name][0](first_record(tmp))


def damage_file(pattern, content):
    def damage(tmp):
        path = next((tmp / "results" / "tiny").glob(pattern))
        if content is None:
            path.unlink()
            path.mkdir()
        else:
            path.write_text(content)
    return damage


def with_baseline(then):
    """Save the sound results as {tmp}/base.json, then damage them."""
    def setup(tmp):
        save_baseline(tmp / "results", tmp / "base.json")
        then(tmp)
    return setup


def both(*setups):
    def setup(tmp):
        for one in setups:
            one(tmp)
    return setup


def edited_summary(key, value):
    def damage(tmp):
        path = tmp / "results" / "tiny" / "suite.json"
        summary = json.loads(path.read_text())
        summary[key] = value(summary) if callable(value) else value
        path.write_text(json.dumps(summary))
    return damage


SUMMARY_FIELDS = [  # (name, key, value, a fragment of the problem named)
    ("alpha-text", "stats", lambda s: {**s["stats"], "alpha": "x"}, "suite.json: field 'stats' key 'alpha': expected a number > 0 and < 0.5"),
    ("alpha-big", "stats", lambda s: {**s["stats"], "alpha": 7}, "field 'stats' key 'alpha': expected a number > 0 and < 0.5"),
    ("correction", "stats", lambda s: {**s["stats"], "correction": "bonferroni"}, "field 'stats' key 'correction'"),
    ("adaptive-without-bounds", "design", {"kind": "adaptive"}, "field 'design' (adaptive seeds): no min, max"),
    ("design-kind", "design", {"kind": 5}, "field 'design' has kind 5"),
    ("margin-table", "stats", lambda s: {**s["stats"], "margins": {"miou": 0}}, "field 'stats' key 'margins': expected a number > 0"),
    ("direction-text", "higher_is_better", {"miou": "yes"}, "field 'higher_is_better' maps 'miou' to a JSON string"),
    ("no-metrics", "metrics", [], "field 'primary' is 'miou', which is not one of its 'metrics' []"),
    ("unknown-baseline", "baseline_id", "0123", "field 'baseline_id' is '0123', which is not one of its 'variant_order'"),
]


def edited_baseline(change):
    def damage(tmp):
        path = tmp / "base.json"
        payload = json.loads(path.read_text())
        change(payload)
        path.write_text(json.dumps(payload))
    return damage


def first_values(payload):
    return payload["variants"][0]["metrics"]["miou"]["values"]


BASELINE_DAMAGES = {  # name -> (how base.json is damaged, a fragment of the problem named)
    "no-variants": (lambda b: b.pop("variants"), "base.json is damaged: field 'variants' is a JSON null, expected a list"),
    "variant-text": (lambda b: b["variants"].__setitem__(0, "x"), "is damaged: variants[0] is a JSON string, expected an object"),
    "no-id": (lambda b: b["variants"][0].pop("id"), "variants[0] (id None) has no variant id"),
    "seeds-text": (lambda b: b["variants"][0].__setitem__("seeds", "0,1"), "field 'seeds' is '0,1', expected a list of integer seeds"),
    "value-text": (lambda b: first_values(b).__setitem__("0", "0.5"), "field 'metrics.miou' value of seed 0 is '0.5', expected a finite number"),
    "value-bool": (lambda b: first_values(b).__setitem__("0", True), "value of seed 0 is a JSON boolean"),
    "seed-key": (lambda b: first_values(b).__setitem__("first", 0.5), "has a value for seed 'first', expected an integer seed"),
    "no-values": (lambda b: b["variants"][0]["metrics"]["miou"].pop("values"), "field 'metrics.miou' has no 'values' object"),
    "metrics-list": (lambda b: b["variants"][0].__setitem__("metrics", []), "field 'metrics' is a JSON array, expected an object"),
    "schema-text": (lambda b: b.__setitem__("schema", "one"), "base.json has schema 'one'; this segbench reads schema 1"),
    "foreign": (lambda b: b.__setitem__("format", "other"), "base.json is not a segbench baseline"),
}


GATE = ["gate", "{results}", "--baseline", "{tmp}/base.json", "--rule", "miou:max_drop=0.5,noise=ignore"]
REPORT, DOCTOR, COMPARE = ["report", "{results}"], ["doctor", "{results}"], ["compare", "{results}", "{results}"]
SAVE = ["baseline", "save", "{results}", "-o", "{tmp}/saved.json"]
RUN = ["run", "{suite}", "-o", "{results}", "-q"]

CASES = [
    # Every damage is listed by doctor (exit 1); report draws without the file, and names it.
    *[Case(f"doctor-record-{name}", DOCTOR, 1, says, setup=damage_record(name), results=True) for name, (_, says) in DAMAGES.items()],
    *[Case(f"report-record-{name}", REPORT, 0, DAMAGES[name][1], setup=damage_record(name), results=True)
      for name in ("truncated", "garbage", "json-list", "directory", "fifo", "dangling-link", "null-metric", "wrong-variant")],
    # run: the damaged run is redone, the file kept aside (each row trains one run; more in the test below).
    *[Case(f"run-record-{name}", RUN, 0, "aside as record.json.corrupt", suite=tiny(), setup=damage_record(name), results=True)
      for name in ("nan-metric", "wrong-seed", "fifo")],
    Case("run-samples-and-record", RUN, 0, "written again", suite=tiny(),
         setup=both(damage_file("samples/*.json", '{"inputs": "AAAA"}'), damage_record("empty")), results=True),
    Case("run-suite-json-directory", RUN, 0, "aside as suite.json.corrupt", suite=tiny(), setup=damage_file("suite.json", None), results=True),
    # gate: a damaged candidate is bad input (exit 2), named; compare and baseline save leave the damaged run out and name it.
    *[Case(f"gate-record-{name}", GATE, 2, DAMAGES[name][1], setup=with_baseline(damage_record(name)), results=True)
      for name in DAMAGES],
    *[Case(f"compare-record-{name}", COMPARE, 0, DAMAGES[name][1], setup=damage_record(name), results=True)
      for name in ("truncated", "json-list", "no-metrics")],
    *[Case(f"baseline-save-record-{name}", SAVE, 0, DAMAGES[name][1], setup=damage_record(name), results=True)
      for name in ("empty", "binary", "nan-metric")],
    # suite.json: the report needs it (exit 2, named); the others do without it.
    Case("report-suite-json-garbage", REPORT, 2, "suite.json: is not valid JSON", setup=damage_file("suite.json", "{oops"), results=True),
    Case("report-suite-json-wrong-shape", REPORT, 2, "suite.json: is not a suite summary: no", setup=damage_file("suite.json", '{"name": "tiny"}'),
         results=True),
    Case("report-suite-json-directory", REPORT, 2, "the report cannot be drawn without it", setup=damage_file("suite.json", None), results=True),
    Case("gate-suite-json-empty", GATE, 2, "suite.json: is empty", setup=with_baseline(damage_file("suite.json", "")), results=True),
    Case("compare-suite-json-list", COMPARE, 0, "holds a JSON array, not a suite summary", setup=damage_file("suite.json", "[]"), results=True),
    Case("doctor-suite-json", DOCTOR, 1, "suite.json: is not valid JSON", setup=damage_file("suite.json", '{"name": '), results=True),
    # samples: the report is drawn without its prediction grid.
    Case("report-samples-garbage", REPORT, 0, "drawn without its prediction grid", setup=damage_file("samples/*.json", "garbage"), results=True),
    Case("report-samples-bad-arrays", REPORT, 0, "inputs are not readable encoded arrays",
         setup=damage_file("samples/*.json", '{"inputs": "bm90IGFuIG5weg=="}'), results=True),
    Case("doctor-samples-directory", DOCTOR, 1, "is a directory, not a file", setup=damage_file("samples/*.json", None), results=True),
    # Nothing usable left: exit 2 saying so; a sound folder: doctor exits 0.
    Case("report-all-records-damaged", REPORT, 2, "every run record is damaged",
         setup=lambda tmp: [p.write_text("") for p in (tmp / "results" / "tiny").glob("runs/*/seed-*/record.json")], results=True),
    Case("gate-all-records-damaged", GATE, 2, "no usable run records (4 damaged file(s) left out; `segbench doctor",
         setup=with_baseline(lambda tmp: [p.write_text("[]") for p in (tmp / "results" / "tiny").glob("runs/*/seed-*/record.json")]),
         results=True),
    # A record written by a newer segbench is not damage: every command stops with exit 2, naming it.
    *[Case(f"{name}-record-newer-schema", argv, 2, "was written by a newer segbench (schema 99 > 1); upgrade segbench",
           suite=tiny() if argv is RUN else None, setup=with_baseline(lambda tmp: edited(schema=99)(first_record(tmp))), results=True)
      for name, argv in (("doctor", DOCTOR), ("report", REPORT), ("compare", COMPARE), ("baseline-save", SAVE), ("gate", GATE), ("run", RUN))],
    Case("gate-baseline-newer-schema", GATE, 2, "base.json was written by a newer segbench (schema 2 > 1); upgrade segbench",
         setup=with_baseline(lambda tmp: edited(schema=2)(tmp / "base.json")), results=True),
    # suite.json missing, or with fields out of bounds: doctor names it, report stops (exit 2), gate refuses it (exit 2).
    Case("doctor-suite-json-missing", DOCTOR, 1, "suite.json: is missing (`segbench run` writes it)",
         setup=lambda tmp: next((tmp / "results" / "tiny").glob("suite.json")).unlink(), results=True),
    Case("doctor-suite-json-fifo", DOCTOR, 1, "suite.json: is a named pipe (FIFO)", setup=lambda tmp: made_a_fifo(tmp / "results/tiny/suite.json"),
         results=True),
    Case("gate-suite-json-bad-rule", ["gate", "{results}", "--baseline", "{tmp}/base.json"], 2, "suite.json: field 'gate_rules': ",
         setup=with_baseline(edited_summary("gate_rules", ["miou:maxdrop=0.1"])), results=True),
    *[Case(f"{command}-suite-json-{name}", argv, code, says, setup=with_baseline(edited_summary(key, value)), results=True)
      for name, key, value, says in SUMMARY_FIELDS for command, argv, code in (("report", REPORT, 2), ("doctor", DOCTOR, 1), ("gate", GATE, 2))],
    # A damaged baseline file is bad input (exit 2), named with the entry and field at fault.
    *[Case(f"gate-baseline-{name}", GATE, 2, says, setup=with_baseline(edited_baseline(change)), results=True)
      for name, (change, says) in BASELINE_DAMAGES.items()],
    Case("gate-baseline-fifo", GATE, 2, "base.json: is a named pipe (FIFO), not a regular file",
         setup=with_baseline(lambda tmp: made_a_fifo(tmp / "base.json")), results=True),
    Case("doctor-clean", DOCTOR, 0, "4 finished run(s), 0 damaged file(s), 0 run(s) to redo", results=True),
    Case("baseline-file-truncated", GATE, 2, "base.json: is not valid JSON",
         setup=with_baseline(lambda tmp: (tmp / "base.json").write_text((tmp / "base.json").read_text()[:50])), results=True),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case, tmp_path):
    check_case(case, tmp_path)


@pytest.mark.parametrize("name", ["truncated", "directory"])
def test_reading_commands_move_nothing_and_run_keeps_the_file(name, tmp_path):
    """report, gate, compare, doctor and baseline save leave the damaged file where it is;
    run moves it aside, as it was, and writes the redone run's record in its place."""
    case = Case(name, REPORT, 0, "", setup=damage_record(name), results=True)
    run_case(case, tmp_path)
    path = first_record(tmp_path)
    damaged = path.read_bytes() if path.is_file() else None
    for argv in (DOCTOR, COMPARE, SAVE):
        run_case(Case(name, argv, 0, ""), tmp_path)
    assert (path.read_bytes() if path.is_file() else None) == damaged and not list(path.parent.glob("*.corrupt*"))
    (tmp_path / "suite.toml").write_text(tiny())
    code, text = run_case(Case(name, RUN, 0, ""), tmp_path)
    aside = path.with_name("record.json.corrupt")
    assert code == 0 and str(path) in text
    assert aside.is_dir() if damaged is None else aside.read_bytes() == damaged
    assert json.loads(path.read_text())["status"] == "ok"
