"""``[train] lr_mult``: per-parameter learning-rate multipliers with mmengine's
``paramwise_cfg.custom_keys`` matching (the longest key contained in a parameter's full
name wins, ties alphabetically), as optimiser parameter groups that the schedule scales
alike; a bad value or a key that matches no parameter is bad input before training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segbench.cli import main
from segbench.engine.build import build_optimizer, build_schedule, param_groups
from segbench.plugins import load_catalogue
from segbench.suite import config_id, load_suite


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 1)
        self.head = nn.Conv2d(4, 2, 1)
        self.aux_head = nn.Conv2d(4, 2, 1)
        self.ab = nn.ModuleDict({"ba": nn.Conv2d(4, 2, 1)})  # names "ab.ba.weight", "ab.ba.bias"

    def forward(self, x):
        features = self.backbone(x)
        return self.head(features) + self.aux_head(features) + self.ab["ba"](features)


def _net():
    torch.manual_seed(0)
    return _Net()


def _rates_by_name(model, lr, lr_mult) -> dict:
    groups = param_groups(model, lr, lr_mult)
    by_id = {id(p): group["lr"] for group in groups for p in group["params"]}
    return {name: by_id[id(p)] for name, p in model.named_parameters()}


def test_the_longest_key_a_name_contains_wins_then_the_alphabetically_first():
    lr_mult = {"head": 10.0, "aux_head": 2.0, "backbone.weight": 0.5, "ba": 3.0, "ab": 4.0}
    # Written out by hand from mmengine's rule, not from the implementation:
    # aux_head.* contains "head" and "aux_head": the longer wins; "ab.ba.*" contains "ab" and
    # "ba" (equal length): "ab" first alphabetically; "backbone.bias" contains "ba" only.
    expected = {"backbone.weight": 0.5, "backbone.bias": 3.0, "head.weight": 10.0, "head.bias": 10.0,
                "aux_head.weight": 2.0, "aux_head.bias": 2.0, "ab.ba.weight": 4.0, "ab.ba.bias": 4.0}
    assert _rates_by_name(_net(), 0.1, lr_mult) == pytest.approx({name: 0.1 * mult for name, mult in expected.items()})


def test_parameters_no_key_matches_keep_the_base_rate_in_one_group_first():
    model = _net()
    groups = param_groups(model, 0.1, {"aux_head": 10.0})
    assert [group["lr"] for group in groups] == pytest.approx([0.1, 1.0])
    assert [p for group in groups for p in group["params"]] == [p for name, p in model.named_parameters() if "aux_head" not in name] + \
        [model.aux_head.weight, model.aux_head.bias]
    assert len(param_groups(model, 0.1, {})) == 1


def _sgd_step(lr_mult):
    """One plain SGD step (no momentum, no decay) from the same weights and batch."""
    model = _net()
    optimizer = build_optimizer({"name": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0}, model, lr_mult)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    images = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    model(images).square().mean().backward()
    optimizer.step()
    return {name: p.detach() - before[name] for name, p in model.named_parameters()}


def test_a_step_moves_the_multiplied_parameters_by_the_multiplier():
    plain, tenfold = _sgd_step({}), _sgd_step({"aux_head": 10.0})
    for name in plain:
        factor = 10.0 if name.startswith("aux_head") else 1.0
        assert plain[name].abs().sum() > 0
        torch.testing.assert_close(tenfold[name], factor * plain[name])


def test_the_schedule_and_warm_up_scale_every_group_alike():
    steps, warmup = 10, 3
    optimizer = build_optimizer({"name": "adamw", "lr": 0.02, "weight_decay": 0.0}, _net(), {"aux_head": 10.0})
    schedule = build_schedule("poly", optimizer, steps, warmup)
    for step in range(steps):
        factor = (1 - step / steps) ** 0.9 * min(1.0, (step + 1) / warmup)  # poly 0.9 after a linear warm-up
        assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.02 * factor, 0.2 * factor])
        optimizer.step()
        schedule.step()


def test_the_torchvision_reference_key_selects_exactly_the_auxiliary_classifier():
    """torchvision's references/segmentation/train.py: aux_classifier at lr x 10."""
    from segbench.engine.build import build_model

    catalogue = load_catalogue()
    for architecture in ("tv_fcn_resnet50", "tv_deeplabv3_resnet50"):
        ref = {"architecture": {"name": architecture, "params": {"aux_loss": True}}, "upsampler": {"name": "bilinear", "params": {}}}
        model = build_model(catalogue, ref, 3)
        base, aux = param_groups(model, 0.02, {"aux_classifier": 10.0})
        assert aux["lr"] == pytest.approx(0.2) and base["lr"] == 0.02
        assert {id(p) for p in aux["params"]} == {id(p) for p in model.model.aux_classifier.parameters()}


# --- in a suite --------------------------------------------------------------------------

SUITE = """
name = "lr-mult"
seeds = [0]

[dataset]
name = "shapes"
image_size = 32
num_train = 8
num_val = 4

[model]
architecture = "fcn"
encoder = "lite"
upsampler = { name = "transposed", bilinear_init = true }
aux_head = true

[train]
epochs = 1
batch_size = 4
"""


