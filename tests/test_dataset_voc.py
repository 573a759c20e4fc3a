"""The ``voc`` dataset on small VOC2012-layout folders written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from contracts.dataset import DatasetContract
from PIL import Image

import segbench_plugins.datasets as standard_datasets
from segbench.components import Catalogue, Registrar
from segbench.errors import SegbenchError
from segbench_plugins.datasets.coco import MissingDataError
from segbench_plugins.datasets.folder import MaskValueError
from segbench_plugins.datasets.voc import CLASSES, build_voc

PALETTE = [value for i in range(256) for value in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)]


def palette_png(path: Path, indices: np.ndarray):
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette(PALETTE)
    image.save(path)


def label_map(seed: int, size=(24, 32)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros(size, dtype=np.uint8)
    for _ in range(3):
        y, x = rng.integers(0, size[0] - 8), rng.integers(0, size[1] - 8)
        labels[y:y + 8, x:x + 8] = rng.integers(1, 21)
    labels[y - 1 if y else 0, x:x + 8] = 255  # a boundary band
    return labels


def write_voc(root: Path, train=("2007_000001", "2007_000002", "2007_000003"), val=("2008_000001", "2008_000002"),
              size=(24, 32)) -> dict:
    """A VOC2012 folder; returns {image id: label map}."""
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    labels = {}
    for seed, image_id in enumerate((*train, *val)):
        labels[image_id] = label_map(seed, size)
        pixels = np.random.default_rng(100 + seed).integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg")
        palette_png(root / "SegmentationClass" / f"{image_id}.png", labels[image_id])
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(train) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(val) + "\n")
    return labels


class TestVocContract(DatasetContract):
    name = "voc"

    def build(self, cache_dir):
        root = Path(cache_dir) / "VOC2012"
        write_voc(root)
        register = Registrar("contract-test")
        self.hook(register)
        return Catalogue(register.components).get("dataset", "voc").build(cache_dir, root=str(root), image_size=16)


def test_registered_as_voc_with_its_parameters():
    register = Registrar("test")
    standard_datasets.segbench_datasets(register)
    component = Catalogue(register.components).get("dataset", "voc")
    assert component.factory is build_voc
    assert {n: p.default for n, p in component.params.items()} == {
        "root": None, "image_size": 256, "fit": "resize", "max_images": 0, "selection_seed": 0, "classes": None}


def test_masks_are_palette_indices_with_the_boundary_ignored(tmp_path):
    labels = write_voc(tmp_path / "VOC2012")
    data = build_voc(tmp_path, root=str(tmp_path / "VOC2012"), image_size=None)
    assert data.classes == list(CLASSES) and data.num_classes == 21 and data.ignore_index == 255
    assert data.classes[15] == "person" and data.classes[18] == "sofa"
    assert len(data.train) == 3 and len(data.val) == 2
    expected = np.stack([labels[i] for i in ("2007_000001", "2007_000002", "2007_000003")])
    assert np.array_equal(data.train.masks.numpy(), expected)
    assert (data.train.masks == 255).any()
    assert data.train.images.shape == (3, 3, 24, 32)


def test_resize_is_nearest_for_masks(tmp_path):
    labels = write_voc(tmp_path / "VOC2012")
    data = build_voc(tmp_path, root=str(tmp_path / "VOC2012"), image_size=16)
    expected = np.asarray(Image.fromarray(labels["2008_000001"]).resize((16, 16), Image.NEAREST))
    assert np.array_equal(data.val.masks[0].numpy(), expected)
    assert data.val.images.shape == (2, 3, 16, 16)


def test_root_from_environment_and_devkit_layout(tmp_path, monkeypatch):
    write_voc(tmp_path / "VOCdevkit" / "VOC2012")
    monkeypatch.setenv("SEGBENCH_VOC", str(tmp_path))
    data = build_voc(tmp_path, image_size=16)
    assert len(data.train) == 3


def test_max_images_draws_deterministically(tmp_path):
    train = tuple(f"2007_{i:06d}" for i in range(8))
    write_voc(tmp_path / "VOC2012", train=train)
    full = build_voc(tmp_path, root=str(tmp_path / "VOC2012"), image_size=None)

    def rows(seed):
        data = build_voc(tmp_path, root=str(tmp_path / "VOC2012"), image_size=None, max_images=3, selection_seed=seed)
        assert len(data.train) == 3 and len(data.val) == 2
        return [next(i for i in range(8) if torch.equal(full.train.masks[i], m)) for m in data.train.masks]

    assert rows(0) == rows(0) and rows(0) == sorted(rows(0))
    assert len({tuple(rows(seed)) for seed in range(5)}) > 1


def test_missing_root_shows_layout_and_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("SEGBENCH_VOC", raising=False)
    with pytest.raises(MissingDataError, match="SEGBENCH_VOC") as caught:
        build_voc(tmp_path)
    assert "SegmentationClass" in str(caught.value) and "ImageSets/Segmentation" in str(caught.value)
    with pytest.raises(MissingDataError, match="nowhere.*is not a VOC2012 folder"):
        build_voc(tmp_path, root=str(tmp_path / "nowhere"))


def test_mask_value_outside_the_classes_names_the_file(tmp_path):
    root = tmp_path / "VOC2012"
    write_voc(root)
    bad = label_map(0)
    bad[0, 0] = 21
    bad[0, 1] = 200
    palette_png(root / "SegmentationClass" / "2008_000002.png", bad)
    with pytest.raises(MaskValueError, match=r"2008_000002.png: mask values 21, 200 are not a class index"):
        build_voc(tmp_path, root=str(root))


def test_missing_files_are_named(tmp_path):
    root = tmp_path / "VOC2012"
    write_voc(root)
    (root / "JPEGImages" / "2007_000002.jpg").unlink()
    with pytest.raises(MissingDataError, match="2007_000002.jpg"):
        build_voc(tmp_path, root=str(root))
    write_voc(root)
    (root / "SegmentationClass" / "2008_000001.png").unlink()
    with pytest.raises(MissingDataError, match="2008_000001.png"):
        build_voc(tmp_path, root=str(root))
    write_voc(root)
    (root / "ImageSets/Segmentation/val.txt").unlink()
    with pytest.raises(MissingDataError, match="val.txt"):
        build_voc(tmp_path, root=str(root))


def test_rgb_masks_are_refused(tmp_path):
    root = tmp_path / "VOC2012"
    write_voc(root)
    Image.new("RGB", (32, 24)).save(root / "SegmentationClass" / "2007_000001.png")
    with pytest.raises(SegbenchError, match="2007_000001.png: a mask must hold one class index per pixel.*mode RGB"):
        build_voc(tmp_path, root=str(root))


def test_classes_name_other_data_in_the_voc_layout(tmp_path):
    root = tmp_path / "VOC2012"
    write_voc(root)
    many = ["background"] + [f"class{i}" for i in range(1, 21)]
    data = build_voc(tmp_path, root=str(root), classes=many, image_size=None)
    assert data.classes == many and data.num_classes == 21
    with pytest.raises(MaskValueError, match=r"valid values are 0\.\.2 \(background, a, b\)"):
        build_voc(tmp_path, root=str(root), classes=["background", "a", "b"], image_size=None)


@pytest.mark.parametrize("classes", [["background"], "background,a", ["background", ""], ["bg", "a", "a"], ["bg", 3]])
def test_bad_classes_are_refused(tmp_path, classes):
    root = tmp_path / "VOC2012"
    write_voc(root)
    with pytest.raises(SegbenchError, match="voc: classes"):
        build_voc(tmp_path, root=str(root), classes=classes)
