"""``export_dataset``: any loaded dataset written in COCO or VOC layout reads back through the
standard ``coco`` and ``voc`` readers with the same classes, masks and images."""

from __future__ import annotations

import json
import tomllib
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from segbench.data import ImageList, SegmentationData, TensorPairs
from segbench.data import export as export_module
from segbench.data.export import export_dataset
from segbench.errors import SegbenchError
from segbench_plugins.datasets.coco_dataset import build_coco
from segbench_plugins.datasets.shapes import build_shapes
from segbench_plugins.datasets.voc import build_voc

READERS = {"coco": build_coco, "voc": build_voc}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return build_shapes(tmp_path_factory.mktemp("shapes"), image_size=48, num_train=6, num_val=3)


def read_back(snippet: str, cache_dir, **overrides) -> SegmentationData:
    """The dataset a suite with ``snippet`` as its [dataset] table would load."""
    params = tomllib.loads(snippet)
    name = params.pop("name")
    return READERS[name](cache_dir, **{**params, **overrides})


def with_ignore(mode="multiclass", classes=("background", "road", "car", "sign"), ignore_index=255, seed=0):
    """Non-square samples where every image shows a class and holds ignored pixels."""
    rng = np.random.default_rng(seed)

    def split(count):
        images = torch.from_numpy(rng.integers(0, 256, (count, 3, 16, 20), dtype=np.uint8))
        masks = torch.from_numpy(rng.integers(1, len(classes), (count, 16, 20), dtype=np.uint8))
        masks[:, :4] = 0
        masks[:, 6, 2:18] = ignore_index
        masks[0, 10:, :3] = ignore_index
        return TensorPairs(images, masks)

    return SegmentationData(list(classes), split(3), split(2), ignore_index, mode)


# --- round trips -------------------------------------------------------------------------


def test_coco_export_reads_back_identical(shapes, tmp_path):
    out = tmp_path / "coco-export"
    export_dataset(shapes, out, "coco")
    back = build_coco(tmp_path, root=str(out), categories=shapes.classes[1:], image_size=None, overlap="last")
    assert back.classes == shapes.classes
    for split in ("train", "val"):
        assert torch.equal(getattr(back, split).masks, getattr(shapes, split).masks)
        assert torch.equal(getattr(back, split).images, getattr(shapes, split).images)


def test_coco_files_follow_the_layout(shapes, tmp_path):
    out = tmp_path / "coco-export"
    export_dataset(shapes, out, "coco")
    document = json.loads((out / "annotations" / "instances_val2017.json").read_text())
    assert [image["id"] for image in document["images"]] == [1, 2, 3]
    assert [image["file_name"] for image in document["images"]] == ["000000.png", "000001.png", "000002.png"]
    assert sorted(p.name for p in (out / "train2017").iterdir()) == [f"{i:06d}.png" for i in range(6)]
    assert document["categories"][0] == {"id": 1, "name": "disc", "supercategory": "segbench"}
    assert len(document["categories"]) == 6 and "multiclass" in document["info"]["description"]
    annotation = document["annotations"][0]
    assert isinstance(annotation["segmentation"]["counts"], str) and annotation["iscrowd"] == 0
    assert annotation["area"] > 0 and len(annotation["bbox"]) == 4
    assert "disc" in (out / "README.txt").read_text()


def test_voc_export_reads_back_with_its_own_classes(shapes, tmp_path):
    out = tmp_path / "voc-export"
    export_dataset(shapes, out, "voc")
    back = build_voc(tmp_path, root=str(out), classes=shapes.classes, image_size=None)
    assert back.classes == shapes.classes
    for split in ("train", "val"):
        assert torch.equal(getattr(back, split).masks, getattr(shapes, split).masks)
        difference = (getattr(back, split).images.float() - getattr(shapes, split).images.float()).abs()
        assert difference.mean() < 4  # JPEG: near, not identical
    assert (out / "ImageSets/Segmentation/val.txt").read_text().split() == ["val_000000", "val_000001", "val_000002"]
    assert (out / "classes.txt").read_text().splitlines() == shapes.classes
    with Image.open(out / "SegmentationClass" / "train_000000.png") as mask:
        assert mask.mode == "P"
        palette = mask.getpalette()
    assert palette[3:6] == [128, 0, 0] and palette[255 * 3:256 * 3] == [224, 224, 192]


@pytest.mark.parametrize("fmt", ["coco", "voc"])
def test_snippet_reads_the_export_back(shapes, tmp_path, fmt):
    out = tmp_path / "export"
    snippet = export_dataset(shapes, out, fmt)
    table = tomllib.loads(snippet)
    assert table["name"] == fmt and table["root"] == str(out.resolve())
    assert table["image_size"] == 48  # one square size: reading back resizes nothing
    back = read_back(snippet, tmp_path)
    assert back.classes == shapes.classes
    assert torch.equal(back.val.masks, shapes.val.masks)


