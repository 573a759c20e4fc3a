"""The ``folder`` dataset: images/ + masks/ with a class list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import segbench_plugins.datasets as standard_datasets
from segbench.components import Catalogue, Registrar
from segbench.data import ImageList, TensorPairs
from segbench.errors import SegbenchError
from segbench.testing import DatasetContract
from segbench_plugins.datasets.coco import MissingDataError
from segbench_plugins.datasets.folder import MaskValueError, build_folder

CLASSES = ["background", "road", "car"]


def write_folder(root: Path, count=5, size=(20, 24), suffix=".png", mask_mode="L") -> dict:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    masks = {}
    for i in range(count):
        stem = f"img{i:02d}"
        rng = np.random.default_rng(i)
        mask = np.zeros(size, dtype=np.uint8)
        mask[: size[0] // 2] = 1
        mask[2:6, 3:9] = 2
        mask[-1, :] = 255
        masks[stem] = mask
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / "images" / f"{stem}{suffix}")
        image = Image.fromarray(mask, mode=mask_mode)
        if mask_mode == "P":
            image.putpalette([v for k in range(256) for v in (k, 255 - k, k // 2)])
        image.save(root / "masks" / f"{stem}.png")
    return masks


class TestFolderContract(DatasetContract):
    name = "folder"

    def build(self, cache_dir):
        write_folder(Path(cache_dir) / "data")
        return self.component().build(cache_dir, root=str(Path(cache_dir) / "data"), classes=CLASSES, image_size=16)


def test_registered_as_folder_with_its_parameters():
    register = Registrar("test")
    standard_datasets.segbench_datasets(register)
    component = Catalogue(register.components).get("dataset", "folder")
    assert component.factory is build_folder
    assert component.params["root"].required and component.params["classes"].required
    assert component.params["val_fraction"].default == 0.2 and component.params["image_size"].default is None


def test_loads_masks_exactly_and_splits_deterministically(tmp_path):
    masks = write_folder(tmp_path / "data", count=10)
    data = build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES)
    assert data.classes == CLASSES and data.ignore_index == 255 and data.mode == "multiclass"
    assert (len(data.train), len(data.val)) == (8, 2)
    assert data.train.images.shape == (8, 3, 20, 24)
    assert all(np.array_equal(m.numpy(), masks["img00"]) for m in data.val.masks)  # all masks equal here
    again = build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES)
    assert torch.equal(again.val.images, data.val.images) and torch.equal(again.train.images, data.train.images)
    other = build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES, split_seed=1)
    assert not torch.equal(other.val.images, data.val.images)
    everything = torch.cat([data.train.images, data.val.images])
    assert len({bytes(image.numpy()) for image in everything}) == 10  # each image in exactly one split


def test_jpg_images_palette_masks_and_resize(tmp_path):
    masks = write_folder(tmp_path / "data", count=3, suffix=".jpg", mask_mode="P")
    data = build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES, image_size=12, val_fraction=0.34)
    assert (len(data.train), len(data.val)) == (2, 1)
    expected = np.asarray(Image.fromarray(masks["img00"]).resize((12, 12), Image.NEAREST))
    assert np.array_equal(data.val.masks[0].numpy(), expected)


def test_missing_mask_is_named(tmp_path):
    write_folder(tmp_path / "data")
    (tmp_path / "data" / "masks" / "img03.png").unlink()
    with pytest.raises(MissingDataError, match=r"no mask for image .*img03.png: expected .*masks/img03.png"):
        build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES)


def test_mask_value_outside_the_class_list_names_file_and_value(tmp_path):
    write_folder(tmp_path / "data")
    bad = np.zeros((20, 24), dtype=np.uint8)
    bad[0, 0] = 7
    Image.fromarray(bad, mode="L").save(tmp_path / "data" / "masks" / "img01.png")
    with pytest.raises(MaskValueError, match=r"img01.png: mask value 7 is not a class index; valid values are 0..2 \(background, road, car\)"):
        build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES)


def test_bad_layout_and_parameters(tmp_path):
    with pytest.raises(MissingDataError, match="ROOT/images"):
        build_folder(tmp_path, root=str(tmp_path / "nothing"), classes=CLASSES)
    (tmp_path / "data" / "images").mkdir(parents=True)
    with pytest.raises(MissingDataError, match="masks not found"):
        build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES)
    write_folder(tmp_path / "data", count=1)
    with pytest.raises(SegbenchError, match="at least 2"):
        build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES)
    for params, text in [({"classes": ["background"]}, "at least 2 class names"),
                         ({"classes": ["a", "a"]}, "unique"),
                         ({"val_fraction": 1.0}, "val_fraction"),
                         ({"ignore_index": 1}, "ignore_index")]:
        with pytest.raises(SegbenchError, match=text):
            build_folder(tmp_path, **{"root": str(tmp_path / "data"), "classes": CLASSES, **params})


def test_mixed_sizes_keep_native_size_until_image_size_is_set(tmp_path):
    write_folder(tmp_path / "data", count=3)
    Image.new("RGB", (10, 10)).save(tmp_path / "data" / "images" / "img00.png")
    Image.new("L", (10, 10)).save(tmp_path / "data" / "masks" / "img00.png")
    native = build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES, val_fraction=0.5)
    every = native.train.sizes() + native.val.sizes()
    assert sorted(set(every)) == [(10, 10), (20, 24)]
    data = build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES, val_fraction=0.5, image_size=8)
    assert data.train.images.shape[2:] == (8, 8)


def test_native_val_keeps_val_at_native_size_and_is_refused_when_not_a_flag(tmp_path):
    masks = write_folder(tmp_path / "data", count=4)
    plain = build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES, image_size=8, val_fraction=0.5)
    data = build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES, image_size=8, val_fraction=0.5, native_val=True)
    assert isinstance(data.train, TensorPairs) and torch.equal(data.train.images, plain.train.images)
    assert isinstance(data.val, ImageList) and data.val.sizes() == [(20, 24)] and len(data.val) == 2
    assert all(np.array_equal(mask.numpy(), masks["img00"]) for mask in data.val.masks)
    with pytest.raises(SegbenchError, match="folder: native_val must be true or false; got 'no'"):
        build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES, native_val="no")
