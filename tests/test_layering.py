"""Layering: segbench's modules and packages import one another without cycles, each from
its own layer or a lower one; and the commands that only read results start without torch.

The import graph is read from the source with ``ast``, so an import inside a function is an
edge as much as one at the top of a module: a function-level import hides a cycle from
Python at import time, not from this test. Imports under ``if TYPE_CHECKING:`` never run
and are left out. The nodes are segbench's top-level modules and subpackages
(``segbench.gate.rules`` is ``gate``); ``segbench/__init__.py`` is the public facade over
all of them, loaded lazily (PEP 562), so it is no node: the modules may take only
``__version__`` from it. Imports by name (``importlib.import_module``) are not seen; the
lazy facades (``segbench``, ``segbench.gate``, ``segbench.testing``) use them for their
own submodules, and the plugin manager for plugins.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import segbench
from segbench.gate import save_baseline
from segbench.store import ResultStore

PACKAGE = Path(segbench.__file__).parent

# Lowest first. A module may import from its own layer and the layers below, never above
# (imports within a layer are fine while they make no cycle). It is the design's data flow,
# cli -> api -> runner -> executors -> engine -> (data, components) -> store, with the
# readers of records (report, gate) beside the training code, never importing it.
LAYERS = [
    {"errors", "text", "layout", "costs", "environment", "outputs", "crash", "lazy", "numbers", "palette"},  # depend on nothing of segbench
    {"extensions", "hookspecs", "components", "component_checks", "params", "plugins", "records", "schema", "design", "format"},  # contracts
    {"statistics", "power", "verdicts", "simulation", "metrics", "store", "data", "degenerate"},  # numbers, results on disk, datasets
    {"gate", "doctor", "report", "planning", "stored_report"},  # read records only
    {"suite", "engine", "progress", "execute", "preflight", "preflight_watch", "preflight_remote"},  # a suite, and one run of it
    {"executors", "runner", "data_commands"},  # a whole suite
    {"api", "testing", "cli", "__main__"},  # entry points
]


@dataclass(frozen=True)
class Edge:
    source: str  # a top-level module or subpackage of segbench: "gate", "runner", ...
    target: str  # the same, or "" for the facade segbench/__init__.py
    where: str  # file:line of the import
    names: tuple = ()  # what ``from X import ...`` takes


def import_edges(package: Path = PACKAGE, name: str = "segbench") -> list[Edge]:
    """Every import of one of ``package``'s modules by another, anywhere in a file."""
    edges = []
    for path in sorted(package.rglob("*.py")):
        module = _module_name(path, package, name)
        for target, names, line in _imports(path, module, package, name):
            source, into = _unit(module), _unit(target)
            if source and source != into:
                edges.append(Edge(source, into, f"{path.relative_to(package.parent)}:{line}", names))
    return edges


def find_cycles(edges) -> list[list[str]]:
    """One cycle (a path ``[a, b, ..., a]``) per strongly connected group of nodes: Tarjan."""
    graph = {}
    for edge in edges:
        if edge.target:
            graph.setdefault(edge.source, set()).add(edge.target)
            graph.setdefault(edge.target, set())
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(group, graph) for group in groups]


@functools.cache
def segbench_edges() -> list[Edge]:
    return import_edges()


def test_no_import_cycles_between_segbench_packages():
    edges = segbench_edges()
    cycles = find_cycles(edges)
    assert not cycles, "import cycles (each with every import on it):\n" + "\n".join(_describe(cycle, edges) for cycle in cycles)


def test_each_package_imports_only_from_its_layer_or_below():
    layer_of = {unit: level for level, layer in enumerate(LAYERS) for unit in layer}
    units = {_unit(_module_name(path, PACKAGE, "segbench")) for path in PACKAGE.rglob("*.py")} - {""}
    assert not units - set(layer_of), f"put each new module or package into a layer of LAYERS: {sorted(units - set(layer_of))}"
    upward = [f"{e.where}: {e.source} (layer {layer_of[e.source]}) imports {e.target} (layer {layer_of[e.target]})"
              for e in segbench_edges() if e.target and layer_of[e.target] > layer_of[e.source]]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_the_core_takes_only_the_version_from_the_facade():
    taken = [f"{e.where}: {', '.join(e.names) or 'the module'}" for e in segbench_edges() if not e.target and e.names != ("__version__",)]
    assert not taken, "import these from their own modules, not from segbench/__init__.py:\n" + "\n".join(taken)


def test_a_cycle_hidden_in_a_function_is_found_and_named(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from .sub.top import g  # hides the cycle from Python\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "top.py").write_text("from typing import TYPE_CHECKING\nfrom .. import low\n"
                                            "if TYPE_CHECKING:\n    from ..other import Thing\n")
    (package / "other.py").write_text("from .sub import top\n")
    edges = import_edges(package, "pkg")
    assert {(e.source, e.target) for e in edges} == {("low", "sub"), ("sub", "low"), ("other", "sub")}  # not sub -> other
    assert find_cycles(edges) == [["low", "sub", "low"]]
    assert "pkg/low.py:2" in _describe(["low", "sub", "low"], edges)


