"""The reference recipes (suites/reference/): each states the published number it aims at
and its source, and each runs end to end, scaled down, on generated data in its real
layout (VOC2012 + SBD, COCO with the real sample image). What they measure at full size
needs a GPU and the real datasets; these tests keep them runnable."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from segbench.cli import main

from test_dataset_coco import real_root
from test_dataset_voc import write_sbd, write_voc

RECIPES = sorted((Path(__file__).resolve().parent.parent / "suites" / "reference").glob("*.toml"))
# No downloads in tests: pretrained weights off, everything else as the recipe has it.
OFFLINE = re.compile(r'^(encoder_weights|backbone_weights) = .*$', re.MULTILINE)
SCALED_DOWN = ["--set", "dataset.image_size=32", "--set", "train.augment.crop=32", "--set", 'eval.inference={mode="whole",scale=[64,48]}',
               "-q"]


def test_there_are_recipes_for_each_published_configuration_the_issue_names():
    names = {path.stem for path in RECIPES}
    assert {"voc-aug-fcn-r50", "voc-aug-deeplabv3plus-r50", "voc-fcn-paper"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_each_recipe_names_its_published_numbers_its_source_and_what_differs(recipe):
    suite = tomllib.loads(recipe.read_text())
    description = suite["description"]
    assert re.search(r"Published[^.]*\d\d\.\d", description), description
    assert "Differs:" in description and "Not yet run" in description
    assert suite["dataset"].get("native_val") is True  # scored at native resolution
    assert "inference" in suite["eval"]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_each_recipe_trains_as_its_source_crops_from_native_images_in_full_precision(recipe):
    """Sources' pipelines: native images, random crops from the whole (rescaled) image, fp32."""
    suite = tomllib.loads(recipe.read_text())
    assert suite["dataset"]["image_size"] == 0, "native size: crops from the whole image as it is read"
    assert suite["train"]["amp"] == "off", "mmsegmentation, torchvision's reference and the paper train in fp32"
    assert suite["train"]["augment"]["crop"] in (480, 500, 512)
    if recipe.stem.startswith("voc-aug-"):  # mmsegmentation
        assert suite["train"]["augment"] == {"resize": [2048, 512], "ratio": [0.5, 2.0], "crop": 512, "cat_max_ratio": 0.75,
                                             "hflip": 0.5, "photometric": True}
        assert suite["train"]["loss"] == {"name": "ce", "average": "all"} and suite["train"]["min_lr"] == 1e-4
    if recipe.stem.startswith("coco-"):  # torchvision's reference
        assert suite["train"]["augment"] == {"short_side": [260, 1040], "hflip": 0.5, "crop": 480}
        assert suite["train"]["lr_mult"] == {"aux_classifier": 10.0}
        assert (suite["dataset"]["crowd"], suite["dataset"]["overlap"]) == ("keep", "torchvision")
    if recipe.stem == "voc-fcn-paper":
        assert suite["train"]["augment"] == {"crop": 500} and suite["train"]["lr_mult"] == {"bias": 2.0}
        assert (suite["model"]["final_upsampling"], suite["model"]["score_init"]) == ("fixed_bilinear", "zeros")
        assert suite["model"]["upsampler"]["bias"] is False


@pytest.fixture(scope="module")
def voc_roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("voc")
    write_voc(base / "VOC2012", train=("2007_000001", "2007_000002", "2007_000003", "2007_000004"),
              val=("2008_000001", "2008_000002"), sizes={"2008_000002": (30, 20)})
    write_sbd(base / "benchmark_RELEASE" / "dataset", train=("2009_000010", "2007_000002"), val=("2009_000011",),
              images=("2009_000010", "2009_000011"))
    return base / "VOC2012", base / "benchmark_RELEASE" / "dataset"


def _run(recipe, tmp_path, monkeypatch, extra):
    copy = tmp_path / recipe.name
    copy.write_text(OFFLINE.sub("", recipe.read_text()))
    out = tmp_path / "out"
    assert main(["run", str(copy), "-o", str(out), *SCALED_DOWN, *extra]) == 0
    return [json.loads(p.read_text()) for p in out.glob("*/runs/*/seed-*/record.json")]


# CPU-sized stand-ins where a recipe's network takes seconds per step here: the same
# architecture and heads on the light encoder; one variant of an ablation over iterations.
SMALLER = {
    "voc-aug-deeplabv3plus-r50": ["--set", 'model.encoder="lite"'],
    "voc-fcn-paper": ["--set", 'model.encoder="lite"', "--set", 'ablate={"model.variant"=["8s"]}',
                      "--set", 'baseline={"model.variant"="8s"}'],
}


@pytest.mark.parametrize("recipe", [r for r in RECIPES if r.stem.startswith("voc-")], ids=lambda p: p.stem)
def test_each_voc_recipe_trains_on_trainaug_and_scores_val_at_native_size(recipe, voc_roots, tmp_path, monkeypatch):
    voc, sbd = voc_roots
    monkeypatch.setenv("SEGBENCH_VOC", str(voc))
    monkeypatch.setenv("SEGBENCH_SBD", str(sbd))
    ablated = tomllib.loads(recipe.read_text())["ablate"]
    extra = ["--set", "train.batch_size=2", *SMALLER.get(recipe.stem, [])]
    if "train.iterations" in ablated:
        extra += ["--set", 'ablate={"train.iterations"=[1]}', "--set", 'baseline={"train.iterations"=1}']
    else:
        extra += ["--set", "train.iterations=1"]
    records = _run(recipe, tmp_path, monkeypatch, extra)
    assert len(records) == 1
    for record in records:
        assert record["status"] == "ok", record.get("error")
        assert record["data_loading"]["feed"] == "loader", "per-sample crops, read by the loader"
        assert record["precision"] == "fp32"
        assert record["config"]["dataset"]["params"]["train_set"] == "trainaug"
        assert record["config"]["eval"]["inference"]["mode"] == "whole"
        assert 0 <= record["metrics"]["miou"] <= 1
        assert len(record["per_image"]["miou"]) == 2  # both val images, one of them 30x20


def test_the_coco_recipe_selects_as_torchvision_and_scores_all_val_images(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGBENCH_COCO", str(real_root(tmp_path)))
    recipe = next(r for r in RECIPES if r.stem.startswith("coco-"))
    # val at 32 px here: a ResNet-50 at stride 8 on the 640x480 sample takes seconds per forward on the CPU
    records = _run(recipe, tmp_path, monkeypatch, ["--set", "train.epochs=1", "--set", "train.batch_size=1",
                                                   "--set", "dataset.native_val=false",
                                                   "--set", 'ablate={"model.architecture"=["tv_fcn_resnet50"]}'])
    (record,) = records
    assert record["status"] == "ok", record.get("error")
    params = record["config"]["dataset"]["params"]
    assert (params["train_selection"], params["val_selection"]) == ("torchvision", "all")
    assert record["config"]["train"]["aux_weight"] == 0.5
