"""A third-party plugin as users get it: a distribution installed with pip, found through
the ``segbench`` entry-point group. Also keeps docs/writing-plugins.md in step with the
example package it shows.

The distributions are installed with ``pip install --target`` into temporary folders (no
network, no change to the environment) and used from subprocesses whose PYTHONPATH starts
with that folder, so entry points are read from real installed metadata."""

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

import segbench
from segbench import plugins
from segbench.testing import DatasetContract

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "plugins" / "examples" / "segbench-example"
DOCS = ROOT / "docs" / "writing-plugins.md"
GENERATED = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", ".pytest_cache", ".benchmarks")


def pip(*args, cwd=None):
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


def pip_install_target(source: Path, target: Path):
    pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", "--target", str(target), str(source))


def env_with(*paths):
    """The current environment with ``paths`` first on PYTHONPATH; segbench stays importable."""
    env = os.environ.copy()
    existing = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    segbench_home = str(Path(segbench.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *existing, segbench_home])
    return env


def run_python(code, *paths, cwd):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env_with(*paths),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def example_source(tmp_path_factory):
    """A copy of the example package, so that building it leaves nothing in the repository."""
    source = tmp_path_factory.mktemp("source") / "segbench-example"
    shutil.copytree(EXAMPLE, source, ignore=GENERATED)
    return source


@pytest.fixture(scope="session")
def example_target(example_source, tmp_path_factory):
    target = tmp_path_factory.mktemp("site-example")
    pip_install_target(example_source, target)
    return target


@pytest.fixture(scope="session")
def broken_target(tmp_path_factory):
    """A distribution whose plugin module raises when imported."""
    source = tmp_path_factory.mktemp("broken-source")
    (source / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=64"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "segbench-broken"
            version = "0.0.7"
            dependencies = ["segbench"]

            [project.entry-points.segbench]
            broken = "segbench_broken_plugin"

            [tool.setuptools]
            py-modules = ["segbench_broken_plugin"]
            """
        )
    )
    (source / "segbench_broken_plugin.py").write_text(
        "from segbench import hookimpl\n\nraise RuntimeError('this plugin is broken on purpose')\n"
    )
    target = tmp_path_factory.mktemp("site-broken")
    pip_install_target(source, target)
    return target


# --- the example distribution, installed ---------------------------------------------------


def test_the_wheel_holds_the_package_and_its_entry_point(example_target):
    assert sorted(p.name for p in example_target.iterdir()) == ["segbench_example", "segbench_example-0.1.0.dist-info"]
    entry_points = (example_target / "segbench_example-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert re.search(r"^\[segbench\]\s*^example = segbench_example\s*$", entry_points, re.MULTILINE)


CHECK_INSTALLED_EXAMPLE = """
import json
import os
import sys

import pytest
import torch

import segbench_example
from segbench import PluginError, load_catalogue

clash_plugin, broken_project, report_file = sys.argv[1:]
report = {}


class Outcomes:
    \"\"\"Each test's outcome, and the end of its failure report.\"\"\"

    def __init__(self):
        self.seen = {}

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.seen[report.nodeid] = [report.outcome, str(report.longrepr or "")[-800:]]


catalogue = load_catalogue()  # no -p: installed entry points only
for kind, name in [("upsampler", "example_pixel_shuffle"), ("loss", "example_focal"), ("metric", "example_recall")]:
    component = catalogue.get(kind, name)
    report[name] = {
        "provider": component.provider,
        "version": component.version,
        "description": component.description,
        "params": {p.name: p.default for p in component.params.values()},
    }
upsampler = catalogue.get("upsampler", "example_pixel_shuffle").build(8, 4, 2, kernel_size=1)
report["upsampled"] = list(upsampler(torch.randn(2, 8, 5, 7)).shape)
loss = catalogue.get("loss", "example_focal").build("multiclass", 3, 255, gamma=1.0)
report["loss_ndim"] = loss(torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))).ndim
metric = catalogue.get("metric", "example_recall").build(3, 255)
metric.update(torch.tensor([[[0, 1], [2, 2]]]), torch.tensor([[[0, 1], [2, 1]]]))
report["recall"] = metric.compute()
report["module"] = segbench_example.__file__

try:
    load_catalogue([clash_plugin])
    report["clash"] = None
except PluginError as error:
    report["clash"] = str(error)

