"""Every hook is documented: in its docstring and in docs/writing-plugins.md. Besides one hook
per component kind there are two for the harness's extension points: executors and reporters."""

import inspect
import re
from pathlib import Path

import pytest

from segbench import hookspecs, plugins
from segbench.components import KINDS, Registrar

DOCS = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"
HOOK_NAMES = sorted(name for name in dir(hookspecs) if name.startswith("segbench_"))
HOOK_OF_KIND = {kind: f"segbench_{kind}es" if kind.endswith("s") else f"segbench_{kind}s" for kind in KINDS}
EXTENSION_HOOKS = {"executor": "segbench_executors", "reporter": "segbench_reporters"}  # no component kinds


@pytest.fixture(scope="module")
def docs():
    return DOCS.read_text(encoding="utf-8")


def test_there_is_one_hook_per_kind_and_per_extension_point_and_the_manager_calls_them_all():
    assert HOOK_NAMES == sorted([*HOOK_OF_KIND.values(), *EXTENSION_HOOKS.values()])
    assert sorted(plugins.HOOKS) == HOOK_NAMES
    assert not set(EXTENSION_HOOKS) & set(KINDS), "executors and reporters are no component kinds (no variant id sees them)"


@pytest.mark.parametrize("extension", sorted(EXTENSION_HOOKS))
def test_extension_hook_docstring_names_its_registrar_method_and_the_docs_show_it(extension, docs):
    doc = inspect.getdoc(getattr(hookspecs, EXTENSION_HOOKS[extension]))
    assert f"register.add_{extension}(" in doc and f"register.add_{extension}(" in docs
    assert callable(getattr(Registrar(), f"add_{extension}"))


@pytest.mark.parametrize("hook_name", HOOK_NAMES)
def test_hook_is_a_spec_taking_register(hook_name):
    hook = getattr(hookspecs, hook_name)
    assert hasattr(hook, "segbench_spec"), f"{hook_name} is not marked @hookspec"
    assert list(inspect.signature(hook).parameters) == ["register"]


@pytest.mark.parametrize("hook_name", HOOK_NAMES)
def test_hook_has_a_docstring_with_param_register(hook_name):
    doc = inspect.getdoc(getattr(hookspecs, hook_name))
    assert doc, f"{hook_name} has no docstring"
    assert re.search(r"^:param register:", doc, re.MULTILINE), f"{hook_name}'s docstring lacks a ':param register:' line"


@pytest.mark.parametrize("kind", KINDS)
def test_hook_docstring_names_its_registrar_method(kind):
    doc = inspect.getdoc(getattr(hookspecs, HOOK_OF_KIND[kind]))
    assert f"register.add_{kind}(" in doc
    assert callable(getattr(Registrar(), f"add_{kind}"))


@pytest.mark.parametrize("hook_name", HOOK_NAMES)
def test_hook_is_documented_in_writing_plugins(hook_name, docs):
    assert f"`{hook_name}`" in docs, f"{hook_name} is not documented in {DOCS.name}"


@pytest.mark.parametrize("kind", KINDS)
def test_docs_give_each_kinds_registrar_call_and_factory_signature(kind, docs):
    """The factory calls in the hookspec docstrings appear verbatim in the guide, so a change
    of contract cannot leave the guide behind."""
    assert f"register.add_{kind}(" in docs
    doc = inspect.getdoc(getattr(hookspecs, HOOK_OF_KIND[kind]))
    calls = re.findall(r"``((?:factory|make_upsampler)\([^`]*\))``", " ".join(doc.split()))
    assert any(call.startswith("factory(") for call in calls), f"no factory(...) call in {HOOK_OF_KIND[kind]}'s docstring"
    for call in calls:
        assert f"`{call}`" in docs, f"{DOCS.name} does not show {call} (from {HOOK_OF_KIND[kind]})"


@pytest.mark.parametrize("flag", ["requires", "provides"])
def test_docs_explain_capability_flags(flag, docs):
    assert f"`{flag}`" in docs
    assert f"{flag}=" in docs  # shown in a registrar call
