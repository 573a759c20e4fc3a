"""`--set` reaches every key of a suite file or is refused by name; `-p` paths are read from
the current directory; a local plugin counts in variant ids by its name and content
(issue 13, root causes 8 and 10)."""

from pathlib import Path

import pytest

from segbench.cli import parse_overrides
from segbench.errors import PluginError, SegbenchError, SuiteError
from segbench.plugins import load_catalogue, locate_plugin
from segbench.suite import load_suite

SUITE = """
name = "tiny"
seeds = [0, 1]

[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = 4

[train]
epochs = 1
batch_size = 4

[eval]
metrics = ["miou", "dice"]

[ablate]
"model.upsampler" = ["nearest", "bilinear"]
"""

PLUGIN = '''
import torch.nn as nn
from segbench import hookimpl


def local_up(in_channels, out_channels, scale_factor):
    """Nearest upsampling, from a local file."""
    return nn.Upsample(scale_factor=scale_factor, mode="nearest")


@hookimpl
def segbench_upsamplers(register):
    register.add_upsampler("local_up", local_up)
'''


def load(path, **overrides):
    return load_suite(path, load_catalogue, overrides={key.replace("__", "."): value for key, value in overrides.items()})


def problems(path, overrides, plugins=()):
    with pytest.raises(SuiteError) as error:
        load_suite(path, load_catalogue, extra_plugins=plugins, overrides=overrides)
    return error.value.problems


@pytest.fixture
def suite(write_suite):
    return write_suite(SUITE)


# --- every top-level key is honoured ---------------------------------------------------


def test_name_description_and_seeds_are_set(suite):
    loaded = load(suite, name="quick", description="a quick look", seeds=[5, 6, 7])
    assert (loaded.name, loaded.description, loaded.seeds) == ("quick", "a quick look", [5, 6, 7])


def test_adaptive_seeds_are_set_whole_and_by_key(write_suite):
    whole = load(write_suite(SUITE), seeds={"min": 2, "max": 6})
    assert (whole.design.min_seeds, whole.design.max_seeds) == (2, 6)
    adaptive = write_suite(SUITE.replace("seeds = [0, 1]", "seeds = { min = 2, max = 4 }"), "adaptive.toml")
    assert load(adaptive, seeds__max=9).design.max_seeds == 9


def test_baseline_by_label_by_table_and_by_dotted_key(suite):
    bilinear = [v.id for v in load(suite).variants if v.label == "upsampler=bilinear"]
    assert load(suite, baseline="upsampler=bilinear").baseline_id == bilinear[0]
    assert load(suite, baseline={"model.upsampler": "bilinear"}).baseline_id == bilinear[0]
    assert load_suite(suite, load_catalogue, overrides={'baseline."model.upsampler"': "bilinear"}).baseline_id == bilinear[0]
    assert load(suite, baseline__model__upsampler="bilinear").baseline_id == bilinear[0]


def test_an_ablate_factor_is_set_quoted_or_not(suite):
    quoted = load_suite(suite, load_catalogue, overrides={'ablate."model.upsampler"': ["bilinear", "transposed"]})
    bare = load(suite, ablate__model__upsampler=["bilinear", "transposed"])
    assert [v.label for v in quoted.variants] == [v.label for v in bare.variants] == ["upsampler=bilinear", "upsampler=transposed"]
    added = load_suite(suite, load_catalogue, overrides={'ablate."train.optimizer.lr"': [0.001, 0.01]})
    assert len(added.variants) == 4


def test_the_whole_grid_and_the_variants_are_replaced(suite):
    assert [v.label for v in load(suite, ablate={}).variants] == ["base"]
    explicit = load(suite, ablate={}, variants=[{"label": "a", "model.upsampler": "bilinear"}, {"label": "b"}])
    assert [(v.label, v.config["model"]["upsampler"]["name"]) for v in explicit.variants] == [("a", "bilinear"), ("b", "nearest")]


def test_gate_and_stats_are_set(suite):
    loaded = load(suite, gate__rules=["dice:max_drop=0.05"], stats__margin=0.03, stats__alpha=0.1)
    assert [str(rule) for rule in loaded.gate_rules] == ["dice:max_drop=0.05"]
    assert (loaded.stats.margin, loaded.stats.alpha) == (0.03, 0.1)


