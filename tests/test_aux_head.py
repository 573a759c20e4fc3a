"""The optional auxiliary FCN head (mmsegmentation's ``auxiliary_head``): returned in
training as torchvision's ``{"out", "aux"}``, trained with ``[train] aux_weight``,
dropped in evaluation; the main network is the same with or without it."""

from __future__ import annotations

import json

import pytest
import torch

from segbench.cli import main
from segbench.engine.build import build_schedule
from segbench.engine.precision import Precision
from segbench.engine.run import Step
from segbench.plugins import load_catalogue
from segbench.suite import load_suite

from battery.harness import Case, check_case, tiny

ARCHITECTURES = ["unet", "fcn", "fpn", "deeplabv3plus"]


def _model(architecture, aux_head, classes=3):
    catalogue = load_catalogue()
    upsampler = catalogue.get("upsampler", "bilinear")
    make = lambda i, o, s: upsampler.factory(i, o, s)  # noqa: E731
    torch.manual_seed(0)
    return catalogue.get("architecture", architecture).factory(classes, make, encoder="lite", aux_head=aux_head)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_training_returns_both_maps_at_input_size_and_evaluation_the_same_logits_as_without(architecture):
    images = torch.randn(2, 3, 64, 48)
    with_aux, without = _model(architecture, True), _model(architecture, False)
    outputs = with_aux.train()(images)
    without.train()(images)  # the same batch-norm statistics
    assert set(outputs) == {"out", "aux"}
    assert outputs["out"].shape == outputs["aux"].shape == (2, 3, 64, 48)
    with_aux.eval(), without.eval()
    # The head is built last, so the main network draws the same initial weights.
    assert torch.equal(with_aux(images), without(images))
    assert sum(p.numel() for p in with_aux.aux_head.parameters()) > 0


@pytest.mark.parametrize("architecture", ["tv_fcn_resnet50", "tv_deeplabv3_resnet50"])
def test_torchvisions_auxiliary_classifier_is_trained_and_dropped_in_evaluation(architecture):
    catalogue = load_catalogue()
    upsampler = catalogue.get("upsampler", "bilinear")
    model = catalogue.get("architecture", architecture).factory(3, lambda i, o, s: upsampler.factory(i, o, s), aux_loss=True)
    images = torch.randn(2, 3, 33, 47)  # odd sizes: both maps are cropped back to the input (2: ASPP pooling batch-norms)
    outputs = model.train()(images)
    assert outputs["out"].shape == outputs["aux"].shape == (2, 3, 33, 47)
    assert model.model.aux_classifier is not None
    assert model.eval()(images).shape == (2, 3, 33, 47)


def test_the_step_adds_the_weighted_auxiliary_loss_and_a_zero_weight_trains_no_aux_head():
    images, masks = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    loss_fn = torch.nn.CrossEntropyLoss()
    for weight in (0.4, 0.0):
        model = _model("fcn", True).train()
        torch.manual_seed(5)  # the head's dropout
        outputs = model(images)
        expected = loss_fn(outputs["out"], masks) + weight * loss_fn(outputs["aux"], masks)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        step = Step(model, loss_fn, optimizer, build_schedule("constant", optimizer, 1),
                    Precision.for_run("off", torch.device("cpu")), aux_weight=weight)
        torch.manual_seed(5)
        assert step(images, masks).item() == pytest.approx(expected.item(), rel=1e-6)
        aux_gradient = sum(float(p.grad.abs().sum()) for p in model.aux_head.parameters())
        assert (aux_gradient > 0) == (weight > 0)


def _suite(aux_weight):
    return tiny(seeds="[0]").replace('decoder_channels = [16, 8, 8, 8, 8]', "aux_head = true").replace(
        'architecture = "unet"', 'architecture = "fcn"').replace("batch_size = 4", f"batch_size = 4\naux_weight = {aux_weight}")


def test_a_suite_trains_with_the_head_and_its_weight_changes_what_is_learned(tmp_path):
    metrics = {}
    for weight in (0.4, 0.0):
        (tmp_path / f"{weight}.toml").write_text(_suite(weight))
        assert main(["run", str(tmp_path / f"{weight}.toml"), "-o", str(tmp_path / str(weight)), "-q"]) == 0
        records = [json.loads(p.read_text()) for p in (tmp_path / str(weight)).glob("*/runs/*/seed-*/record.json")]
        assert {r["config"]["model"]["architecture"]["params"]["aux_head"] for r in records} == {True}
        metrics[weight] = sorted(r["curves"]["train_loss"][0] for r in records)
    assert metrics[0.4] != metrics[0.0]


def test_the_default_weight_keeps_variant_ids(tmp_path):
    (tmp_path / "base.toml").write_text(tiny())
    (tmp_path / "default.toml").write_text(tiny().replace("batch_size = 4", "batch_size = 4\naux_weight = 0.4"))
    ids = [[v.id for v in load_suite(tmp_path / f"{name}.toml", load_catalogue).variants] for name in ("base", "default")]
    assert ids[0] == ids[1]


def test_bad_values_are_refused_before_training(tmp_path):
    check_case(Case("aux-weight", ["run", "{suite}", "-o", "{tmp}/out", "--set", "train.aux_weight=-1"], 2,
                    "train.aux_weight: expected a number >= 0", suite=tiny()), tmp_path)
    check_case(Case("aux-head", ["run", "{suite}", "-o", "{tmp}/out2", "--set", "model.aux_head='yes'"], 2,
                    "model.aux_head: architecture 'unet' parameter 'aux_head' expects true or false", suite=tiny()), tmp_path)


class _AuxInEvaluation(torch.nn.Module):
    """Returns {"out", "aux"} even in evaluation: against the contract."""

    def __init__(self, out_channels):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, out_channels, 1)

    def forward(self, images):
        logits = self.conv(images)
        return {"out": logits, "aux": logits}


def test_a_model_returning_auxiliary_logits_in_evaluation_is_named_before_training(tmp_path):
    plugin = tmp_path / "aux_plugin.py"
    plugin.write_text(
        "import torch\n"
        "from segbench.hookspecs import hookimpl\n"
        f"{__import__('inspect').getsource(_AuxInEvaluation)}\n"
        "@hookimpl\n"
        "def segbench_architectures(register):\n"
        "    register.add_architecture('aux_always', lambda out_channels, make_upsampler: _AuxInEvaluation(out_channels), "
        "provides={'interpolate:nearest'})\n"
    )
    suite = tiny(seeds="[0]").replace('architecture = "unet"', 'architecture = "aux_always"').replace(
        'encoder = "lite"\ndecoder_channels = [16, 8, 8, 8, 8]\n', "").replace(
        '"model.upsampler" = ["nearest", "bilinear"]', '"train.batch_size" = [4]')
    check_case(Case("aux-in-eval", ["run", "{suite}", "-o", "{tmp}/out", "-p", str(plugin)], 2,
                    "returned auxiliary logits in evaluation mode", suite=suite), tmp_path)
