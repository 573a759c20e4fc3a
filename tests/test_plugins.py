"""The plugin manager (segbench/plugins.py): -p modules and files, a suite's plugins,
duplicate names, and the messages a user sees when a plugin is broken.

These tests hide the installed entry points so that they do not depend on which plugins
happen to be installed; tests/test_plugin_distribution.py covers real entry points."""

import sys
import textwrap

import pytest
import torch

from segbench import plugins
from segbench.components import KINDS, Registrar
from segbench.errors import PluginError, SegbenchError

UPSAMPLER_PLUGIN = """
    from torch import nn
    from segbench import hookimpl


    def {factory}(in_channels, out_channels, scale_factor, *, mode: str = "nearest"):
        \"\"\"Interpolate, then a 1x1 conv.\"\"\"
        return nn.Sequential(nn.Upsample(scale_factor=scale_factor, mode=mode), nn.Conv2d(in_channels, out_channels, 1))


    @hookimpl
    def segbench_upsamplers(register):
        register.add_upsampler("{name}", {factory})
"""


INSTALLED_ENTRY_POINTS = plugins.metadata.entry_points  # before the fixture below hides them


@pytest.fixture(autouse=True)
def no_entry_points(monkeypatch):
    """Only the plugins a test names: the installed entry points are hidden."""
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda **selection: [])