# --- commands that only read results start without torch ------------------------------------

# Runs the CLI in a fresh interpreter and says, on its last line, which of these were imported.
PROBE = """
import sys
from segbench.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # argparse ends --version and --help this way
    code = exc.code
sys.stdout.flush()
print("\\nIMPORTED=" + ",".join(name for name in ("torch", "matplotlib", "pandas", "scipy") if name in sys.modules))
sys.exit(code)
"""
NEVER = {"torch", "matplotlib"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Two variants x three seeds of constructed records (nothing trains), and a baseline."""
    root = tmp_path_factory.mktemp("results")
    store = ResultStore(root, "s")
    for variant_id, miou in (("aaa", [0.70, 0.71, 0.72]), ("bbb", [0.60, 0.61, 0.62])):
        for seed, value in enumerate(miou):
            store.write({"schema": 1, "suite": "s", "variant_id": variant_id, "label": f"variant {variant_id}", "factors": {},
                         "seed": seed, "status": "ok", "metrics": {"miou": value}, "cost": {"params": 1000, "latency_ms": 10.0},
                         "is_baseline": variant_id == "aaa", "wall_seconds": 1.0})
    save_baseline(root / "s", root / "baseline.json")
    return root / "s"


def probe(*argv) -> tuple[int, str, set]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
    output, _, imported = done.stdout.rpartition("\nIMPORTED=")
    return done.returncode, output + done.stderr, set(filter(None, imported.strip().split(",")))


@pytest.mark.parametrize(("argv", "expected", "also_not"), [
    (["--version"], f"segbench {segbench.__version__}", {"pandas", "scipy"}),
    (["--help"], "Ablation harness", {"pandas", "scipy"}),
    (["gate", "--help"], "--baseline", {"pandas", "scipy"}),
    (["gate", "{results}", "--baseline", "{results}/../baseline.json", "--rule", "miou:max_drop=0.01"], "gate passed", {"pandas"}),
    (["compare", "{results}", "{results}"], "variant aaa", set()),  # its tests (statsmodels) need pandas and scipy
])
def test_commands_that_read_results_do_not_import_torch(results, argv, expected, also_not):
    code, output, imported = probe(*(arg.format(results=results) for arg in argv))
    assert code == 0, output
    assert expected in output
    assert not imported & (NEVER | also_not), f"`segbench {' '.join(argv)}` imported {sorted(imported)}"


def test_baseline_save_does_not_import_torch(results):
    saved = results.parent / "again.json"
    code, output, imported = probe("baseline", "save", str(results), "-o", str(saved))
    assert code == 0, output
    variants = json.loads(saved.read_text())["variants"]
    assert {v["id"]: v["metrics"]["miou"]["values"] for v in variants} == {
        "aaa": {"0": 0.70, "1": 0.71, "2": 0.72}, "bbb": {"0": 0.60, "1": 0.61, "2": 0.62}}
    assert not imported & (NEVER | {"pandas", "scipy"}), sorted(imported)


def test_importing_the_facade_api_and_cli_imports_no_heavy_package():
    code = "import sys, segbench, segbench.api, segbench.cli, segbench.gate; print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'scipy', 'numpy') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


# --- helpers ---------------------------------------------------------------------------------


def _module_name(path: Path, package: Path, name: str) -> str:
    parts = [name, *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """``segbench.gate.rules`` -> ``gate``; ``segbench`` (the facade) -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path, module: str, package: Path, name: str):
    """(imported module, names taken, line) of each import that runs, in any scope."""
    is_package = path.name == "__init__.py"
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, (), node.lineno) for alias in node.names if _inside(alias.name, name))
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            if not _inside(base, name):
                continue
            names = tuple(alias.name for alias in node.names)
            submodules = [n for n in names if _is_module(f"{base}.{n}", package, name)]
            yield from ((f"{base}.{n}", (), node.lineno) for n in submodules)
            if len(submodules) < len(names):
                yield base, tuple(n for n in names if n not in submodules), node.lineno


def _runtime_nodes(tree):
    """Every node, except what is under ``if TYPE_CHECKING:`` (never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
            else:
                todo.append(child)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _inside(module: str, name: str) -> bool:
    return module == name or module.startswith(name + ".")


def _is_module(module: str, package: Path, name: str) -> bool:
    path = package.joinpath(*module.split(".")[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _cycle_in(group: set, graph: dict) -> list[str]:
    """A shortest cycle through the group's first node, found breadth-first."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & group):
            if nxt == start:
                return paths[node] + [start]
            if nxt not in paths:
                paths[nxt] = paths[node] + [nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle in {group}")


def _describe(cycle: list[str], edges) -> str:
    steps = []
    for source, target in zip(cycle, cycle[1:]):
        where = ", ".join(e.where for e in edges if (e.source, e.target) == (source, target))
        steps.append(f"  {source} -> {target}  ({where})")
    return " -> ".join(cycle) + "\n" + "\n".join(steps)
