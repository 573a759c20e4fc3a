"""segbench.testing as a pytest plugin (``pytest11`` entry point): how ``pytest
--segbench-contracts`` chooses the components and their contract classes, and that without
the option the plugin costs nothing in anyone's test run.

The contract runs themselves (the installed example distribution passing, a distribution
with a broken component failing) are in test_plugin_distribution.py, in the subprocess
that already imports torch there."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import segbench
from segbench.testing import pytest_plugin


def run_pytest(args, cwd: Path):
    env = os.environ.copy()
    segbench_home = str(Path(segbench.__file__).resolve().parents[1])
    env["PYTHONPATH"] = segbench_home
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_without_the_option_the_plugin_loads_but_adds_nothing_and_imports_no_torch(tmp_path):
    (tmp_path / "test_light.py").write_text(textwrap.dedent("""
        import sys

        def test_light(request):
            assert "segbench.testing.pytest_plugin" in sys.modules  # the pytest11 entry point is loaded
            assert "torch" not in sys.modules and "segbench.plugins" not in sys.modules
            assert not [i for i in request.session.items if "segbench-contracts" in i.nodeid]
        """))
    result = run_pytest(["-q"], tmp_path)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr


def test_the_default_distribution_is_the_rootdir_projects(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "my-segbench-plugin"\n')
    assert pytest_plugin._rootdir_project(tmp_path) == "my-segbench-plugin"
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\n")
    with pytest.raises(pytest.UsageError, match=r"has no \[project\] name; name the distribution with --segbench-dist"):
        pytest_plugin._rootdir_project(tmp_path)
    with pytest.raises(pytest.UsageError, match="cannot read the project name"):
        pytest_plugin._rootdir_project(tmp_path / "elsewhere")


def test_a_distribution_without_components_is_a_usage_error_naming_the_installed_ones():
    with pytest.raises(pytest.UsageError, match=r"'not-installed' registers no segbench component.*: segbench\b"):
        pytest_plugin._components_of(["segbench", "not-installed"])


def test_components_are_chosen_by_normalized_distribution_name():
    chosen = pytest_plugin._components_of(["SegBench"])
    assert {c.provider for c in chosen} == {"segbench"} and len(chosen) > 20


@pytest.mark.parametrize("kind, name, base", [("loss", "dice", "LossContract"), ("metric", "miou", "MetricContract")])
def test_a_generated_contract_class_is_the_kinds_contract_at_the_components_defaults(kind, name, base):
    component = segbench.load_catalogue().get(kind, name)
    contract = pytest_plugin.contract_class(component)
    assert contract.__name__ == f"{base}[{name}]" and contract.__mro__[1].__name__ == base
    assert contract.name == name and contract.params == {}
    if kind == "loss":
        assert contract().modes == ("binary", "multiclass", "multilabel")  # the modes dice builds in
    else:
        assert (contract.higher_is_better, contract.perfect_score) == (True, 1.0)


def test_a_component_with_a_required_parameter_is_skipped_saying_how_to_test_it():
    component = segbench.load_catalogue().get("loss", "compound")  # needs `terms`
    (mark,) = pytest_plugin.contract_class(component).pytestmark
    assert mark.name == "skip" and "needs parameter(s) terms: subclass segbench.testing.LossContract" in mark.kwargs["reason"]


def test_executors_and_reporters_of_a_distribution_get_their_contract_classes():
    chosen = {(pytest_plugin.kind_of(entry), entry.name): entry for entry in pytest_plugin._components_of(["segbench"])}
    assert {("executor", "local"), ("executor", "process"), ("executor", "ray")} <= set(chosen)
    assert {("reporter", name) for name in ("tables", "markdown", "plots", "html", "mlflow")} <= set(chosen)
    for kind, name, base in [("executor", "process", "ExecutorContract"), ("reporter", "mlflow", "ReporterContract")]:
        contract = pytest_plugin.contract_class(chosen[(kind, name)])
        assert contract.__name__ == f"{base}[{name}]" and contract.__mro__[1].__name__ == base and contract.name == name
        assert not hasattr(contract, "pytestmark"), "options all have defaults: nothing to skip"