@pytest.fixture
def write(tmp_path):
    def write(filename, source):
        path = tmp_path / filename
        path.write_text(textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    """A folder on sys.path for plugins named as modules; forgets them afterwards."""
    folder = tmp_path / "modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith("sbtest_"):
            del sys.modules[name]


def upsampler_plugin(name, factory="make"):
    return UPSAMPLER_PLUGIN.format(name=name, factory=factory)


# --- loading -------------------------------------------------------------------------------


def test_no_plugins_gives_an_empty_catalogue():
    catalogue = plugins.load_catalogue()
    assert catalogue.all() == []
    assert "(none installed)" in str(pytest.raises(SegbenchError, catalogue.get, "upsampler", "nearest").value)


def test_p_loads_a_module_by_name(module_dir):
    (module_dir / "sbtest_by_name.py").write_text(textwrap.dedent(upsampler_plugin("by_name")))
    catalogue = plugins.load_catalogue(["sbtest_by_name"])
    component = catalogue.get("upsampler", "by_name")
    assert (component.provider, component.version) == ("sbtest_by_name", "local")
    assert component.description == "Interpolate, then a 1x1 conv."
    assert list(component.params) == ["mode"] and component.params["mode"].default == "nearest"


def test_p_loads_a_module_inside_a_package(module_dir):
    package = module_dir / "sbtest_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "extra.py").write_text(textwrap.dedent(upsampler_plugin("in_package")))
    catalogue = plugins.load_catalogue(["sbtest_pkg.extra"])
    assert catalogue.get("upsampler", "in_package").provider == "sbtest_pkg.extra"


def test_p_loads_a_py_file(write):
    path = write("my_plugin.py", upsampler_plugin("from_file"))
    catalogue = plugins.load_catalogue([str(path)])
    component = catalogue.get("upsampler", "from_file")
    assert (component.provider, component.version) == (str(path), "local")
    module = component.build(4, 2, 2)
    assert module(torch.zeros(1, 4, 3, 5)).shape == (1, 2, 6, 10)


def test_a_suites_relative_plugin_file_is_found_next_to_the_suite(write, tmp_path, monkeypatch):
    write("suite_plugin.py", upsampler_plugin("suite_local"))
    monkeypatch.chdir(tmp_path.parent)  # not the suite's folder
    catalogue = plugins.load_catalogue(["suite_plugin.py"], base_dir=tmp_path)
    assert catalogue.get("upsampler", "suite_local").provider == str(tmp_path / "suite_plugin.py")


def test_the_same_file_named_twice_is_loaded_once(write, tmp_path, monkeypatch):
    path = write("twice.py", upsampler_plugin("twice"))
    monkeypatch.chdir(tmp_path)
    # e.g. once with -p (absolute) and once in the suite (relative to its folder)
    catalogue = plugins.load_catalogue([str(path), "twice.py"], base_dir=tmp_path)
    assert catalogue.names("upsampler") == ["twice"]


def test_the_same_module_named_twice_is_loaded_once(module_dir):
    (module_dir / "sbtest_twice.py").write_text(textwrap.dedent(upsampler_plugin("twice_module")))
    catalogue = plugins.load_catalogue(["sbtest_twice", "sbtest_twice"])
    assert catalogue.names("upsampler") == ["twice_module"]


def test_one_plugin_may_provide_several_kinds_and_capabilities(write):
    path = write(
        "several.py",
        """
        from segbench import hookimpl


        def up(in_channels, out_channels, scale_factor, *, kernel_size: int):
            \"\"\"Needs pooling indices.\"\"\"


        def arch(out_channels, make_upsampler, *, depth: int = 4):
            \"\"\"Records pooling indices.\"\"\"


        def loss(mode, num_classes, ignore_index):
            pass


        @hookimpl
        def segbench_upsamplers(register):
            register.add_upsampler("unpool_like", up, requires=["pool_indices"])


        @hookimpl
        def segbench_architectures(register):
            register.add_architecture("segnet_like", arch, provides=("pool_indices",), description="Explicit.")


        @hookimpl
        def segbench_losses(register):
            register.add_loss("unpool_like", loss)  # the same name in another kind is fine
        """,
    )
    catalogue = plugins.load_catalogue([str(path)])
    up = catalogue.get("upsampler", "unpool_like")
    arch = catalogue.get("architecture", "segnet_like")
    assert up.requires == {"pool_indices"} and up.provides == frozenset()
    assert arch.provides == {"pool_indices"} and arch.description == "Explicit."
    assert up.params["kernel_size"].required and not arch.params["depth"].required
    assert catalogue.get("loss", "unpool_like").description == ""
    assert [c.kind for c in catalogue.all()] == ["upsampler", "architecture", "loss"]


# --- errors --------------------------------------------------------------------------------


def test_a_missing_module_is_named():
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue(["sbtest_no_such_module"])
    message = str(error.value)
    assert '"sbtest_no_such_module" not found' in message
    assert ".py file" in message  # says what would be valid


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue(["no_such_plugin.py"], base_dir=tmp_path)
    message = str(error.value)
    assert 'plugin file "no_such_plugin.py" does not exist' in message
    assert str(tmp_path / "no_such_plugin.py") in message


def test_a_file_that_raises_at_import_names_the_plugin_and_the_cause(write):
    path = write("explodes.py", "raise RuntimeError('kaboom at import')\n")
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue([str(path)])
    message = str(error.value)
    assert message.startswith(f'Error importing plugin "{path}"')
    assert "RuntimeError: kaboom at import" in message
    assert isinstance(error.value.__cause__, RuntimeError)


def test_a_file_with_a_syntax_error_names_the_plugin(write):
    path = write("bad_syntax.py", "def broken(:\n")
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue([str(path)])
    assert str(error.value).startswith(f'Error importing plugin "{path}"')
    assert "SyntaxError" in str(error.value)


def test_a_failed_file_import_leaves_no_half_module_behind(write):
    path = write("half.py", "raise ValueError('nope')\n")
    before = set(sys.modules)
    with pytest.raises(PluginError):
        plugins.load_catalogue([str(path)])
    assert set(sys.modules) - before == set()


def test_a_module_that_raises_at_import_names_the_plugin_and_the_cause(module_dir):
    (module_dir / "sbtest_raises.py").write_text("raise ImportError('needs libfoo')\n")
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue(["sbtest_raises"])
    message = str(error.value)
    assert message.startswith('Error importing plugin "sbtest_raises"')
    assert "ImportError: needs libfoo" in message


@pytest.mark.parametrize("missing", ["sbtest_dep", "sbtest_dependency_of_nothing"])
def test_a_module_with_a_missing_dependency_is_not_reported_as_missing_itself(module_dir, missing):
    # "sbtest_dep" is a prefix of the plugin's own name: still the dependency is missing
    (module_dir / "sbtest_dep_user.py").write_text(f"import {missing}\n")
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue(["sbtest_dep_user"])
    message = str(error.value)
    assert message.startswith('Error importing plugin "sbtest_dep_user"')
    assert f"No module named '{missing}'" in message
    assert "not found" not in message


def test_two_providers_of_one_name_are_both_named(write):
    first = write("first.py", upsampler_plugin("twin"))
    second = write("second.py", upsampler_plugin("twin"))
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue([str(first), str(second)])
    message = str(error.value)
    assert 'upsampler "twin" is provided twice' in message
    assert f'"{first}"' in message and f'"{second}"' in message


def test_one_plugin_registering_a_name_twice_is_an_error(write):
    path = write(
        "doubled.py",
        upsampler_plugin("doubled")
        + """
    @hookimpl
    def segbench_losses(register):
        register.add_loss("dup", make)
        register.add_loss("dup", make)
    """,
    )
    with pytest.raises(PluginError, match='loss "dup" is provided twice'):
        plugins.load_catalogue([str(path)])


def test_a_hook_that_raises_names_the_plugin_and_the_hook(write):
    path = write(
        "hook_raises.py",
        """
        from segbench import hookimpl


        @hookimpl
        def segbench_metrics(register):
            raise KeyError("missing config")
        """,
    )
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue([str(path)])
    message = str(error.value)
    assert message.startswith(f'plugin "{path}" failed in segbench_metrics')
    assert "KeyError" in message and "missing config" in message


@pytest.mark.parametrize(
    "call, expected",
    [
        ('register.add_loss("has space", lambda *a: None)', "a name must be an identifier"),
        ('register.add_loss(3, lambda *a: None)', "a name must be an identifier"),
        ('register.add_loss("not_callable", 42)', 'registers loss "not_callable" with a non-callable factory'),
    ],
)
def test_an_invalid_registration_names_the_plugin(write, call, expected):
    path = write(
        "invalid.py",
        f"""
        from segbench import hookimpl


        @hookimpl
        def segbench_losses(register):
            {call}
        """,
    )
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue([str(path)])
    assert f'plugin "{path}"' in str(error.value)
    assert expected in str(error.value)


# --- entry points (stand-ins; real distributions are in test_plugin_distribution.py) --------


def fake_entry_point(name, value):
    return plugins.metadata.EntryPoint(name=name, value=value, group=plugins.ENTRY_POINT_GROUP)


def test_entry_points_and_local_plugins_are_combined(module_dir, write, monkeypatch):
    (module_dir / "sbtest_ep_module.py").write_text(textwrap.dedent(upsampler_plugin("from_entry_point")))
    entry_points = [fake_entry_point("ep", "sbtest_ep_module")]
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda **selection: entry_points)
    local = write("local.py", upsampler_plugin("from_local"))
    catalogue = plugins.load_catalogue([str(local)])
    assert catalogue.names("upsampler") == ["from_entry_point", "from_local"]
    # without a distribution behind it, provider and version are unknown, not a crash
    assert catalogue.get("upsampler", "from_entry_point").provider == "?"


