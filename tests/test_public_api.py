"""segbench's public API has a clear edge: ``segbench.__all__`` (loaded lazily, so that every
command starts without torch), documented in docs/api.md, and the only part of segbench the
standard plugins import. Also: one Markdown escaper and one COCO mask painter."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import segbench

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
# The built-in executors and report outputs are segbench's own library code (segbench.executors,
# segbench.report), registered through the same hooks a third-party plugin uses; these
# wrappers may import the code they register, and nothing else private.
WRAPPED_LIBRARY = {
    "plugins/executors/__init__.py": ("segbench.executors",),
    "plugins/reporters/__init__.py": ("segbench.report",),
}
HEAVY = ("torch", "torchvision", "pandas", "numpy", "matplotlib", "scipy", "segmentation_models_pytorch")


def test_importing_segbench_and_its_pytest_plugin_loads_nothing_heavy():
    code = ("import json, sys, segbench, segbench.testing, segbench.testing.pytest_plugin; "
            f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_every_public_name_loads_on_first_use_and_is_documented():
    for name in segbench.__all__:
        value = getattr(segbench, name)
        assert name in dir(segbench)
        if callable(value) and name != "hookimpl":
            assert inspect.getdoc(value), f"segbench.{name} has no docstring for docs/api.md"
    with pytest.raises(AttributeError, match="no attribute 'Catalogue'"):
        segbench.Catalogue  # private: segbench.components.Catalogue


def test_docs_api_md_is_generated_from_the_current_docstrings():
    spec = importlib.util.spec_from_file_location("generate_api", ROOT / "docs" / "generate_api.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.API_DOC.read_text(encoding="utf-8") == generator.render(), \
        "docs/api.md is stale: run `python docs/generate_api.py`"


def private_uses(path: Path) -> list[str]:
    """``from segbench.x import``, ``import segbench.x`` and ``segbench.<name>`` uses beyond
    the public API in one file."""
    relative = path.relative_to(ROOT).as_posix()
    allowed = ("segbench.testing",) if "tests" in path.relative_to(PLUGINS).parts else ()
    allowed += WRAPPED_LIBRARY.get(relative, ())
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        modules = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
            if node.module == "segbench":
                found += [f"{relative}:{node.lineno} from segbench import {a.name}" for a in node.names if a.name not in segbench.__all__]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "segbench":
            if node.attr not in segbench.__all__ and not f"segbench.{node.attr}".startswith(allowed or ("-",)):
                found.append(f"{relative}:{node.lineno} segbench.{node.attr}")
        for module in modules:
            if module.startswith("segbench.") and not module.startswith(allowed or ("-",)):
                found.append(f"{relative}:{node.lineno} imports {module}")
    return found


def test_the_standard_plugins_and_examples_use_only_the_public_api():
    found = [use for path in sorted(PLUGINS.rglob("*.py")) for use in private_uses(path)]
    assert not found, ("plugins must import segbench's public names only (`from segbench import ...`; "
                       "add a name plugins need to segbench/__init__.py and docs/api.md):\n" + "\n".join(found))


def test_the_public_api_check_catches_a_private_import(tmp_path, monkeypatch):
    plugin = PLUGINS / "upsamplers" / "__init__.py"
    text = "from segbench.components import Catalogue\nimport segbench.suite\nfrom segbench import hookimpl, Catalogue\nsegbench.plugins\n"
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: text)
    assert [use.split(" ", 1)[1] for use in private_uses(plugin)] == [
        "imports segbench.components", "imports segbench.suite", "from segbench import Catalogue", "segbench.plugins"]


def test_one_markdown_escaper_for_the_report_and_the_gate():
    from segbench import text
    from segbench.gate import render
    from segbench.report import markdown

    assert markdown.escape_markdown is text.escape_markdown and render.escape_markdown is text.escape_markdown
    hostile = "[click](https://evil.example) *bold* `code` ~strike~ a_b <img src=x>|\\|\nnext"
    assert text.escape_markdown(hostile) == (
        r"\[click\](https://evil.example) \*bold\* \`code\` \~strike\~ a\_b &lt;img src=x&gt;\|\\\| next")


def test_one_coco_mask_painter_with_one_default_for_every_coco_source():
    """The coco dataset and the COCO reader the shapes set uses paint with one function,
    whose overlap and crowd defaults are the coco dataset's."""
    from segbench_plugins.datasets import coco, coco_dataset

    assert coco_dataset.semantic_mask is coco.semantic_mask
    painters = (coco.semantic_mask, coco.semantic_masks, coco.load_coco_split, coco_dataset.build_coco)
    assert {inspect.signature(f).parameters["overlap"].default for f in painters} == {"ignore"}
    assert {inspect.signature(f).parameters["crowd"].default for f in painters[:2] + painters[3:]} == {"ignore"}
    assert coco_dataset.OVERLAP_RULES is coco.OVERLAP_RULES and coco_dataset.CROWD_RULES is coco.CROWD_RULES
