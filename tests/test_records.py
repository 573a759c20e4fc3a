"""The run record's declared schema, its version checked on read and migrated, and the
two owners: ``segbench.records`` reads records, ``segbench.layout`` names the files."""

import ast
import functools
import json
from pathlib import Path

import pytest

import segbench
from segbench import layout, records
from segbench.costs import COST_FIELDS
from segbench.errors import SegbenchError
from segbench.records import (MIGRATIONS, RECORD_SCHEMA, Record, DamagedFile, NewerSchemaError, read_record, record_problem,
                              schema_rows)

PACKAGE = Path(segbench.__file__).parent
SOUND = {"variant_id": "abc", "seed": 0, "status": "ok", "metrics": {"miou": 0.5}}


def write(tmp_path, payload, variant="abc", seed=0) -> Path:
    path = tmp_path / layout.SuiteFolder(tmp_path).record(variant, seed)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(payload))
    return path


# The declaration.

def test_every_field_is_documented_and_the_checks_come_from_the_declaration():
    rows = schema_rows()
    assert [name for name, _, _, doc in rows if not doc] == []
    assert {"cost.latency_ms", "bootstrap.replicates", "samples.inputs_key", "determinism.nondeterministic_ops"} <= {r[0] for r in rows}
    assert set(records.RECORD_FIELDS) == set(Record.__annotations__)
    assert records.REQUIRED_FIELDS == ("variant_id", "seed", "status")
    assert "field 'device' is a JSON integer, expected string" in record_problem({**SOUND, "device": 0})
    assert record_problem({**SOUND, "ignore_index": None}) is None, "a field declared `| None` may be null"


def test_the_cost_declaration_names_every_cost_field_segbench_measures():
    assert set(COST_FIELDS) <= set(records.Cost.__annotations__)


def test_a_cost_declared_as_text_is_text_and_every_other_cost_a_number():
    text = "whole: first validation image (375x500) rescaled to fit [2048, 512] -> 512x683"
    assert record_problem({**SOUND, "cost": {"input": text, "image_size": [512, 683], "latency_ms": 4.2}}) is None
    assert record_problem({**SOUND, "cost": {"input": 3}}) == "cost 'input' is a JSON integer, expected a string"
    assert record_problem({**SOUND, "cost": {"latency_ms": "fast"}}) == "cost 'latency_ms' is a JSON string, expected a number"


@functools.cache
def _modules() -> tuple:
    """(path under segbench/, parsed module) of every module, parsed once for these tests."""
    return tuple((path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(PACKAGE.rglob("*.py")))


def _written_keys(function_name: str) -> set:
    """The string keys a writer function puts in a record: its returned dict literals and
    its ``record["key"] = ...`` assignments."""
    found = [node for _, tree in _modules() for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == function_name]
    assert found, f"no function {function_name} in segbench: update this test to the writer's new name"
    keys = set()
    for node in ast.walk(found[0]):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict):
            keys |= {key.value for key in node.value.keys if isinstance(key, ast.Constant)}
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) and ast.unparse(node.value) == "record":
            keys |= {node.slice.value} if isinstance(node.slice, ast.Constant) else set()
    return keys


@pytest.mark.parametrize("writer", ["new_record", "finish_record", "failed_record", "execute", "_run_one"])
def test_every_field_a_writer_puts_in_a_record_is_declared(writer):
    undeclared = _written_keys(writer) - set(Record.__annotations__)
    assert not undeclared, f"{writer} writes {sorted(undeclared)}: declare them in segbench.records.Record"


# The version: newer refused, older migrated.

def test_a_newer_record_is_refused_naming_the_file_and_both_versions(tmp_path):
    path = write(tmp_path, {**SOUND, "schema": RECORD_SCHEMA + 1, "metrics": "whatever a newer segbench writes"})
    with pytest.raises(NewerSchemaError) as caught:
        read_record(path)
    assert str(caught.value) == (f"record {path} was written by a newer segbench (schema {RECORD_SCHEMA + 1} > {RECORD_SCHEMA}); "
                                 "upgrade segbench to read it")
    assert isinstance(caught.value, SegbenchError) and caught.value.exit_code == 2


def test_every_version_segbench_wrote_is_read():
    """A change of RECORD_SCHEMA comes with the migration from the version before it."""
    assert records.oldest_readable(RECORD_SCHEMA, MIGRATIONS) == 1


def test_a_version_no_segbench_wrote_is_damage(tmp_path):
    with pytest.raises(DamagedFile, match="has record schema 0; valid: 1"):
        read_record(write(tmp_path, {**SOUND, "schema": 0}))


def _from_the_first_environment(record: dict) -> dict:
    """A migration as segbench would write one: records before commit c329559 named the
    working directory's commit ``environment.git_commit``; later ones name segbench's own
    (``segbench_commit``) and the suite's repository's (``suite_commit``)."""
    environment = dict(record.get("environment") or {})
    if "git_commit" in environment:
        environment["segbench_commit"] = environment.pop("git_commit")
        environment.setdefault("suite_commit", None)
    return {**record, "environment": environment}