def test_a_module_named_by_an_entry_point_and_by_p_is_loaded_once(module_dir, monkeypatch):
    (module_dir / "sbtest_both.py").write_text(textwrap.dedent(upsampler_plugin("both")))
    entry_points = [fake_entry_point("both", "sbtest_both")]
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda **selection: entry_points)
    assert plugins.load_catalogue(["sbtest_both"]).names("upsampler") == ["both"]


def test_a_broken_entry_point_names_the_entry_point_and_the_cause(module_dir, monkeypatch):
    (module_dir / "sbtest_ep_broken.py").write_text("1 / 0\n")
    entry_points = [fake_entry_point("broken_ep", "sbtest_ep_broken")]
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda **selection: entry_points)
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue()
    message = str(error.value)
    assert message.startswith('Error importing plugin "broken_ep" (sbtest_ep_broken)')
    assert "ZeroDivisionError" in message


def test_hooks_match_the_registrar():
    """Every hook has a registrar method and a kind; the manager calls every hook."""
    assert sorted(plugins.HOOKS) == sorted(
        ["segbench_upsamplers", "segbench_architectures", "segbench_losses", "segbench_metrics", "segbench_datasets",
         "segbench_executors", "segbench_reporters"]
    )
    for kind in KINDS:
        assert callable(getattr(Registrar(), f"add_{kind}"))


# --- hook validation ---------------------------------------------------------------------------
# pluggy alone raises its own PluginValidationError for a wrong argument name (a traceback,
# not exit code 2) and ignores a @hookimpl with a misspelt hook name.


def test_a_hook_with_a_wrong_argument_name_names_the_plugin(write):
    path = write(
        "wrong_argument.py",
        """
        from segbench import hookimpl


        @hookimpl
        def segbench_upsamplers(registrar):
            pass
        """,
    )
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue([str(path)])
    assert f'plugin "{path}"' in str(error.value) and "registrar" in str(error.value)


