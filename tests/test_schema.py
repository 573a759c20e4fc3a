"""The suite schema (segbench/schema.py) is declared once; validation, the defaults, `--set`,
the JSON Schema of `segbench schema` and docs/suite-reference.md all derive from it, and
they agree (issue 15, item 6)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest

from segbench import schema
from segbench.cli import main
from segbench.errors import SuiteError
from segbench.plugins import load_catalogue
from segbench.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "suites").glob("*.toml")) + sorted((ROOT / "suites" / "reference").glob("*.toml"))
VALIDATOR = jsonschema.Draft7Validator(schema.json_schema())


def schema_errors(text: str) -> list:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(tomllib.loads(text))]


# --------------------------------------------------------------------------- generated files


@pytest.mark.parametrize("path, generate", [
    ("docs/suite-reference.md", schema.reference_markdown),
    ("docs/suite.schema.json", lambda: json.dumps(schema.json_schema(), indent=2) + "\n"),
], ids=["reference", "json-schema"])
def test_the_committed_generated_files_are_current(path, generate):
    command = schema.REGENERATE if path.endswith(".md") else "segbench schema > docs/suite.schema.json"
    assert (ROOT / path).read_text(encoding="utf-8") == generate(), f"{path} is stale; regenerate it: {command}"


def test_the_reference_lists_every_declared_key_with_its_default():
    reference = (ROOT / "docs" / "suite-reference.md").read_text(encoding="utf-8")
    for dotted, key in schema.walk():
        assert f"| `{dotted}` |" in reference, dotted
    assert '| `train.schedule` | `"constant"` or `"cosine"` or `"poly"` | `"cosine"` |' in reference
    assert "| `eval.primary` |" in reference and "| `description` |" in reference and "| `report.exporters` |" in reference


# --------------------------------------------------------------------------- the JSON Schema


def test_the_json_schema_is_a_valid_draft_07_schema():
    document = schema.json_schema()
    assert document["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(document)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_suite_passes_the_json_schema(path):
    assert schema_errors(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("text, where", [
    ('[train]\nschedule = "cosin"\n', "train.schedule"),
    ('[train]\nepoch = 3\n', "train"),
    ('seedz = [0]\n', ""),
    ('[train]\noptimizer = { name = "adam", momentum = 0.9 }\n', "train.optimizer"),
    ('[train]\ndevice = "cuda:x"\n', "train.device"),
    ('[eval]\ninference = { mode = "slid" }\n', "eval.inference"),
    ('[eval]\ninference = { mode = "slide", crop = 512 }\n', "eval.inference"),
    ('[stats]\ncorrection = "bonferroni"\n', "stats.correction"),
    ('seeds = { min = 3, max = 12, spending = "linear" }\n', "seeds"),
    ('[gate]\nrules = ["miou:max_dorp=0.01"]\n', "gate.rules.0"),
    ('[report]\nexporters = [""]\n', "report.exporters.0"),
    ('[ablate]\n"upsampler" = ["nearest"]\n', "ablate"),
])
def test_a_wrong_value_or_an_unknown_key_fails_the_json_schema(text, where):
    errors = schema_errors(text)
    assert errors and any(error.startswith(f"{where}: ") for error in errors), errors


def _json_enum(node: dict, path: list) -> set:
    """Every value the JSON Schema enumerates at ``path``, over all its anyOf branches."""
    branches = node.get("anyOf", [node])
    if len(branches) > 1 or branches[0] is not node:
        return set().union(*(_json_enum(branch, path) for branch in branches))
    if not path:
        values = set(node.get("enum", ()))
        return values | {False, True} if node.get("type") == "boolean" else values
    child = node.get("properties", {}).get(path[0])
    return _json_enum(child, path[1:]) if child is not None else set()


CHOICE_KEYS = [(dotted, key) for dotted, key in schema.walk() if key.choices]
# A suite in which every key with choices can be set by --set (seeds adaptive, so that
# seeds.spending exists).
BASE = 'seeds = { min = 2, max = 3 }\n[dataset]\nname = "shapes"\nimage_size = 32\nnum_train = 8\nnum_val = 4\n'


def _problems_at(path, dotted, value, catalogue) -> list:
    try:
        load_suite(path, lambda plugins, base_dir: catalogue, overrides={dotted: value})
    except SuiteError as error:
        return [p for p in error.problems if p.startswith(f"{dotted}:")]
    return []


def test_the_keys_with_choices_are_the_enum_lists_of_the_json_schema_and_the_validator(write_suite):
    assert {dotted for dotted, _ in CHOICE_KEYS} >= {"train.schedule", "train.amp", "train.data_placement", "train.deterministic",
                                                     "train.optimizer.name", "eval.inference.mode", "stats.correction", "seeds.spending"}
    path, catalogue = write_suite(BASE), load_catalogue([])  # the standard components, loaded once
    for dotted, key in CHOICE_KEYS:
        assert _json_enum(schema.json_schema(), dotted.split(".")) == set(key.choices), dotted
        for value in key.choices:
            assert _problems_at(path, dotted, value, catalogue) == [], (dotted, value)
        assert _problems_at(path, dotted, "no-such-value", catalogue), dotted


# --------------------------------------------------------------------------- the loader derives from it


def test_an_empty_suite_resolves_to_the_declared_defaults(write_suite):
    (variant,) = load_suite(write_suite('name = "plain"\n'), load_catalogue).variants
    train, evaluation = variant.config["train"], variant.config["eval"]
    for key in schema.TRAIN.keys:
        if key.name in ("loss",):
            assert train["loss"]["name"] == key.default
        else:
            assert train[key.name] == key.default, key.name
    assert [m["name"] for m in evaluation["metrics"]] == schema.EVAL["metrics"].default
    assert evaluation["inference"] == schema.EVAL["inference"].default
    assert variant.config["model"]["upsampler"]["name"] == schema.MODEL["upsampler"].default


def test_a_changed_declaration_changes_what_the_loader_accepts(write_suite):
    """Validation reads the declaration itself, not a copy of it."""
    path = write_suite('[train]\nschedule = "step"\n')
    with pytest.raises(SuiteError, match="unknown schedule 'step'"):
        load_suite(path, load_catalogue)
    schedule, declared = schema.TRAIN["schedule"], schema.TRAIN["schedule"].type
    object.__setattr__(schedule, "type", schema.Choice((*declared.values, "step")))  # keys are frozen: only a test does this
    try:
        assert load_suite(path, load_catalogue).variants[0].config["train"]["schedule"] == "step"
    finally:
        object.__setattr__(schedule, "type", declared)


# A key a test declares in one table at a time: every table of the suite file resolves through
# its declaration, so the key is checked (1 to 5) and reaches what the suite is loaded into.
EXTRA = schema.Key("extra", schema.Integer(1, 5), "a key declared by a test", 3)
EVERY_TABLE = [  # table, where, the suite with extra = {}, the same without it, where the loaded suite holds it
    (schema.TRAIN, "train.extra", "[train]\nextra = {}\n", "", lambda suite: suite.variants[0].config["train"]["extra"]),
    (schema.EVAL, "eval.extra", "[eval]\nextra = {}\n", "", lambda suite: suite.variants[0].config["eval"]["extra"]),
    (schema.STATS, "stats.extra", "[stats]\nextra = {}\n", "", lambda suite: suite.settings["stats"]["extra"]),
    (schema.ADAPTIVE_SEEDS, "seeds.extra", "seeds = {{ min = 2, max = 3, extra = {} }}\n", "seeds = { min = 2, max = 3 }\n",
     lambda suite: suite.settings["seeds"]["extra"]),
    (schema.GATE, "gate.extra", "[gate]\nextra = {}\n", "", lambda suite: suite.settings["gate"]["extra"]),
    (schema.REPORT, "report.extra", "[report]\nextra = {}\n", "", lambda suite: suite.settings["report"]["extra"]),
]


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue([])


@pytest.mark.parametrize("table, where, given, absent, held", EVERY_TABLE, ids=[row[1] for row in EVERY_TABLE])
def test_a_key_declared_in_any_table_is_checked_and_reaches_the_configuration(table, where, given, absent, held, write_suite, catalogue,
                                                                              monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(vars(table), "keys", (*table.keys, EXTRA))  # a scratch declaration; keys are frozen otherwise
    load = lambda text, file: load_suite(write_suite(f'name = "x"\n{text}', file), lambda plugins, base_dir: catalogue)
    assert held(load(given.format(4), "given.toml")) == 4
    assert held(load(absent, "absent.toml")) == 3  # its default
    with pytest.raises(SuiteError) as caught:
        load(given.format(9), "bad.toml")
    assert f"{where}: expected an integer from 1 to 5, got 9 (int)" in caught.value.problems
    assert main(["run", str(tmp_path / "bad.toml"), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert f"{where}: expected an integer from 1 to 5" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_timeout_s_has_a_ceiling_that_the_run_alarm_and_the_executors_can_enforce(write_suite, catalogue, capsys, tmp_path):
    """About 1e10 s passed validation once, then failed every run with an OverflowError."""
    import threading

    from segbench.execute import time_limit
    from segbench.executors.process import KILL_GRACE_S

    huge = write_suite("[train]\ntimeout_s = 1e10\n", "huge.toml")
    assert main(["run", str(huge), "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "train.timeout_s: expected a number of seconds > 0 and at most 2,592,000 (30 days" in err and "got 10000000000.0 (float)" in err
    ceiling = write_suite(f"[train]\ntimeout_s = {schema.MAX_TIMEOUT_S}\n", "ceiling.toml")
    assert load_suite(ceiling, lambda plugins, base_dir: catalogue).variants[0].config["train"]["timeout_s"] == schema.MAX_TIMEOUT_S
    assert schema.MAX_TIMEOUT_S + KILL_GRACE_S < threading.TIMEOUT_MAX  # the process executor's waits take it
    with time_limit(schema.MAX_TIMEOUT_S):  # and so does the run's own alarm
        pass


@pytest.mark.parametrize("name", ["smoke", "good name", "é", "a/b", "a\\b", ".", "..", " ", "x\x01", "a" * 100, "a" * 101])
def test_the_json_schema_and_the_loader_agree_on_suite_names(name):
    from segbench.suite import suite_name_problem

    assert (suite_name_problem(name) is None) == (schema_errors(f"name = {json.dumps(name)}\n") == [])


def test_the_device_must_name_a_cuda_index_by_number():
    device = schema.TRAIN["device"]
    assert device.problem("cuda:1") is None and device.problem("cpu") is None
    assert device.problem("cuda:x") == "expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got 'cuda:x' (str)"


# --------------------------------------------------------------------------- [report]


def test_report_exporters_are_read_and_can_be_set(write_suite):
    plain = write_suite('name = "plain"\n', "plain.toml")
    assert load_suite(plain, load_catalogue).report_exporters == ()
    exporting = write_suite('[report]\nexporters = ["mlflow"]\n', "exporting.toml")
    assert load_suite(exporting, load_catalogue).report_exporters == ("mlflow",)
    assert load_suite(plain, load_catalogue, overrides={"report.exporters": ["a", "b"]}).report_exporters == ("a", "b")


@pytest.mark.parametrize("text, where, words", [
    ('[report]\nexporters = "mlflow"\n', "report.exporters", "expected a list of exporter names"),
    ('[report]\nexporters = ["mlflow", ""]\n', "report.exporters[1]", "expected a non-empty string"),
    ('[report]\nexporter = ["mlflow"]\n', "report.exporter", "did you mean report.exporters?"),
    ('report = 3\n', "report", "expected a table [report]"),
])
def test_bad_report_tables_are_refused_naming_the_key(write_suite, text, where, words):
    with pytest.raises(SuiteError) as error:
        load_suite(write_suite(text), load_catalogue)
    assert any(p.startswith(f"{where}: ") and words in p for p in error.value.problems), error.value.problems


# --------------------------------------------------------------------------- segbench schema


def test_segbench_schema_prints_the_json_schema_and_the_reference(capsys):
    from segbench.cli import main

    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == schema.json_schema()
    assert main(["schema", "--markdown"]) == 0
    assert capsys.readouterr().out == schema.reference_markdown()


def test_the_schema_module_imports_neither_torch_nor_pandas():
    code = "import sys, segbench.schema; print(sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------- the engine and the docs


def test_the_engine_implements_every_declared_schedule_and_optimizer():
    import torch

    from segbench.engine.build import build_optimizer, build_schedule

    model = torch.nn.Linear(2, 2)
    for name in schema.TRAIN["schedule"].choices:
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        build_schedule(name, optimizer, total_steps=10)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(1.0), name
    for name in schema.OPTIMIZER.tags:
        optimizer = build_optimizer(schema.OPTIMIZER.defaults(name), model)
        assert optimizer.param_groups[0]["lr"] == schema.OPTIMIZER.defaults(name)["lr"], name


def test_the_docs_name_only_suite_files_that_exist():
    named = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        named |= set(re.findall(r"\bsuites/[\w./-]+?\.toml\b", doc.read_text(encoding="utf-8")))
    assert named, "the docs name no suite at all"
    assert sorted(name for name in named if not (ROOT / name).is_file()) == []
