"""Suite files: defaults, grid expansion, explicit variants, stable ids, validation."""

import pytest

from segbench.cli import main
from segbench.errors import SuiteError
from segbench.plugins import load_catalogue
from segbench.suite import load_suite


def load(path, **kwargs):
    return load_suite(path, load_catalogue, **kwargs)


def problems_of(path, **kwargs):
    with pytest.raises(SuiteError) as caught:
        load(path, **kwargs)
    assert str(path) in str(caught.value)
    return caught.value.problems


def test_defaults_fill_an_almost_empty_suite(write_suite):
    suite = load(write_suite('name = "plain"\n'))
    assert suite.name == "plain" and suite.seeds == [0, 1, 2]
    (variant,) = suite.variants
    config = variant.config
    assert config["dataset"]["name"] == "shapes"
    assert config["model"]["architecture"]["name"] == "unet"
    assert config["model"]["upsampler"] == {"name": "nearest", "params": {}}
    assert config["train"]["epochs"] == 6 and config["train"]["loss"]["name"] == "ce"
    assert [m["name"] for m in config["eval"]["metrics"]] == ["miou", "dice", "pixel_accuracy"]
    assert config["eval"]["primary"] == "miou"
    assert suite.baseline_id == variant.id


def test_ablate_is_the_cartesian_product_in_declaration_order(write_suite):
    suite = load(write_suite("""
        [ablate]
        "model.upsampler" = ["nearest", "bilinear", { name = "transposed", kernel_size = 4 }]
        "train.loss" = ["ce", "dice"]
    """))
    labels = [v.label for v in suite.variants]
    assert labels == [
        "upsampler=nearest, loss=ce", "upsampler=nearest, loss=dice",
        "upsampler=bilinear, loss=ce", "upsampler=bilinear, loss=dice",
        "upsampler=transposed(kernel_size=4), loss=ce", "upsampler=transposed(kernel_size=4), loss=dice",
    ]
    assert len({v.id for v in suite.variants}) == 6
    transposed = suite.variants[4].config["model"]["upsampler"]
    assert transposed["name"] == "transposed" and transposed["params"]["kernel_size"] == 4
    assert len(suite.runs()) == 6 * 3


def test_toml_dotted_keys_and_quoted_dotted_keys_mean_the_same(write_suite):
    quoted = load(write_suite('[ablate]\n"model.upsampler" = ["nearest", "bilinear"]\n', "a.toml"))
    dotted = load(write_suite('[ablate]\nmodel.upsampler = ["nearest", "bilinear"]\n', "b.toml"))
    assert [v.id for v in quoted.variants] == [v.id for v in dotted.variants]


def test_ids_are_stable_and_hash_the_resolved_configuration(write_suite):
    explicit_default = load(write_suite('[model]\nupsampler = { name = "transposed", bilinear_init = false }\n', "a.toml"))
    implicit_default = load(write_suite('[model]\nupsampler = "transposed"\n', "b.toml"))
    again = load(write_suite('[model]\nupsampler = "transposed"\n', "b.toml"))
    other = load(write_suite('[model]\nupsampler = { name = "transposed", kernel_size = 2 }\n', "c.toml"))
    assert explicit_default.variants[0].id == implicit_default.variants[0].id == again.variants[0].id
    assert other.variants[0].id != implicit_default.variants[0].id
    assert len(implicit_default.variants[0].id) == 12


def test_a_new_version_of_a_used_component_changes_the_id(write_suite):
    import dataclasses

    from segbench.components import Catalogue

    def bumped(plugins, base_dir=None):
        catalogue = load_catalogue(plugins, base_dir)
        components = [dataclasses.replace(c, version="99.0") if c.name == "bilinear" else c for c in catalogue.all()]
        return Catalogue(components)

    path = write_suite('[ablate]\n"model.upsampler" = ["nearest", "bilinear"]\n')
    before = load_suite(path, load_catalogue).variants
    after = load_suite(path, bumped).variants
    assert before[0].id == after[0].id, "nearest's provider did not change"
    assert before[1].id != after[1].id
    assert after[1].versions["components"]["upsampler:bilinear"] == "segbench 99.0"