def test_a_misspelt_hook_name_is_an_error_with_a_suggestion(write):
    path = write(
        "misspelt.py",
        """
        from segbench import hookimpl


        @hookimpl
        def segbench_upsampler(register):
            pass
        """,
    )
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue([str(path)])
    assert f'plugin "{path}"' in str(error.value)
    assert "segbench_upsampler" in str(error.value) and "did you mean segbench_upsamplers" in str(error.value)


# --- pytest's conventions: unmarked hooks warn, -p no:NAME disables -------------------------


def test_a_hook_without_hookimpl_warns_naming_it_and_the_plugin(write):
    path = write(
        "unmarked.py",
        """
        from segbench import hookimpl


        def segbench_losses(register):
            register.add_loss("never", lambda mode, num_classes, ignore_index: None)


        def segbench_upsampler(register):
            pass


        @hookimpl
        def segbench_metrics(register):
            pass
        """,
    )
    with pytest.warns(plugins.PluginWarning) as caught:
        catalogue = plugins.load_catalogue([str(path)])
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert messages[0].startswith(f'plugin "{path}" defines segbench_losses without @hookimpl; segbench ignores it')
    assert "did you mean segbench_upsamplers?" in messages[1]
    assert {w.filename for w in caught} == {str(path)}, "the warning points at the plugin's own line"
    assert catalogue.names("loss") == [], "an unmarked hook is not called"


def test_imported_or_marked_functions_do_not_warn(write, recwarn):
    path = write(
        "quiet.py",
        """
        from segbench import hookimpl
        from segbench.hookspecs import segbench_losses as imported_spec  # not defined here


        @hookimpl
        def segbench_losses(register):
            pass
        """,
    )
    plugins.load_catalogue([str(path)])
    assert not [w for w in recwarn if issubclass(w.category, plugins.PluginWarning)]


class _Dist:
    """A stand-in distribution for an entry point."""

    def __init__(self, name):
        self.metadata = {"Name": name}
        self.version = "1.0"


def _entry_points(module_dir, *specs):
    """(entry-point name, distribution name, upsampler name) -> real modules behind fake entry points."""
    found = []
    for name, dist, upsampler in specs:
        (module_dir / f"sbtest_ep_{name}.py").write_text(textwrap.dedent(upsampler_plugin(upsampler)))
        found.append(fake_entry_point(name, f"sbtest_ep_{name}")._for(_Dist(dist)))
    return found


def test_p_no_name_disables_an_entry_point_by_its_name_or_its_distribution(module_dir, monkeypatch):
    entry_points = _entry_points(module_dir, ("first", "Segbench-Extra", "one"), ("second", "segbench-extra", "two"),
                                 ("third", "other-dist", "three"))
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda **selection: entry_points)
    assert plugins.load_catalogue().names("upsampler") == ["one", "three", "two"]
    assert plugins.load_catalogue(["no:first"]).names("upsampler") == ["three", "two"]
    # a distribution's name as pip compares them: every entry point of it
    assert plugins.load_catalogue(["no:segbench_extra"]).names("upsampler") == ["three"]
    assert plugins.locate_plugin("no:first", base_dir=module_dir) == "no:first"


def test_a_disabled_entry_point_is_not_imported(module_dir, monkeypatch):
    (module_dir / "sbtest_ep_broken_off.py").write_text("raise RuntimeError('imported')\n")
    entry_points = [fake_entry_point("broken_off", "sbtest_ep_broken_off")]
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda **selection: entry_points)
    assert plugins.load_catalogue(["no:broken_off"]).all() == []


def test_p_no_with_an_unknown_name_is_bad_input_listing_the_valid_names(module_dir, monkeypatch):
    entry_points = _entry_points(module_dir, ("losses_ep", "segbench-extra", "four"))
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda **selection: entry_points)
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue(["no:losses_e"])
    message = str(error.value)
    assert message.startswith("-p no:losses_e: no installed plugin is called 'losses_e'; did you mean no:losses_ep?")
    assert message.endswith("losses_ep, segbench-extra")


