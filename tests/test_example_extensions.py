"""A new executor and a new reporter, each a separate pip package: the two example
distributions under plugins/examples/ installed with pip (into one target folder, found
through real entry-point metadata) and one tiny suite run through both. Also keeps
docs/writing-plugins.md in step with them: it shows their modules verbatim.

The suite runs in this process with the target folder on sys.path (segbench reads entry
points from sys.path when it loads plugins); the executor's runs are child processes."""

import csv
import json
import os
import re
import shutil
import sys

import pytest

from segbench import api
from segbench.cli import main
from segbench.testing._base import installed_catalogue
from test_plugin_distribution import DOCS, GENERATED, ROOT, docs_file_blocks, pip

EXAMPLES = {name: ROOT / "plugins" / "examples" / name for name in ("segbench-example-executor", "segbench-example-reporter")}
MODULES = {"segbench-example-executor": "segbench_example_executor", "segbench-example-reporter": "segbench_example_reporter"}

SUITE = """
name = "examples"
seeds = [0]
[dataset]
name = "shapes"
image_size = 32
num_train = 4
num_val = 2
[model]
architecture = "unet"
encoder = "lite"
decoder_channels = [8, 8, 8, 8, 8]
[train]
epochs = 1
batch_size = 2
"""  # one run: each run of this executor starts a Python process, and that costs seconds


@pytest.fixture(scope="module")
def examples_target(tmp_path_factory):
    """Both example distributions, installed by one pip call (from copies, so that building
    them leaves nothing in the repository)."""
    sources = tmp_path_factory.mktemp("example-sources")
    for name, folder in EXAMPLES.items():
        shutil.copytree(folder, sources / name, ignore=GENERATED)
    target = tmp_path_factory.mktemp("site-examples")
    pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", "--target", str(target),
        *(str(sources / name) for name in EXAMPLES))
    return target


@pytest.fixture
def installed(examples_target, monkeypatch):
    monkeypatch.syspath_prepend(str(examples_target))
    installed_catalogue.cache_clear()  # the contracts' catalogue, loaded once per session: now with the examples
    yield examples_target
    installed_catalogue.cache_clear()
    for module in MODULES.values():
        sys.modules.pop(module, None)


@pytest.fixture(scope="module")
def suite_run(examples_target, tmp_path_factory):
    """`segbench run --executor subprocess --log-dir DIR` on a one-run suite, the installed
    leaderboard reporter drawing its part of the report."""
    folder = tmp_path_factory.mktemp("examples-run")
    (folder / "examples.toml").write_text(SUITE)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.syspath_prepend(str(examples_target))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(examples_target), *filter(None, [os.environ.get("PYTHONPATH")])]))
    try:
        code = main(["run", str(folder / "examples.toml"), "-o", str(folder / "out"), "-q",
                     "--executor", "subprocess", "--log-dir", str(folder / "logs")])
    finally:
        monkeypatch.undo()
        for module in MODULES.values():
            sys.modules.pop(module, None)
    return code, folder


def test_the_installed_executor_ran_each_run_in_a_process_of_its_own(suite_run):
    code, folder = suite_run
    assert code == 0
    records = [json.loads(p.read_text()) for p in (folder / "out" / "examples" / "runs").glob("*/seed-*/record.json")]
    (record,) = records
    assert record["status"] == "ok" and record["metrics"]["miou"] >= 0
    logs = {p.name: p.read_text() for p in (folder / "logs").iterdir()}
    assert list(logs) == [f"{record['variant_id']}-seed-0.log"], "the run's log, in --log-dir"
    found = re.search(rf"^segbench-example-executor: pid (\d+) runs {record['variant_id']} seed 0$", logs[f"{record['variant_id']}-seed-0.log"],
                      re.MULTILINE)
    assert found, "the run's own process printed its start"
    assert int(found[1]) != os.getpid(), "the run was in a process of its own"