def test_the_run_trains_with_the_groups(write_suite):
    from segbench.engine import build
    from segbench.engine.run import _training_step
    from segbench.runner import resolve_cache_dir

    suite = load_suite(write_suite(SUITE + 'lr_mult = { aux_head = 10, "decoder.upsamples" = 0.5 }\n'), load_catalogue)
    config = suite.variants[0].config
    assert config["train"]["lr_mult"] == {"aux_head": 10.0, "decoder.upsamples": 0.5}
    data = build.build_dataset(suite.catalogue, config["dataset"], resolve_cache_dir())
    model, step = _training_step(suite.catalogue, config, data, torch.device("cpu"))
    lr = config["train"]["optimizer"]["lr"]
    rates = {id(p): group["lr"] for group in step.optimizer.param_groups for p in group["params"]}
    for name, parameter in model.named_parameters():
        expected = 10.0 if name.startswith("aux_head.") else 0.5 if name.startswith("decoder.upsamples.") else 1.0
        assert rates[id(parameter)] == pytest.approx(lr * expected), name


def test_lr_mult_at_its_default_leaves_the_variant_id_alone(write_suite):
    path = write_suite(SUITE)
    plain = load_suite(path, load_catalogue).variants[0]
    explicit = load_suite(path, load_catalogue, overrides={"train.lr_mult": {}}).variants[0]
    without = {**plain.config, "train": {k: v for k, v in plain.config["train"].items() if k != "lr_mult"}}
    assert explicit.id == plain.id == config_id(without, plain.versions)
    assert load_suite(path, load_catalogue, overrides={"train.lr_mult.aux_head": 10}).variants[0].id != plain.id


@pytest.mark.parametrize("value, message", [
    ("{ aux_head = 0 }", "train.lr_mult.aux_head: expected a number > 0 (a finite multiplier of the optimizer's lr), got 0 (int)"),
    ("{ aux_head = -1.0, encoder = inf, decoder = nan }",
     ("- train.lr_mult.aux_head: expected a number > 0 (a finite multiplier of the optimizer's lr), got -1.0 (float)\n"
      "  - train.lr_mult.encoder: expected a number > 0 (a finite multiplier of the optimizer's lr), got inf (float)\n"
      "  - train.lr_mult.decoder: expected a number > 0 (a finite multiplier of the optimizer's lr), got nan (float)")),
    ('{ aux_head = "10x" }', "train.lr_mult.aux_head: expected a number > 0 (a finite multiplier of the optimizer's lr), got '10x' (str)"),
    ("10.0", "train.lr_mult: expected a table of parameter-name substrings to a number > 0"),
])
def test_a_bad_multiplier_exits_2_naming_the_key(capsys, write_suite, tmp_path, value, message):
    path = write_suite(SUITE)
    assert main(["run", str(path), "--set", f"train.lr_mult={value}", "--output", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_key_no_parameter_matches_exits_2_naming_the_variant_the_key_and_the_names_there_are(capsys, write_suite, tmp_path):
    path = write_suite(SUITE + 'lr_mult = { aux_hed = 10.0, "decoder.score" = 2.0 }\n[ablate]\n"model.aux_head" = [true, false]\n')
    assert main(["run", str(path), "--output", str(tmp_path / "out")]) == 2
    problems = [line for line in capsys.readouterr().err.splitlines() if "train.lr_mult" in line]
    assert len(problems) == 2  # one per distinct model
    with_head, without = problems
    assert with_head.startswith("  - variant 'aux_head=true': train.lr_mult key 'aux_hed' (did you mean 'aux_head'?) matches no "
                                "parameter of architecture 'fcn' (segbench ")
    assert without.startswith("  - variant 'aux_head=false': train.lr_mult key 'aux_hed' matches no parameter")
    names = with_head.split("this model's names begin with ")[1].split(", ")
    assert set(names) == {"encoder.stages", "decoder.score", "decoder.upsamples", "decoder.skip_scores", "aux_head.0", "aux_head.2",
                          "upsample.weight", "upsample.bias"}
    assert "aux_head.0" not in without
    assert "'decoder.score'" not in with_head + without  # a key that matches is not named
    assert not (tmp_path / "out").exists()


def test_unmatched_keys_are_named_together():
    from segbench.preflight import _unmatched_lr_mult

    message = _unmatched_lr_mult(["a", "b"], [f"block{i}.conv.weight" for i in range(14)], "architecture 'x' (p 1)")
    assert message.startswith("train.lr_mult keys 'a', 'b' match no parameter of architecture 'x' (p 1)")
    assert message.endswith("begin with " + ", ".join(f"block{i}.conv" for i in range(12)) + ", ...")


def test_a_variant_sets_a_whole_table_whose_keys_hold_dots(write_suite):
    path = write_suite(SUITE + '[[variants]]\nlabel = "plain"\n\n[[variants]]\nlabel = "scores x10"\n'
                       '"train.lr_mult" = { "decoder.score" = 10, "decoder.skip_scores" = 10 }\n\n'
                       '[ablate]\n"train.lr_mult.aux_head" = [1.0, 2.0]\n')
    tables = [(v.label, v.config["train"]["lr_mult"]) for v in load_suite(path, load_catalogue).variants]
    assert tables == [("plain, aux_head=1.0", {"aux_head": 1.0}), ("plain, aux_head=2.0", {"aux_head": 2.0}),
                      ("scores x10, aux_head=1.0", {"decoder.score": 10.0, "decoder.skip_scores": 10.0, "aux_head": 1.0}),
                      ("scores x10, aux_head=2.0", {"decoder.score": 10.0, "decoder.skip_scores": 10.0, "aux_head": 2.0})]