def test_seeds_and_names_do_not_change_ids(write_suite):
    first = load(write_suite('name = "a"\nseeds = [0]\n', "a.toml"))
    second = load(write_suite('name = "b"\ndescription = "x"\nseeds = [5, 6]\n', "b.toml"))
    assert first.variants[0].id == second.variants[0].id


def test_explicit_variants_with_labels_and_a_grid_on_top(write_suite):
    suite = load(write_suite("""
        [[variants]]
        label = "U-Net, nearest"
        model.upsampler = "nearest"

        [[variants]]
        label = "U-Net, no skips"
        model.skip_connections = false

        [ablate]
        "train.optimizer.lr" = [0.001, 0.01]
    """))
    assert [v.label for v in suite.variants] == ["U-Net, nearest, lr=0.001", "U-Net, nearest, lr=0.01",
                                                 "U-Net, no skips, lr=0.001", "U-Net, no skips, lr=0.01"]
    no_skips = [v for v in suite.variants if v.label.startswith("U-Net, no skips")]
    assert all(v.config["model"]["architecture"]["params"]["skip_connections"] is False for v in no_skips)
    assert sorted(v.config["train"]["optimizer"]["lr"] for v in no_skips) == [0.001, 0.01]
    assert all(v.config["train"]["optimizer"]["name"] == "adamw" for v in suite.variants)