# the example's own tests, from the folder holding only tests/ and pyproject.toml of the
# package: they import the installed copy; its pyproject.toml adds --segbench-contracts
outcomes = Outcomes()
report["own_tests"] = int(pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:benchmark"], plugins=[outcomes]))
report["own_outcomes"] = outcomes.seen

# a distribution with a broken component, tested from its project folder
os.chdir(broken_project)
outcomes = Outcomes()
report["broken_exit"] = int(pytest.main(["--segbench-contracts", "-q", "-p", "no:cacheprovider", "-p", "no:benchmark",
                                         "-k", "output_is_scale or gradient"], plugins=[outcomes]))
report["broken_outcomes"] = outcomes.seen

with open(report_file, "w") as f:
    json.dump(report, f)
"""

CLASHING_PLUGIN = """
from segbench import hookimpl


@hookimpl
def segbench_losses(register):
    register.add_loss("example_focal", lambda mode, num_classes, ignore_index: None)
"""


BROKEN_COMPONENT_PLUGIN = '''
from torch import nn

from segbench import hookimpl


def forgets_the_channels(in_channels: int, out_channels: int, scale_factor: int):
    """Nearest upsampling that never maps in_channels to out_channels."""
    return nn.Upsample(scale_factor=scale_factor, mode="nearest")


def nearest(in_channels: int, out_channels: int, scale_factor: int):
    """Nearest upsampling then a 1x1 convolution."""
    return nn.Sequential(nn.Upsample(scale_factor=scale_factor), nn.Conv2d(in_channels, out_channels, 1))


@hookimpl
def segbench_upsamplers(register):
    register.add_upsampler("broken_upsampler", forgets_the_channels, requires=["module"])
    register.add_upsampler("fine_upsampler", nearest, requires=["module"])
'''


def install_by_hand(site: Path, dist: str, module: str, source: str):
    """A distribution as pip leaves it: the module and a .dist-info naming its entry point
    (all importlib.metadata reads; much faster than building it with pip)."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[segbench]\nplugin = {module}\n")


