"""segbench.testing.ReporterContract catches each planted mistake of a reporter, naming the
reporter, the input and the path: a write into the working directory, two levels up from
its folder, beside the sandbox, a record changed; a reporter that fails on an empty or a
damaged result set; one that is not deterministic. A well-behaved reporter passes every
check. The contract classes run in a nested pytest session in this process (the tiny
suite the contract trains runs once per process)."""

import pytest

from tests.planted_contracts import failure, outcome, run_planted

PLANTED = '''
import json
import math
import random
from pathlib import Path

from segbench import ReporterOption
from segbench.testing import ReporterContract


def into_cwd(context):
    Path("stray.txt").write_text("x")


def two_levels_up(context):
    (context.report_dir / ".." / ".." / "up.txt").write_text("x")


def beside_the_sandbox(context):
    Path("../../../beside.txt").write_text("x")


def edits_a_record(context):
    path = next((context.suite_dir / "runs").rglob("record.json"))
    path.write_text(path.read_text().replace('"status"', '"status" ', 1))


def mean_of(context):
    values = [r["metrics"]["miou"] for r in context.records if r["status"] == "ok"]
    mean = sum(values) / len(values)  # empty: ZeroDivisionError
    (context.report_dir / "mean.txt").write_text(f"{round(mean * 100)}")  # NaN: ValueError


def stamped(context):
    (context.report_dir / "stamp.txt").write_text(str(random.random()))


def well_behaved(context):
    ok = [r["metrics"]["miou"] for r in context.records if r["status"] == "ok" and math.isfinite(r["metrics"]["miou"])]
    (context.report_dir / "count.json").write_text(json.dumps({"runs": len(context.records), "best": max(ok, default=None)}))
    Path(context.options["target"]).mkdir(parents=True, exist_ok=True)
    (Path(context.options["target"]) / "sent.txt").write_text(str(random.random()))  # a destination: not compared


def reporters(register):
    for write in (into_cwd, two_levels_up, beside_the_sandbox, edits_a_record, mean_of, stamped):
        register.add_reporter(write.__name__, write)
    register.add_reporter("well_behaved", well_behaved, default=False,
                          options=[ReporterOption("target", str, None, "where to send", destination=True)])


def contract(name):
    return type(f"Test_{name}", (ReporterContract,), {"name": name, "hook": reporters})


Test_into_cwd = contract("into_cwd")
Test_two_levels_up = contract("two_levels_up")
Test_beside_the_sandbox = contract("beside_the_sandbox")
Test_edits_a_record = contract("edits_a_record")
Test_mean_of = contract("mean_of")
Test_stamped = contract("stamped")
Test_well_behaved = contract("well_behaved")
'''

CHECKS = ("test_writes_only_inside_its_output_folder", "test_survives_an_empty_result_set", "test_survives_a_damaged_result_set",
          "test_is_deterministic")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return run_planted(tmp_path_factory.mktemp("planted-reporters"), "test_planted_reporters", PLANTED)


@pytest.mark.parametrize("name, path", [
    ("into_cwd", "box/work/stray.txt (created)"),
    ("two_levels_up", "box/results/up.txt (created)"),
    ("beside_the_sandbox", "../beside.txt ("),  # created by the first check, changed by the others
])
def test_a_write_outside_the_output_folder_is_named_with_its_path(outcomes, name, path):
    for check in CHECKS[:3]:
        text = failure(outcomes, name, check)
        assert f'reporter "{name}" of "contract-test" wrote outside its output folder box/results/reporter-contract/report' in text
        assert path in text and "the working directory was box/work" in text


def test_a_changed_record_is_a_write_outside_the_output_folder(outcomes):
    text = failure(outcomes, "edits_a_record", "test_writes_only_inside_its_output_folder")
    assert "box/results/reporter-contract/runs/" in text and "record.json (changed)" in text


def test_a_reporter_failing_on_an_empty_or_damaged_result_set_is_named_with_the_input(outcomes):
    assert outcome(outcomes, "mean_of", "test_writes_only_inside_its_output_folder")[0] == "passed"
    empty = failure(outcomes, "mean_of", "test_survives_an_empty_result_set")
    assert 'reporter "mean_of" of "contract-test" raised ZeroDivisionError: division by zero, on an empty result set' in empty
    damaged = failure(outcomes, "mean_of", "test_survives_a_damaged_result_set")
    assert 'reporter "mean_of" of "contract-test" raised ValueError: cannot convert float NaN to integer, on a damaged result set' \
        in damaged
    assert "round(mean * 100)" in damaged, "the reporter's traceback is shown"


def test_a_reporter_writing_different_bytes_each_time_is_not_deterministic(outcomes):
    text = failure(outcomes, "stamped", "test_is_deterministic")
    assert 'reporter "stamped" of "contract-test" is not deterministic' in text and "stamp.txt" in text
    assert outcome(outcomes, "stamped", "test_writes_only_inside_its_output_folder")[0] == "passed"


def test_a_well_behaved_exporter_passes_every_check_writing_to_its_destination(outcomes):
    assert {check: outcome(outcomes, "well_behaved", check)[0] for check in CHECKS} == dict.fromkeys(CHECKS, "passed")