def test_the_installed_reporter_wrote_its_leaderboard_and_its_section(suite_run):
    _, folder = suite_run
    report = folder / "out" / "examples" / "report"
    with open(report / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    expected = sorted(summary, key=lambda row: -float(row["miou_mean"]))  # miou: higher is better
    board = json.loads((report / "leaderboard.json").read_text())
    assert (board["suite"], board["metric"], board["higher_is_better"]) == ("examples", "miou", True)
    assert [(e["rank"], e["variant_id"]) for e in board["ranking"]] == [(i + 1, row["variant_id"]) for i, row in enumerate(expected)]
    assert [e["mean"] for e in board["ranking"]] == pytest.approx([float(row["miou_mean"]) for row in expected])
    page = (report / "index.html").read_text()
    rows = "".join(f"<tr><td>{e['rank']}</td><td>{e['variant']}</td><td>{e['mean']:.4f}</td></tr>" for e in board["ranking"])
    assert "<h2>Leaderboard</h2><table>" in page and rows in page
    assert page.index("Metrics per variant") < page.index("<h2>Leaderboard</h2>") < page.index("<h2>Timing</h2>")


def test_segbench_lists_the_installed_executor_and_reporter_and_no_name_disables_them(installed, capsys):
    executors = {e.name: e for e in api.list_executors()}
    reporters = {r.name: r for r in api.list_reporters()}
    assert (executors["subprocess"].provider, executors["subprocess"].version) == ("segbench-example-executor", "0.1.0")
    assert [o.flag for o in executors["subprocess"].options] == ["--log-dir"]
    assert (reporters["leaderboard"].provider, reporters["leaderboard"].default) == ("segbench-example-reporter", True)
    # -p no:NAME, by distribution name (any spelling pip accepts) or by entry-point name
    assert "leaderboard" not in {r.name for r in api.list_reporters(["no:segbench_example_reporter"])}
    assert "subprocess" not in {e.name for e in api.list_executors(["no:example_executor"])}
    assert main(["list", "reporters", "-p", "no:segbench-example-reporter"]) == 0
    assert "leaderboard" not in capsys.readouterr().out
    assert main(["list", "reporters", "-p", "no:segbench-exampel-reporter"]) == 2
    assert "did you mean no:segbench-example-reporter?" in capsys.readouterr().err


class Outcomes:
    def __init__(self):
        self.seen = {}

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.seen[report.nodeid] = (report.outcome, str(report.longrepr or "")[-2000:])


CONTRACTS = {"segbench-example-executor": "ExecutorContract[subprocess]", "segbench-example-reporter": "ReporterContract[leaderboard]"}
CHECKS = {"ExecutorContract": ["test_returns_exactly_one_record_per_run_it_is_given", "test_stops_when_the_runner_stops_at_a_failed_run",
                               "test_a_run_past_its_timeout_is_a_failed_record", "test_close_after_a_partial_iteration_releases_it"],
          "ReporterContract": ["test_writes_only_inside_its_output_folder", "test_survives_an_empty_result_set",
                               "test_survives_a_damaged_result_set", "test_is_deterministic"]}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_examples_own_tests_and_segbench_contracts_pass_against_the_installed_distributions(installed, name):
    """Their pyproject.toml sets --segbench-contracts: the contract of the executor (or
    reporter) they register runs beside their own tests, and passes."""
    outcomes = Outcomes()
    code = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:benchmark", "-W", "ignore::DeprecationWarning",
                        str(EXAMPLES[name] / "tests")], plugins=[outcomes])
    failed = {nodeid: text for nodeid, (outcome, text) in outcomes.seen.items() if outcome != "passed"}
    assert code == 0 and not failed, failed
    contract = CONTRACTS[name]
    ran = sorted(nodeid.split("::")[-1] for nodeid in outcomes.seen if nodeid.startswith(f"segbench-contracts::{contract}::"))
    assert ran == sorted(CHECKS[contract.split("[")[0]]), f"{contract}: {ran}"


# --- docs/writing-plugins.md shows them -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_docs_show_the_example_module_verbatim(name):
    path = f"{name}/src/{MODULES[name]}/__init__.py"
    shown = docs_file_blocks().get(path)
    actual = (EXAMPLES[name] / "src" / MODULES[name] / "__init__.py").read_text(encoding="utf-8")
    assert shown == actual, f"{DOCS.name} must show {path} verbatim (a block after a line `{path}`:)"