@pytest.fixture(scope="module")
def installed_example(example_source, example_target, tmp_path_factory):
    """One subprocess (torch is slow to import) with the example distribution installed:
    what segbench found, a clash with a local plugin, and the example's own tests with the
    contract run; and a distribution with a broken component, with its contract run."""
    work = tmp_path_factory.mktemp("installed-example")
    broken_site, broken_project = work / "site-broken-component", work / "segbench-broken-upsampler"
    install_by_hand(broken_site, "segbench-broken-upsampler", "broken_upsampler_plugin", BROKEN_COMPONENT_PLUGIN)
    broken_project.mkdir()
    (broken_project / "pyproject.toml").write_text('[project]\nname = "segbench-broken-upsampler"\n')
    clash = work / "clash.py"
    clash.write_text(CLASHING_PLUGIN)
    report_file = work / "report.json"
    tests_only = work / "segbench-example"  # without src/, so only the installed copy can be imported
    tests_only.mkdir()
    shutil.copytree(example_source / "tests", tests_only / "tests")
    (tests_only / "tests" / "test_docs_contracts.py").write_text(docs_contract_subclasses())  # the guide's example
    shutil.copy(example_source / "pyproject.toml", tests_only)
    result = subprocess.run(
        [sys.executable, "-c", CHECK_INSTALLED_EXAMPLE, str(clash), str(broken_project), str(report_file)],
        env=env_with(example_target, broken_site),
        cwd=tests_only,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report_file.exists(), f"subprocess failed:\n{result.stdout}\n{result.stderr}"
    report = json.loads(report_file.read_text())
    report.update(output=result.stdout + result.stderr, clash_file=str(clash))
    return report


@pytest.mark.parametrize("name", ["example_pixel_shuffle", "example_focal", "example_recall"])
def test_segbench_finds_the_installed_example_through_its_entry_point(installed_example, name):
    found = installed_example[name]
    assert (found["provider"], found["version"]) == ("segbench-example", "0.1.0")
    assert found["description"]


def test_the_installed_example_is_the_installed_copy(installed_example, example_target):
    assert Path(installed_example["module"]).is_relative_to(example_target)


def test_the_installed_example_declares_its_parameters(installed_example):
    assert installed_example["example_pixel_shuffle"]["params"] == {"kernel_size": 3, "icnr": True}
    assert installed_example["example_pixel_shuffle"]["description"].startswith("Sub-pixel convolution")
    assert installed_example["example_focal"]["params"] == {"gamma": 2.0}
    assert installed_example["example_recall"]["params"] == {}


def test_the_installed_example_builds_and_runs(installed_example):
    assert installed_example["upsampled"] == [2, 4, 10, 14]
    assert installed_example["loss_ndim"] == 0
    assert installed_example["recall"] == pytest.approx((1 + 0.5 + 1) / 3)


def test_the_examples_own_tests_pass_against_the_installed_distribution(installed_example):
    assert installed_example["own_tests"] == 0, installed_example["output"]
    assert re.search(r"\b\d+ passed\b", installed_example["output"])


EXAMPLE_CONTRACTS = {"UpsamplerContract[example_pixel_shuffle]", "LossContract[example_focal]",
                     "MetricContract[example_recall]", "MetricContract[example_error_rate]"}


def test_pytest_segbench_contracts_checks_every_component_of_the_installed_example(installed_example):
    """The example's pyproject.toml sets --segbench-contracts: one contract class per component
    it registers ran and passed, and nothing of another distribution was collected."""
    outcomes = installed_example["own_outcomes"]
    contract_classes = {nodeid.split("::")[1] for nodeid in outcomes if nodeid.startswith("segbench-contracts::")}
    assert contract_classes == EXAMPLE_CONTRACTS, installed_example["output"]
    for contract in EXAMPLE_CONTRACTS:
        passed = [n for n, (outcome, _) in outcomes.items() if f"::{contract}::" in n and outcome == "passed"]
        assert len(passed) >= 5, f"{contract}: only {passed} passed"
    assert not [n for n, (outcome, _) in outcomes.items() if outcome == "failed"], installed_example["output"]
    assert outcomes["tests/test_example.py::TestPixelShuffleWithoutICNR::test_bf16_autocast_stays_close_to_fp32"][0] == "passed"


def test_the_docs_contract_subclasses_pass_on_the_installed_example(installed_example):
    outcomes = installed_example["own_outcomes"]
    for contract in ("TestPixelShuffleKernel1", "TestFocalGamma1", "TestErrorRate"):
        ran = {outcome for nodeid, (outcome, _) in outcomes.items() if f"test_docs_contracts.py::{contract}::" in nodeid}
        assert "passed" in ran and "failed" not in ran, (contract, ran)


def test_pytest_segbench_contracts_fails_on_a_broken_component_naming_it_and_the_check(installed_example):
    outcomes = installed_example["broken_outcomes"]
    assert installed_example["broken_exit"] == 1, installed_example["output"]
    failed = {nodeid: text for nodeid, (outcome, text) in outcomes.items() if outcome == "failed"}
    assert failed and all(n.startswith("segbench-contracts::UpsamplerContract[broken_upsampler]::") for n in failed)
    message = failed["segbench-contracts::UpsamplerContract[broken_upsampler]::test_output_is_scale_times_the_input[4to6-5-7]"]
    assert ("returned a tensor of shape (2, 4, 10, 14) for input (2, 4, 5, 7) with out_channels=6, scale_factor=2; an upsampler "
            "must return (N, out_channels, H*scale_factor, W*scale_factor)") in message
    assert {n.split("::")[1] for n in outcomes} == {"UpsamplerContract[broken_upsampler]", "UpsamplerContract[fine_upsampler]"}


def test_an_installed_component_and_a_local_one_of_the_same_name_name_both_providers(installed_example):
    message = installed_example["clash"]
    assert message is not None, "a name provided twice was accepted"
    assert 'loss "example_focal" is provided twice' in message
    assert '"segbench-example"' in message and f'"{installed_example["clash_file"]}"' in message


def test_a_broken_entry_point_names_the_entry_point_the_distribution_and_the_cause(broken_target, tmp_path):
    found = run_python(
        """
        import json
        from segbench.errors import PluginError
        from segbench.plugins import load_catalogue

        try:
            load_catalogue()
        except PluginError as error:
            print(json.dumps(str(error)))
        else:
            print(json.dumps(None))
        """,
        broken_target,
        cwd=tmp_path,
    )
    assert found is not None, "a plugin that raises at import was loaded without an error"
    assert found.startswith('Error importing plugin "broken" (segbench_broken_plugin)')
    assert 'distribution "segbench-broken 0.0.7"' in found
    assert "RuntimeError: this plugin is broken on purpose" in found


# --- packaging of segbench itself -----------------------------------------------------------


def test_examples_are_not_a_package():
    """plugins/ is installed as segbench_plugins; the example distribution inside it must not be."""
    assert not (ROOT / "plugins" / "examples" / "__init__.py").exists()
    assert not (EXAMPLE / "__init__.py").exists()


def test_the_segbench_wheel_ships_segbench_plugins_without_the_examples(tmp_path):
    source = tmp_path / "segbench"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source)
    for folder in ("segbench", "plugins"):
        shutil.copytree(ROOT / folder, source / folder, ignore=GENERATED)
    readme = ROOT / "README.md"
    (source / "README.md").write_text(readme.read_text() if readme.exists() else "# segbench\n")
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", "--wheel-dir", str(tmp_path / "dist"), str(source))
    (wheel,) = (tmp_path / "dist").glob("segbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"segbench", "segbench_plugins"}, "the wheel must install segbench and segbench_plugins only"
    expected = {f"segbench/{p.relative_to(ROOT / 'segbench').as_posix()}" for p in (ROOT / "segbench").rglob("*.py")}
    expected |= {
        f"segbench_plugins/{p.relative_to(ROOT / 'plugins').as_posix()}"
        for p in (ROOT / "plugins").rglob("*.py")
        if "examples" not in p.relative_to(ROOT / "plugins").parts
    }
    assert "segbench_plugins/__init__.py" in expected
    missing = sorted(expected - set(names))
    assert not missing, f"modules left out of the wheel (list their packages in pyproject.toml): {missing}"
    assert not [name for name in names if "examples" in name.split("/") or "segbench_example" in name]
    entry_points = configparser.ConfigParser()
    entry_points.read_string(next(zipfile.Path(wheel, n).read_text() for n in names if n.endswith("/entry_points.txt")))
    for value in entry_points["segbench"].values():
        module_path = value.replace(".", "/")
        assert f"{module_path}.py" in names or f"{module_path}/__init__.py" in names, f"entry point {value} is not in the wheel"


# --- docs/writing-plugins.md stays true -------------------------------------------------------

FILE_BLOCK = re.compile(
    r"^`(?P<path>[^`\n]+)`:[ \t]*\n(?:[ \t]*\n)?(?P<fence>`{3,})[^\n]*\n(?P<body>.*?)\n(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def docs_contract_subclasses() -> str:
    """The guide's example of subclassing the contract classes."""
    found = re.search(r"^```python\n(from segbench\.testing import .*?)^```", DOCS.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    assert found, "docs/writing-plugins.md no longer shows how to subclass a contract class"
    return found.group(1)


def docs_file_blocks():
    return {m["path"]: m["body"] + "\n" for m in FILE_BLOCK.finditer(DOCS.read_text(encoding="utf-8"))}


def example_files():
    files = {}
    for path in sorted(EXAMPLE.rglob("*")):
        relative = path.relative_to(EXAMPLE)
        if path.is_file() and not any(GENERATED(str(path.parent), [part]) for part in relative.parts):
            files[f"segbench-example/{relative.as_posix()}"] = path.read_text(encoding="utf-8")
    return files


def test_docs_show_every_file_of_the_example_package():
    assert set(example_files()) <= set(docs_file_blocks()), "files of the example missing from the docs"


@pytest.mark.parametrize("name", sorted(example_files()))
def test_docs_show_the_example_files_verbatim(name):
    shown = docs_file_blocks().get(name)
    actual = example_files()[name]
    if shown != actual:
        import difflib

        diff = "".join(difflib.unified_diff(shown.splitlines(True) if shown else [], actual.splitlines(True), "docs", name))
        pytest.fail(f"{DOCS.name} shows {name} differently from {EXAMPLE}; update the docs:\n{diff}")


def test_the_docs_local_plugin_works_with_p(tmp_path, monkeypatch):
    path = tmp_path / "my_plugin.py"
    path.write_text(docs_file_blocks()["my_plugin.py"])
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda **selection: [])
    component = plugins.load_catalogue([str(path)]).get("upsampler", "my_bicubic")
    assert component.version == "local"
    assert list(component.params) == ["align_corners"]
    import torch

    assert component.build(4, 2, 2)(torch.zeros(1, 4, 3, 5)).shape == (1, 2, 6, 10)


class TestTheDocsDatasetPassesTheContract(DatasetContract):
    """The guide's my_dataset.py, loaded as with -p, at an image_size of its own."""

    def build(self, cache_dir):
        path = Path(cache_dir) / "my_dataset.py"
        path.write_text(docs_file_blocks()["my_dataset.py"])
        data = plugins.load_catalogue([str(path)]).get("dataset", "my_squares").build(cache_dir, image_size=24)
        assert data.train.images.shape == (6, 3, 24, 24) and data.val.masks.dtype == torch.uint8
        return data


def test_docs_name_the_suite_syntax_for_the_example():
    docs = DOCS.read_text(encoding="utf-8")
    assert '"model.upsampler" = ["nearest", { name = "example_pixel_shuffle" }' in docs
    assert "segbench list upsampler" in docs and "pip install -e ." in docs
    assert "-p my_plugin.py" in docs and 'plugins = ["my_plugin.py"]' in docs