def test_plugins_set_from_the_command_line_are_read_from_the_suites_folder(suite, tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text(PLUGIN)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load(suite, plugins=["mine.py"], ablate__model__upsampler=["local_up"])
    assert loaded.variants[0].config["model"]["upsampler"]["name"] == "local_up"


def test_a_section_key_and_a_whole_section(suite):
    assert load(suite, train__epochs=3).variants[0].config["train"]["epochs"] == 3
    whole = load(suite, train={"epochs": 2, "batch_size": 2})
    assert whole.variants[0].config["train"]["epochs"] == 2
    assert whole.variants[0].config["train"]["optimizer"]["name"] == "adamw", "defaults still fill the table"


def test_the_stored_suite_text_notes_the_overrides(suite):
    assert load(suite).text == suite.read_text()
    text = load(suite, train__epochs=2).text
    assert text.startswith(suite.read_text().rstrip()) and "#   --set train.epochs=2" in text


# --- refused, by name, never ignored ---------------------------------------------------


@pytest.mark.parametrize("key, value, says", [
    ("train", 1, "`train` is a table; set one of its keys, e.g. train.epochs=1"),
    ("ablate", ["nearest"], "`ablate` is a table"),
    ("stats", 0.1, "`stats` is a table; set one of its keys, e.g. stats.margin"),
    ("epochs", 1, "did you mean train.epochs?"),
    ("sedes", [1], "did you mean seeds?"),
    ("nonsense.key", 1, "unknown key nonsense"),
    ("name.first", "x", "`name` is 'tiny' (str) in the suite, so it has no key 'first'"),
    ("seeds.min", 3, "`seeds` is [0, 1] (list) in the suite"),
    ("variants.label", "x", "set it whole, e.g. variants=["),
    ("plugins.x", "y", "set it whole"),
    ("train..epochs", 1, "not a key"),
    ("model.upsampler", "transposed", "every variant sets model.upsampler itself"),
    ("model.upsampler.kernel_size", 2, "every variant sets model.upsampler itself"),
])
def test_a_key_that_cannot_be_honoured_is_refused(suite, key, value, says):
    found = problems(suite, {key: value})
    assert any(line.startswith(f"--set {key}: ") and says in line for line in found), found


def test_unknown_keys_inside_tables_are_reported_with_did_you_mean(suite):
    assert any("did you mean train.epochs" in line for line in problems(suite, {"train.epoch": 1}))
    assert any("stats.marign" in line and "did you mean stats.margin" in line for line in problems(suite, {"stats.marign": 0.1}))
    assert any("gate.rulez" in line for line in problems(suite, {"gate.rulez": []}))
    assert any("ablate.\"nope.x\"" in line for line in problems(suite, {'ablate."nope.x"': [1]}))


def test_every_bad_override_is_reported_at_once(suite):
    found = problems(suite, {"train": 1, "sedes": [1], "train.epochs": 0})
    assert len(found) == 3, found


def test_a_setting_only_some_variants_set_again_is_kept(write_suite):
    path = write_suite(SUITE + '\n[[variants]]\nlabel = "a"\nmodel.upsampler = "bilinear"\n\n[[variants]]\nlabel = "b"\n')
    loaded = load(path, ablate={}, model__upsampler="transposed")
    assert [v.config["model"]["upsampler"]["name"] for v in loaded.variants] == ["bilinear", "transposed"]


@pytest.mark.parametrize("pair, says", [
    ("seeds=[0,1", "is not a TOML value"),
    ("train.epochs=", "no value"),
    ("a={x=1", "is not a TOML value"),
    ("a=1\nb=2", "one TOML value"),
    ("train.epochs", "expected KEY=VALUE"),
    ("=1", "expected KEY=VALUE"),
])
def test_a_value_that_is_not_toml_is_refused(pair, says):
    with pytest.raises(SegbenchError, match=says):
        parse_overrides([pair])


def test_values_are_toml_and_a_bare_word_is_text():
    assert parse_overrides(["a=1", "b=dice", "c=[1, 2]", 'd="x y"', "e=upsampler=nearest", "f={min=2,max=4}"]) == {
        "a": 1, "b": "dice", "c": [1, 2], "d": "x y", "e": "upsampler=nearest", "f": {"min": 2, "max": 4}}


# --- -p paths and local plugin identity ------------------------------------------------


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """suites/suite.toml, and the working directory work/ holding plug.py."""
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "suite.toml").write_text(SUITE.replace('["nearest", "bilinear"]', '["nearest", "local_up"]'))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "plug.py").write_text(PLUGIN)
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


def ids(suite_path, plugin):
    return [v.id for v in load_suite(suite_path, load_catalogue, extra_plugins=[plugin]).variants]


def test_p_is_read_from_the_current_directory_not_the_suites(layout):
    loaded = load_suite(layout / "suites" / "suite.toml", load_catalogue, extra_plugins=["plug.py"])
    assert loaded.variants[1].label == "upsampler=local_up"
    assert loaded.source["plugins"] == [str(layout / "work" / "plug.py")], "a worker loads the same file from any directory"


def test_a_missing_p_file_is_named_as_typed_and_as_resolved(layout):
    (layout / "suites" / "other.py").write_text(PLUGIN)  # beside the suite: not where -p looks
    with pytest.raises(PluginError) as error:
        load_suite(layout / "suites" / "suite.toml", load_catalogue, extra_plugins=["other.py"])
    assert str(error.value) == f'plugin file "other.py" does not exist (looked at {layout / "work" / "other.py"})'


