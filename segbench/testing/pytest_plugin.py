"""The pytest plugin of segbench (``pytest11`` entry point ``segbench``): contract tests for
every component a plugin distribution registers.

``pytest --segbench-contracts`` adds one contract test class per component (upsampler,
architecture, loss, metric, dataset), executor and reporter that the distribution under
test registers, with its default parameters (or options). The distribution under test is
the one named by ``[project] name`` in the ``pyproject.toml`` of pytest's rootdir;
``--segbench-dist NAME`` (repeatable, and implying ``--segbench-contracts``) names others
instead (``segbench`` is the standard set). A component with a required parameter is skipped, naming it: subclass its contract
class and set ``params`` instead.

pytest loads this module in every run of every project where segbench is installed, so it
imports nothing heavy and, without the option, does nothing: no catalogue, no torch.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

OPTION = "--segbench-contracts"
DIST_OPTION = "--segbench-dist"
# The file the contract classes are collected under; its own content is only a docstring.
CONTRACT_FILE = Path(__file__).with_name("_collected.py")
NODE_ID = "segbench-contracts"  # test ids read segbench-contracts::LossContract[my_loss]::test_...
CONTRACTS = {
    "upsampler": "UpsamplerContract",
    "architecture": "ArchitectureContract",
    "loss": "LossContract",
    "metric": "MetricContract",
    "dataset": "DatasetContract",
    "executor": "ExecutorContract",
    "reporter": "ReporterContract",
}
selected_key = pytest.StashKey[list]()


def pytest_addoption(parser):
    group = parser.getgroup("segbench", "segbench contract tests")
    group.addoption(OPTION, action="store_true", default=False,
                    help="run segbench's contract tests on every component the distribution under test registers")
    group.addoption(DIST_OPTION, action="append", default=[], metavar="NAME",
                    help=f"the distribution whose components {OPTION} tests (repeatable; implies {OPTION}); "
                         "default: [project] name of the rootdir's pyproject.toml")


def pytest_configure(config):
    if not (config.getoption(OPTION) or config.getoption(DIST_OPTION)):
        return
    names = config.getoption(DIST_OPTION) or [_rootdir_project(config.rootpath)]
    config.stash[selected_key] = _components_of(names)
    config.args.append(str(CONTRACT_FILE))


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path, parent):
    if selected_key in parent.config.stash and Path(module_path) == CONTRACT_FILE:
        return ContractModule.from_parent(parent, path=Path(module_path), nodeid=NODE_ID)
    return None


class ContractModule(pytest.Module):
    """One contract class per selected component, e.g. ``LossContract[my_loss]``."""

    def _getobj(self):
        import importlib

        return importlib.import_module("segbench.testing._collected")

    def collect(self):
        module = self.obj
        for component in self.config.stash[selected_key]:
            contract = contract_class(component)
            setattr(module, contract.__name__, contract)
            yield pytest.Class.from_parent(self, name=contract.__name__)


def contract_class(component):
    """A subclass of the kind's contract class for ``component`` (or executor, or
    reporter), at its defaults."""
    import segbench.testing as testing

    base = getattr(testing, CONTRACTS[kind_of(component)])
    namespace = {"name": component.name, "__module__": "segbench.testing._collected", **_settings(component)}
    params = getattr(component, "params", {})  # executors and reporters have options, each with a default
    required = [param.name for param in params.values() if param.required]
    if required:
        namespace["pytestmark"] = [pytest.mark.skip(reason=(
            f"{kind_of(component)} {component.name!r} needs parameter(s) {', '.join(required)}: subclass "
            f"segbench.testing.{base.__name__} and set params (docs/writing-plugins.md)"))]
    name = f"{base.__name__}[{component.name}]"
    return type(name, (base,), {**namespace, "__qualname__": name})


def kind_of(entry) -> str:
    """``component.kind``; "executor" or "reporter" for the extensions (segbench.extensions)."""
    from segbench.extensions import Executor

    return getattr(entry, "kind", None) or ("executor" if isinstance(entry, Executor) else "reporter")


def _settings(component) -> dict:
    """What a contract cannot know without a subclass, read off the registration."""
    kind = kind_of(component)
    if kind == "metric":
        from segbench.components import metric_direction

        higher_is_better = metric_direction(component)
        # A perfect prediction scores 1 on a higher-is-better metric and 0 on an error or a
        # distance; a metric on another scale subclasses MetricContract and sets perfect_score.
        return {"higher_is_better": higher_is_better, "perfect_score": 1.0 if higher_is_better else 0.0}
    if kind == "loss":
        return {"modes": property(_supported_modes)}
    return {}


def _supported_modes(contract) -> tuple:
    """The modes the loss builds in (found once per class); in the others it must raise
    ValueError, which the contract checks."""
    from segbench.testing.loss import MODES

    cls = type(contract)
    if "_supported" not in vars(cls):
        supported = []
        for mode in MODES:
            try:
                contract.build(mode)
            except ValueError:
                continue
            supported.append(mode)
        cls._supported = tuple(supported)
    return cls._supported


def _rootdir_project(rootpath: Path) -> str:
    pyproject = rootpath / "pyproject.toml"
    try:
        name = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise pytest.UsageError(f"{OPTION}: cannot read the project name from {pyproject} ({error}); "
                                f"name the distribution with {DIST_OPTION} NAME") from None
    if not isinstance(name, str) or not name:
        raise pytest.UsageError(f"{OPTION}: {pyproject} has no [project] name; name the distribution with {DIST_OPTION} NAME")
    return name


def _components_of(names) -> list:
    """The components, executors and reporters registered by the distributions ``names``,
    in catalogue order."""
    from segbench.errors import SegbenchError
    from segbench.testing._base import installed_catalogue

    try:
        catalogue = installed_catalogue()
        components = [*catalogue.all(), *catalogue.executors.values(), *catalogue.reporters.values()]
    except SegbenchError as error:
        raise pytest.UsageError(f"{OPTION}: segbench cannot load its plugins: {error}") from None
    by_dist: dict[str, list] = {}
    for component in components:
        by_dist.setdefault(_normalized(component.provider), []).append(component)
    missing = [name for name in names if _normalized(name) not in by_dist]
    if missing:
        installed = ", ".join(sorted({c.provider for c in components})) or "none"
        raise pytest.UsageError(
            f"{OPTION}: distribution {', '.join(map(repr, missing))} registers no segbench component, executor or reporter: is it installed "
            f"(pip install -e .) with a [project.entry-points.segbench] table? Distributions with components: {installed}"
        )
    return [component for name in dict.fromkeys(map(_normalized, names)) for component in by_dist[name]]


def _normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them: ``Segbench_Example`` is ``segbench-example``."""
    return re.sub(r"[-_.]+", "-", name).lower()