def test_a_setting_both_a_variant_and_the_grid_make_is_refused_saying_how(write_suite, capsys, tmp_path):
    """The grid used to override a variant's own setting silently (issue 23)."""
    path = write_suite("""
        [[variants]]
        label = "bilinear"
        model.upsampler = "bilinear"

        [[variants]]
        label = "t4"
        model.upsampler = { name = "transposed", kernel_size = 4 }

        [ablate]
        "model.upsampler" = ["nearest", "bilinear"]
    """)
    problems = problems_of(path)
    for where in ("variants[0].model.upsampler", "variants[1].model.upsampler"):
        assert any(p.startswith(f'{where}: [ablate] sets "model.upsampler" in every variant') and "leave it out of this [[variants]]"
                   in p and "write each combination as a [[variants]] table" in p for p in problems), problems
    assert main(["run", str(path), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "variants[0].model.upsampler" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_grid_over_a_parameter_of_a_variants_component_crosses_it_unless_the_variant_sets_it(write_suite):
    grid = '[ablate]\n"model.upsampler.kernel_size" = [2, 4]\n'
    crossed = load(write_suite('[[variants]]\nlabel = "t"\nmodel.upsampler = { name = "transposed" }\n' + grid, "crossed.toml"))
    assert [(v.label, v.config["model"]["upsampler"]["params"]["kernel_size"]) for v in crossed.variants] == [
        ("t, kernel_size=2", 2), ("t, kernel_size=4", 4)]
    both = '[[variants]]\nlabel = "t"\nmodel.upsampler = { name = "transposed", kernel_size = 4 }\n' + grid
    assert any(p.startswith('variants[0].model.upsampler: [ablate] sets "model.upsampler.kernel_size"')
               for p in problems_of(write_suite(both, "both.toml")))


def test_two_variants_with_one_label_are_refused(write_suite):
    path = write_suite('[[variants]]\nlabel = "a"\nmodel.upsampler = "bilinear"\n\n[[variants]]\nlabel = "a"\n')
    assert "variants[1].label: 'a' is the label of variants[0] too; give each variant its own" in problems_of(path)


def test_a_parameter_of_a_component_can_be_ablated_alone(write_suite):
    suite = load(write_suite("""
        [model]
        upsampler = "transposed"
        [ablate]
        "model.upsampler.kernel_size" = [2, 4]
    """))
    assert [v.config["model"]["upsampler"]["params"]["kernel_size"] for v in suite.variants] == [2, 4]
    assert [v.label for v in suite.variants] == ["kernel_size=2", "kernel_size=4"]


def test_baseline_selects_the_declared_variant(write_suite):
    suite = load(write_suite("""
        baseline = { "model.upsampler" = "bilinear" }
        [ablate]
        "model.upsampler" = ["nearest", "bilinear"]
    """))
    assert suite.baseline.label == "upsampler=bilinear"


def test_overrides_apply_before_expansion(write_suite):
    suite = load(write_suite('[train]\nepochs = 6\n'), overrides={"train.epochs": 1, "dataset.num_train": 8})
    config = suite.variants[0].config
    assert config["train"]["epochs"] == 1 and config["dataset"]["params"]["num_train"] == 8


# --------------------------------------------------------------------------- bad input


def test_toml_syntax_error_names_the_line(write_suite):
    (problem,) = problems_of(write_suite('name = "x"\nseeds = [0, 1]\n[train]\nepochs = = 3\n'))
    assert problem.startswith("TOML syntax error") and "line 4" in problem
    (unclosed,) = problems_of(write_suite('name = "x"\nseeds = [0, 1\n', "unclosed.toml"))
    assert "Unclosed array" in unclosed and "line 2" in unclosed


def test_unknown_keys_get_suggestions(write_suite):
    problems = problems_of(write_suite('seedz = [0]\n[train]\nepoch = 3\n'))
    assert any(p.startswith("seedz:") and "did you mean seeds" in p for p in problems)
    assert any(p.startswith("train.epoch:") and "did you mean train.epochs" in p for p in problems)


def test_unknown_component_names_list_the_valid_ones(write_suite):
    problems = problems_of(write_suite('[ablate]\n"model.upsampler" = ["nearest", "bilnear"]\n'))
    (problem,) = problems
    assert problem.startswith('ablate."model.upsampler"[1]:')
    assert "unknown upsampler 'bilnear'" in problem and "did you mean 'bilinear'" in problem
    assert "Valid:" in problem and "transposed" in problem


def test_unknown_and_ill_typed_parameters(write_suite):
    problems = problems_of(write_suite("""
        [model]
        upsampler = { name = "transposed", kernel = 4 }
        [dataset]
        image_size = "big"
    """))
    assert any(p.startswith("model.upsampler.kernel:") and "did you mean 'kernel_size'" in p for p in problems)
    assert any(p.startswith("dataset.image_size:") and "expects an integer" in p and "'big'" in p for p in problems)


def test_wrong_types_empty_ablations_and_bad_seeds_are_all_reported_at_once(write_suite):
    problems = problems_of(write_suite("""
        seeds = [0, "one", 2.5]
        [train]
        epochs = "five"
        [ablate]
        "model.upsampler" = []
    """))
    assert any(p.startswith("seeds[1]:") and "'one'" in p for p in problems)
    assert any(p.startswith("seeds[2]:") and "2.5" in p for p in problems)
    assert any(p.startswith("train.epochs:") and "integer >= 1" in p and "'five'" in p for p in problems)
    assert any(p.startswith('ablate."model.upsampler":') and "empty list" in p for p in problems)


def test_ablating_a_key_that_names_no_setting(write_suite):
    (problem,) = problems_of(write_suite('[ablate]\n"upsampler" = ["nearest"]\n'))
    assert problem.startswith('ablate."upsampler":') and "model.upsampler" in problem


def test_baseline_that_matches_nothing(write_suite):
    problems = problems_of(write_suite("""
        baseline = { "model.upsampler" = "bicubic" }
        [ablate]
        "model.upsampler" = ["nearest", "bilinear"]
    """))
    assert any(p.startswith("baseline:") and "matches no variant" in p for p in problems)


def test_duplicate_variants_are_reported(write_suite):
    problems = problems_of(write_suite('[ablate]\n"model.upsampler" = ["bilinear", { name = "bilinear", align_corners = false }]\n'))
    assert any("resolve to the same configuration" in p for p in problems)


def test_train_switches_are_checked(write_suite):
    problems = problems_of(write_suite('[train]\nschedule = "cosin"\nchannels_last = "yes"\n'))
    assert any(p.startswith("train.schedule:") and "did you mean 'cosine'" in p and "poly" in p for p in problems)
    assert any(p.startswith("train.channels_last:") and "true or false" in p for p in problems)


def test_baseline_by_label(write_suite):
    text = '[[variants]]\nlabel = "A"\nmodel.upsampler = "nearest"\n\n[[variants]]\nlabel = "B"\nmodel.upsampler = "bilinear"\n'
    suite = load(write_suite('baseline = "B"\n' + text))
    assert suite.baseline.label == "B"
    problems = problems_of(write_suite('baseline = "C"\n' + text, "c.toml"))
    assert any("'C' is not a variant's label; the labels are: A; B" in p for p in problems)