def test_disabling_a_plugin_keeps_the_variant_ids_of_the_others(module_dir, monkeypatch, tmp_path):
    from segbench.suite import load_suite

    installed = list(INSTALLED_ENTRY_POINTS(group=plugins.ENTRY_POINT_GROUP))
    extra = _entry_points(module_dir, ("extra_ups", "segbench-extra", "extra_upsampler"))
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda **selection: installed + extra)
    suite = tmp_path / "ids.toml"
    suite.write_text('name = "ids"\n[dataset]\nname = "shapes"\n[ablate]\n"model.upsampler" = ["nearest", "bilinear"]\n')
    ids = [v.id for v in load_suite(suite, plugins.load_catalogue).variants]
    disabled = load_suite(suite, plugins.load_catalogue, extra_plugins=["no:segbench-extra", "no:executors"])
    assert [v.id for v in disabled.variants] == ids
    assert not disabled.catalogue.has("upsampler", "extra_upsampler") and "local" not in disabled.catalogue.executors


# --- hooks are called through pluggy ------------------------------------------------------------
# They used to be called one by one, past pluggy: a wrapper registered nothing, silently, and
# tryfirst/trylast were ignored (issue 23).

REPORTER_PLUGIN = """
    from segbench import hookimpl


    @hookimpl{marks}
    def segbench_reporters(register):
        register.add_reporter("{name}", lambda context: None, description="{name}")
"""


def _reporters(catalogue) -> list:
    return [(name, reporter.provider) for name, reporter in catalogue.reporters.items()]


def test_hooks_are_called_in_load_order_unless_tryfirst_or_trylast_say_otherwise(write):
    paths = {name: write(f"{name}.py", REPORTER_PLUGIN.format(name=name, marks=marks))
             for name, marks in [("plain_a", ""), ("late", "(trylast=True)"), ("plain_b", ""), ("early", "(tryfirst=True)")]}
    catalogue = plugins.load_catalogue([str(paths[name]) for name in ("late", "plain_a", "early", "plain_b")])
    assert _reporters(catalogue) == [("early", str(paths["early"])), ("plain_a", str(paths["plain_a"])),
                                     ("plain_b", str(paths["plain_b"])), ("late", str(paths["late"]))]


@pytest.mark.parametrize("marks, wait, end", [("(wrapper=True)", "result = yield", "return result"),
                                              ("(hookwrapper=True)", "outcome = yield", "")], ids=["wrapper", "hookwrapper"])
def test_a_wrapper_runs_around_the_others_and_what_it_adds_is_its_own(write, marks, wait, end):
    wrapper = write("wrapping.py", f"""
        from segbench import hookimpl


        @hookimpl{marks}
        def segbench_reporters(register):
            register.add_reporter("before", lambda context: None)
            {wait}
            register.add_reporter("after", lambda context: None)
            {end}
    """)
    inner = write("inner.py", REPORTER_PLUGIN.format(name="inner", marks=""))
    catalogue = plugins.load_catalogue([str(wrapper), str(inner)])
    assert _reporters(catalogue) == [("before", str(wrapper)), ("inner", str(inner)), ("after", str(wrapper))]


def test_a_wrapper_sees_the_error_of_a_plugin_inside_it_which_is_named_after_that_plugin(write):
    wrapper = write("wrapping.py", """
        from segbench import hookimpl

        SEEN = []


        @hookimpl(wrapper=True)
        def segbench_reporters(register):
            try:
                return (yield)
            except Exception as exc:
                SEEN.append(str(exc))
                raise
    """)
    broken = write("broken.py", """
        from segbench import hookimpl


        @hookimpl
        def segbench_reporters(register):
            raise ValueError("no reporter today")
    """)
    with pytest.raises(PluginError, match=f'plugin "{broken}" failed in segbench_reporters: ValueError: no reporter today') as error:
        plugins.load_catalogue([str(wrapper), str(broken)])
    assert str(wrapper) not in str(error.value)


@pytest.mark.parametrize("body, says", [
    ('register.add_reporter("x", lambda context: None)', "not a generator function"),
    ("if False:\n                yield\n            return []", "a wrapper did not yield"),
], ids=["not-a-generator", "never-yields"])
def test_a_broken_wrapper_is_bad_input_naming_its_plugin(write, body, says):
    path = write("broken_wrapper.py", f"""
        from segbench import hookimpl


        @hookimpl(wrapper=True)
        def segbench_reporters(register):
            {body}
    """)
    with pytest.raises(PluginError) as error:
        plugins.load_catalogue([str(path)])
    assert f'"{path}"' in str(error.value) and says in str(error.value), str(error.value)