@pytest.fixture
def version_2(monkeypatch):
    """segbench as it would be with record schema 2 and the migration from 1."""
    monkeypatch.setattr(records, "RECORD_SCHEMA", 2)
    monkeypatch.setitem(MIGRATIONS, 1, _from_the_first_environment)


@pytest.mark.parametrize("version", [1, None])
def test_an_older_record_is_migrated_on_read(tmp_path, version_2, version):
    """As written before c329559 (schema 1), or by hand with no version at all (read as 1)."""
    old = {**SOUND, "environment": {"python": "3.11.7", "git_commit": "26892e2"}}
    path = write(tmp_path, old if version is None else {**old, "schema": version})
    read = read_record(path)
    assert read["schema"] == 2 and read["environment"] == {"python": "3.11.7", "segbench_commit": "26892e2", "suite_commit": None}
    assert json.loads(path.read_text()) == json.loads(json.dumps(old if version is None else {**old, "schema": version})), "read only"
    with pytest.raises(NewerSchemaError, match=r"\(schema 3 > 2\)"):
        read_record({**SOUND, "schema": 3})


def test_a_record_of_the_current_version_is_read_as_it_is(tmp_path):
    record = {**SOUND, "schema": RECORD_SCHEMA, "label": "a", "factors": {}, "cost": {}, "environment": {"git_commit": "x"}}
    assert read_record(write(tmp_path, record)) == record


# The owners: only records.py and store.py parse record files; only layout.py names the files.

JSON_READERS = {"records.py", "store.py",
                "gate/baseline.py",  # a baseline is not a record: its own format and version (gate.baseline.SCHEMA)
                "data/cache.py",  # nor is a sample-cache entry's index: its own format (data.cache.ENTRY_FORMAT)
                "plugins.py"}  # nor a distribution's direct_url.json (PEP 610), which says an install is editable
PARSERS = {"load", "loads", "read_json_file", "read_json"}


def _called_name(call: ast.Call) -> str:
    return ast.unparse(call.func).rsplit(".", 1)[-1]


def test_only_the_record_owners_parse_json_files():
    """A reader that opened record.json itself would skip the version check and the layout checks."""
    parsing = {name for name, tree in _modules() for node in ast.walk(tree)
               if isinstance(node, ast.Call) and _called_name(node) in PARSERS
               and ("json" in ast.unparse(node.func) or _called_name(node).startswith("read_json"))}
    assert parsing <= JSON_READERS, f"{sorted(parsing - JSON_READERS)} parse JSON: read results through segbench.store / segbench.records"


LAYOUT_NAMES = {value for name, value in vars(layout).items() if name.isupper() and isinstance(value, str)} - {layout.JSON_SUFFIX}
PATH_CALLS = {"Path", "open", "glob", "rglob", "joinpath", "with_name", "with_suffix", "exists", "is_dir", "is_file", "join"}


def _path_parts(node) -> list:
    """The string constants used to build a path at ``node``: ``x / "name"``, ``f"seed-{n}"``
    in such a place, or an argument of a path call."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        operands = [node.left, node.right]
    elif isinstance(node, ast.Call) and _called_name(node) in PATH_CALLS:
        operands = list(node.args)
    else:
        return []
    parts = []
    for operand in operands:
        if isinstance(operand, ast.Constant) and isinstance(operand.value, str):
            parts.append(operand.value)
        elif isinstance(operand, ast.JoinedStr):
            parts += [value.value for value in operand.values if isinstance(value, ast.Constant)]
    return parts


def test_only_the_layout_module_names_the_files_of_a_results_folder():
    spelled = sorted((name, part) for name, tree in _modules() if name != "layout.py"
                     for node in ast.walk(tree) for part in _path_parts(node) if part in LAYOUT_NAMES)
    assert spelled == [], "use the names of segbench.layout"


def test_the_layout_check_catches_a_spelled_name():
    """The two checks above would fail on the code they guard against."""
    tree = ast.parse('suite_dir / "runs" / variant / f"seed-{seed}" / "record.json"\njson.loads(path.read_text())')
    assert {part for node in ast.walk(tree) for part in _path_parts(node)} >= {"runs", "seed-", "record.json"}
    assert [_called_name(node) for node in ast.walk(tree) if isinstance(node, ast.Call) and _called_name(node) in PARSERS] == ["loads"]


def test_the_record_reference_is_generated_from_the_current_declarations():
    committed = (Path(__file__).parents[1] / "docs" / "record-reference.md").read_text()
    assert committed == records.reference_markdown(), "docs/record-reference.md is stale: python -m segbench.records > docs/record-reference.md"
    assert "| `cost.latency_ms` |" in committed and "## suite.json" in committed