def test_a_folder_or_a_file_without_hooks_is_refused_as_a_plugin(layout):
    (layout / "work" / "pkg").mkdir()
    with pytest.raises(PluginError, match=r'"pkg/" is a directory \(.*work/pkg\)'):
        locate_plugin("pkg/")
    with pytest.raises(PluginError, match=r'"folder.py" is a directory'):
        (layout / "work" / "folder.py").mkdir()
        locate_plugin("folder.py")
    (layout / "work" / "empty.py").write_text("x = 1\n")
    with pytest.raises(PluginError, match='"empty.py" implements no segbench hook'):
        load_catalogue(["empty.py"])


def test_a_local_plugins_id_does_not_depend_on_how_its_path_is_written(layout, monkeypatch):
    suite_path = layout / "suites" / "suite.toml"
    expected = ids(suite_path, "plug.py")
    assert ids(suite_path, "./plug.py") == expected
    assert ids(suite_path, str(layout / "work" / "plug.py")) == expected
    monkeypatch.chdir(layout)
    assert ids(suite_path, "work/plug.py") == expected
    moved = layout / "moved"
    moved.mkdir()
    (moved / "plug.py").write_text(PLUGIN)  # the same code elsewhere
    assert ids(suite_path, "moved/plug.py") == expected
    assert ids(suite_path, "moved/plug.py")[0] == load(suite_path, ablate={}).variants[0].id, "a variant not using it keeps its id"


def test_editing_a_local_plugin_changes_the_ids_of_the_variants_using_it(layout):
    suite_path = layout / "suites" / "suite.toml"
    before = ids(suite_path, "plug.py")
    edited = layout / "work" / "edited" / "plug.py"
    edited.parent.mkdir()
    edited.write_text(PLUGIN.replace("Nearest upsampling", "Nearest upsampling, edited"))
    after = ids(suite_path, str(edited))
    assert after[0] == before[0] and after[1] != before[1]


def test_a_file_edited_in_place_is_imported_again_with_its_new_id(layout):
    suite_path, plugin = layout / "suites" / "suite.toml", layout / "work" / "plug.py"
    before = ids(suite_path, "plug.py")
    plugin.write_text(PLUGIN.replace("Nearest upsampling", "Edited upsampling"))
    after = load_suite(suite_path, load_catalogue, extra_plugins=["plug.py"])
    assert after.catalogue.get("upsampler", "local_up").description.startswith("Edited"), "the code run is the code hashed"
    assert after.variants[1].id != before[1]


def test_the_identity_is_the_module_name_and_a_content_hash(layout):
    variant = load_suite(layout / "suites" / "suite.toml", load_catalogue, extra_plugins=["plug.py"]).variants[1]
    provenance = variant.versions["components"]["upsampler:local_up"]
    assert provenance.startswith("plug local sha256:") and str(layout) not in provenance
    standard = variant.versions["components"]["architecture:unet"]
    component = load_catalogue().get("architecture", "unet")
    assert standard == f"{component.provider} {component.version}", "installed plugins keep their ids"


def test_a_suites_own_plugins_stay_relative_to_the_suite(layout):
    (layout / "suites" / "beside.py").write_text(PLUGIN)
    suite_path = layout / "suites" / "suite.toml"
    suite_path.write_text('plugins = ["beside.py"]\n' + suite_path.read_text())
    loaded = load_suite(suite_path, load_catalogue)
    assert loaded.plugins == ["beside.py"] and loaded.variants[1].label == "upsampler=local_up"
    assert Path(loaded.catalogue.get("upsampler", "local_up").provider) == layout / "suites" / "beside.py"


def test_a_quoted_dotted_name_means_the_same_as_its_parts(suite):
    quoted = load_suite(suite, load_catalogue, overrides={'"train.epochs"': 3, 'train."optimizer.lr"': 0.01, '"seeds"': [4]})
    assert quoted.variants[0].config["train"]["epochs"] == 3 and quoted.variants[0].config["train"]["optimizer"]["lr"] == 0.01
    assert quoted.seeds == [4]
    assert any("not a key" in line for line in problems(suite, {'"train..epochs"': 1}))


# --- end to end: a local plugin's runs are found again from another directory ----------


def test_the_same_local_plugin_from_another_directory_trains_nothing_again(layout, monkeypatch):
    from segbench import api
    from segbench.store import RECORD_NAME

    suite_path, output = layout / "suites" / "suite.toml", layout / "results"
    one_run = {"ablate": {}, "model.upsampler": "local_up", "seeds": [0], "train.epochs": 1, "dataset.num_train": 2,
               "dataset.num_val": 2, "train.batch_size": 2, "model.encoder": "lite", "model.decoder_channels": [8, 8, 8, 8, 8]}
    first = api.run(suite_path, output, ["plug.py"], one_run, quiet=True)
    assert [r["status"] for r in first.records] == ["ok"]
    written = {path: path.stat().st_mtime_ns for path in output.rglob(RECORD_NAME)}
    monkeypatch.chdir(layout)
    again = api.run(suite_path, output, [str(Path("work") / "plug.py")], one_run, quiet=True)
    assert {r["variant_id"] for r in again.records} == {r["variant_id"] for r in first.records}
    assert {path: path.stat().st_mtime_ns for path in output.rglob(RECORD_NAME)} == written, "no run trained again"