# --- ignored pixels ----------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    with_ignore(),
    with_ignore("binary", ("background", "road")),
    with_ignore(classes=("background", "road", "car"), ignore_index=200),
], ids=["multiclass", "binary", "ignore-200"])
def test_ignored_pixels_round_trip_through_coco_as_crowd(tmp_path, data):
    out = tmp_path / "coco-export"
    snippet = export_dataset(data, out, "coco")
    document = json.loads((out / "annotations" / "instances_train2017.json").read_text())
    crowds = [a for a in document["annotations"] if a["iscrowd"]]
    assert len(crowds) == 3 and {a["category_id"] for a in crowds} == {1}
    back = read_back(snippet, tmp_path, image_size=None)  # 16x20: the snippet cannot unset 256
    assert back.classes == data.classes and back.ignore_index == data.ignore_index
    for split in ("train", "val"):
        assert torch.equal(getattr(back, split).masks, getattr(data, split).masks)
        assert torch.equal(getattr(back, split).images, getattr(data, split).images)
    assert ("binary" in snippet) == (data.mode == "binary")
    assert "not one square size (16x20)" in snippet


@pytest.mark.parametrize("data", [
    with_ignore(),
    with_ignore("binary", ("background", "road")),
    with_ignore(classes=("background", "road", "car"), ignore_index=200),
], ids=["multiclass", "binary", "ignore-200"])
def test_ignored_pixels_round_trip_through_voc_as_255(tmp_path, data):
    out = tmp_path / "voc-export"
    snippet = export_dataset(data, out, "voc")
    back = read_back(snippet, tmp_path, image_size=None)
    assert back.classes == data.classes and back.ignore_index == 255
    for split in ("train", "val"):
        original = getattr(data, split).masks
        expected = torch.where(original == data.ignore_index, torch.full_like(original, 255), original)
        assert torch.equal(getattr(back, split).masks, expected)
        assert (getattr(back, split).masks == 255).any()


def test_images_of_several_sizes_keep_their_sizes(tmp_path):
    rng = np.random.default_rng(1)
    shapes = [(12, 16), (20, 14)]
    images = [torch.from_numpy(rng.integers(0, 256, (3, *size), dtype=np.uint8)) for size in shapes]
    masks = [torch.from_numpy(rng.integers(0, 3, size, dtype=np.uint8)) for size in shapes]
    data = SegmentationData(["background", "a", "b"], ImageList(images, masks), ImageList(images, masks))
    snippet = export_dataset(data, tmp_path / "out", "coco")
    assert "12x16, 20x14" in snippet and "image_size =" not in snippet
    back = read_back(snippet, tmp_path, image_size=None)
    for index in range(2):
        assert torch.equal(back.val.raw(index)[1], masks[index])
        assert torch.equal(back.val.raw(index)[0], images[index])


def test_an_image_without_any_class_is_written_with_a_warning(tmp_path):
    data = with_ignore()
    data.val.masks[1] = 0
    with pytest.warns(UserWarning, match="1 image.*show no class"):
        export_dataset(data, tmp_path / "out", "coco")
    assert len(json.loads((tmp_path / "out/annotations/instances_val2017.json").read_text())["images"]) == 2


# --- refusals and atomicity --------------------------------------------------------------


def test_a_non_empty_folder_is_refused(tmp_path):
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SegbenchError, match=r"full is not empty.*must be empty"):
        export_dataset(with_ignore(), out, "voc")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_an_unknown_format_names_the_valid_ones(tmp_path):
    with pytest.raises(SegbenchError, match=r"'yolo'.*valid formats: coco, voc"):
        export_dataset(with_ignore(), tmp_path / "out", "yolo")
    assert list(tmp_path.iterdir()) == []


def test_mask_values_outside_the_classes_are_refused(tmp_path):
    data = with_ignore()
    data.train.masks[2, 0, 0] = 9
    with pytest.raises(SegbenchError, match=r"train sample 2 has mask values \[9\]"):
        export_dataset(data, tmp_path / "out", "coco")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["coco", "voc"])
@pytest.mark.parametrize("existing", [False, True], ids=["absent", "empty"])
def test_a_failing_export_leaves_nothing_behind(tmp_path, monkeypatch, fmt, existing):
    out = tmp_path / "out"
    if existing:
        out.mkdir()

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_module, "readme", fail)  # after every data file is written
    with pytest.raises(RuntimeError, match="disk full"):
        export_dataset(with_ignore(), out, fmt)
    assert [p.name for p in tmp_path.iterdir()] == (["out"] if existing else [])
    assert not existing or list(out.iterdir()) == []


def test_an_existing_empty_folder_is_filled(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_dataset(with_ignore(), out, "voc")
    assert sorted(p.name for p in out.iterdir()) == [
        "ImageSets", "JPEGImages", "README.txt", "SegmentationClass", "classes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert 'name = "voc"' in (out / "README.txt").read_text()
