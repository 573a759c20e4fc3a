"""The ``voc`` dataset on small VOC2012-layout folders written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import segbench_plugins.datasets as standard_datasets
from segbench.components import Catalogue, Registrar
from segbench.errors import SegbenchError
from segbench_plugins.datasets.coco import MissingDataError
from segbench_plugins.datasets.folder import MaskValueError
from segbench.data import ImageList, TensorPairs
from segbench.data.cache import entry_path, files_fingerprint
from segbench.testing import DatasetContract
from segbench_plugins.datasets.voc import CLASSES, SBD_URL, build_voc, read_sbd_mask, trainaug_ids
from conftest import entries_of

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
              size=(24, 32), sizes=None) -> dict:
    """A VOC2012 folder; returns {image id: label map}. ``sizes`` maps an id to its own (H, W)."""
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    labels = {}
    for seed, image_id in enumerate((*train, *val)):
        own = (sizes or {}).get(image_id, size)
        labels[image_id] = label_map(seed, own)
        pixels = np.random.default_rng(100 + seed).integers(0, 256, (*own, 3), dtype=np.uint8)
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
        return self.component().build(cache_dir, root=str(root), image_size=16)


def test_registered_as_voc_with_its_parameters():
    register = Registrar("test")
    standard_datasets.segbench_datasets(register)
    component = Catalogue(register.components).get("dataset", "voc")
    assert component.factory is build_voc
    assert {n: p.default for n, p in component.params.items()} == {
        "root": None, "image_size": 256, "fit": "resize", "max_images": 0, "selection_seed": 0, "classes": None,
        "native_val": False, "train_set": "train", "sbd_root": None}


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


# --- native-resolution val -------------------------------------------------------------------


def jpeg_pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_native_val_keeps_val_at_native_sizes_and_train_at_image_size(tmp_path):
    root = tmp_path / "VOC2012"
    labels = write_voc(root, sizes={"2008_000002": (30, 20)})
    data = build_voc(tmp_path, root=str(root), image_size=16, native_val=True)
    assert isinstance(data.train, TensorPairs) and data.train.images.shape == (3, 3, 16, 16)
    assert isinstance(data.val, ImageList) and data.val.sizes() == [(24, 32), (30, 20)]
    for index, image_id in enumerate(("2008_000001", "2008_000002")):
        image, mask = data.val.raw(index)
        assert np.array_equal(mask.numpy(), labels[image_id])
        assert np.array_equal(image.permute(1, 2, 0).numpy(), jpeg_pixels(root / "JPEGImages" / f"{image_id}.jpg"))
    again = build_voc(tmp_path, root=str(root), image_size=16, native_val=True)  # read back from the cache
    assert isinstance(again.val, ImageList)
    assert all(torch.equal(a, b) for a, b in zip(again.val.masks + again.val.images, data.val.masks + data.val.images))


def test_native_val_is_an_image_list_even_when_every_val_image_shares_one_size(tmp_path):
    root = tmp_path / "VOC2012"
    write_voc(root)
    data = build_voc(tmp_path, root=str(root), image_size=16, native_val=True)
    assert isinstance(data.val, ImageList) and data.val.sizes() == [(24, 32)] and len(data.val) == 2
    images, masks = data.val.batch(torch.arange(2))  # one size: still batchable
    assert images.shape == (2, 3, 24, 32) and masks.shape == (2, 24, 32)


def test_new_options_enter_the_cache_key_only_when_set(tmp_path):
    root = tmp_path / "VOC2012"
    write_voc(root)
    train, val = ["2007_000001", "2007_000002", "2007_000003"], ["2008_000001", "2008_000002"]
    files = [root / folder / f"{i}.{ext}" for i in train + val for folder, ext in (("JPEGImages", "jpg"), ("SegmentationClass", "png"))]
    todays_key = {  # the key this reader wrote before native_val and train_set existed
        "dataset": "voc", "reader_version": 1, "classes": list(CLASSES), "image_size": 16, "fit": "resize",
        "chosen": {"train": train, "val": val}, "inputs": files_fingerprint(files),
    }
    build_voc(tmp_path, root=str(root), image_size=16, native_val=False, train_set="train", sbd_root="/not/read")
    entries = sorted(entries_of(tmp_path, "voc"))
    assert entries == [entry_path(tmp_path, todays_key)]
    build_voc(tmp_path, root=str(root), image_size=16, native_val=True)
    assert len(list(entries_of(tmp_path, "voc"))) == 2


def test_max_images_zero_keeps_all_1449_val_ids(tmp_path):
    root = tmp_path / "VOC2012"
    val = tuple(f"2008_{i:06d}" for i in range(1449))
    write_voc(root, train=("2007_000001",), val=val, size=(10, 10))
    data = build_voc(tmp_path, root=str(root), image_size=None)
    assert len(data.val) == 1449 and len(data.train) == 1
    capped = build_voc(tmp_path, root=str(root), image_size=None, max_images=100)
    assert len(capped.val) == 100 and len(capped.train) == 1


@pytest.mark.parametrize("params, text", [
    ({"native_val": "yes"}, "voc: native_val must be true or false; got 'yes'"),
    ({"native_val": 1}, "voc: native_val must be true or false"),
    ({"train_set": "aug"}, "voc: train_set must be one of train, trainaug; got 'aug'"),
    ({"train_set": None}, "voc: train_set must be one of train, trainaug"),
    ({"sbd_root": 3}, "voc: sbd_root must be a folder path"),
    ({"sbd_root": ""}, "voc: sbd_root must be a folder path"),
])
def test_bad_new_parameters_are_refused(tmp_path, params, text):
    root = tmp_path / "VOC2012"
    write_voc(root)
    with pytest.raises(SegbenchError, match=text):
        build_voc(tmp_path, root=str(root), **params)


# --- trainaug: VOC train + SBD ----------------------------------------------------------------


def sbd_map(seed: int, size=(24, 32)) -> np.ndarray:
    """An SBD class map: 0..20, no boundary band."""
    labels = label_map(500 + seed, size)
    labels[labels == 255] = 0
    return labels


def write_sbd_mat(path: Path, segmentation: np.ndarray):
    """A ``cls/<id>.mat`` in SBD's layout: struct GTcls with Segmentation, Boundaries (a 20x1
    cell of sparse edge maps) and CategoriesPresent."""
    import scipy.io
    import scipy.sparse

    boundaries = np.empty((20, 1), dtype=object)
    for k in range(20):
        boundaries[k, 0] = scipy.sparse.csc_matrix((segmentation == k + 1).astype(float))
    present = np.array([v for v in np.unique(segmentation) if v], dtype=np.uint8)
    scipy.io.savemat(path, {"GTcls": {"Segmentation": segmentation.astype(np.uint8), "Boundaries": boundaries,
                                      "CategoriesPresent": present}})


def write_sbd(dataset: Path, train, val, *, images=(), size=(24, 32)) -> dict:
    """SBD's ``benchmark_RELEASE/dataset`` folder; ``images`` get an ``img/<id>.jpg``. Returns {id: class map}."""
    (dataset / "cls").mkdir(parents=True, exist_ok=True)
    (dataset / "img").mkdir(exist_ok=True)
    labels = {}
    for seed, image_id in enumerate(sorted({*train, *val})):
        labels[image_id] = sbd_map(seed, size)
        write_sbd_mat(dataset / "cls" / f"{image_id}.mat", labels[image_id])
        if image_id in images:
            pixels = np.random.default_rng(900 + seed).integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(dataset / "img" / f"{image_id}.jpg")
    (dataset / "train.txt").write_text("\n".join(train) + "\n")
    (dataset / "val.txt").write_text("\n".join(val) + "\n")
    return labels


def test_sbd_mat_decodes_to_the_array_written_as_torchvision_reads_it(tmp_path):
    from torchvision.datasets import SBDataset

    written = write_sbd(tmp_path / "sbd", train=("2009_000001", "2009_000002"), val=("2009_000003",),
                        images=("2009_000001", "2009_000002", "2009_000003"))
    for image_id, labels in written.items():
        decoded = read_sbd_mask(tmp_path / "sbd" / "cls" / f"{image_id}.mat")
        assert decoded.dtype == np.uint8 and np.array_equal(decoded, labels)
    reference = SBDataset(str(tmp_path / "sbd"), image_set="train", mode="segmentation")
    for index, image_id in enumerate(("2009_000001", "2009_000002")):
        _, target = reference[index]
        assert np.array_equal(np.asarray(target), written[image_id])


def test_trainaug_ids_are_sbd_and_voc_train_minus_voc_val():
    voc_train, voc_val = ["a", "b", "c"], ["v1", "v2"]
    sbd = ["b", "s1", "v1", "s2", "c", "s1"]  # SBD train + SBD val: overlaps VOC train and VOC val
    assert trainaug_ids(voc_train, voc_val, sbd) == ["a", "b", "c", "s1", "s2"]
    assert trainaug_ids(voc_train, voc_val, []) == ["a", "b", "c"]


def trainaug_folder(tmp_path):
    voc = tmp_path / "VOC2012"
    voc_labels = write_voc(voc)  # train 2007_000001..3, val 2008_000001..2
    # 2007_000002 (VOC train) and 2008_000001 (VOC val) are in SBD too, as in the real lists
    sbd_labels = write_sbd(tmp_path / "benchmark_RELEASE" / "dataset",
                           train=("2007_000002", "2009_000010", "2008_000001"), val=("2009_000011",),
                           images=("2009_000011",))
    pixels = np.random.default_rng(7).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(voc / "JPEGImages" / "2009_000010.jpg")  # VOC holds SBD's images
    return voc, tmp_path / "benchmark_RELEASE" / "dataset", voc_labels, sbd_labels


def test_trainaug_reads_voc_masks_for_voc_train_and_sbd_masks_for_the_rest(tmp_path):
    voc, sbd, voc_labels, sbd_labels = trainaug_folder(tmp_path)
    data = build_voc(tmp_path, root=str(voc), image_size=None, train_set="trainaug", sbd_root=str(sbd))
    ids = ["2007_000001", "2007_000002", "2007_000003", "2009_000010", "2009_000011"]
    assert len(data.train) == 5
    expected = [voc_labels[i] for i in ids[:3]] + [sbd_labels[i] for i in ids[3:]]
    assert np.array_equal(data.train.masks.numpy(), np.stack(expected))
    assert not np.array_equal(voc_labels["2007_000002"], sbd_labels["2007_000002"])  # the VOC png won
    assert (data.train.masks[:3] == 255).any() and not (data.train.masks[3:] == 255).any()
    assert np.array_equal(data.train.images[3].permute(1, 2, 0).numpy(), jpeg_pixels(voc / "JPEGImages" / "2009_000010.jpg"))
    assert np.array_equal(data.train.images[4].permute(1, 2, 0).numpy(), jpeg_pixels(sbd / "img" / "2009_000011.jpg"))
    # val stays VOC val, 2008_000001 included although SBD lists it for training
    assert np.array_equal(data.val.masks.numpy(), np.stack([voc_labels["2008_000001"], voc_labels["2008_000002"]]))


def test_trainaug_finds_sbd_from_the_environment_and_the_archive_folder(tmp_path, monkeypatch):
    voc, sbd, _, _ = trainaug_folder(tmp_path)
    monkeypatch.setenv("SEGBENCH_SBD", str(tmp_path))  # the folder benchmark.tgz was extracted in
    data = build_voc(tmp_path, root=str(voc), image_size=16, train_set="trainaug", max_images=2, native_val=True)
    assert len(data.train) == 2 and data.train.images.shape[2:] == (16, 16) and isinstance(data.val, ImageList)


def test_missing_sbd_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("SEGBENCH_SBD", raising=False)
    root = tmp_path / "VOC2012"
    write_voc(root)
    with pytest.raises(MissingDataError, match="SEGBENCH_SBD") as caught:
        build_voc(tmp_path, root=str(root), train_set="trainaug")
    message = str(caught.value)
    assert SBD_URL in message and "benchmark_RELEASE/dataset" in message and "cls/<id>.mat" in message
    with pytest.raises(MissingDataError, match=r"sbd_root = .*nowhere is not an SBD folder.*benchmark.tgz"):
        build_voc(tmp_path, root=str(root), train_set="trainaug", sbd_root=str(tmp_path / "nowhere"))
    assert len(build_voc(tmp_path, root=str(root), image_size=16, sbd_root=str(tmp_path / "nowhere")).train) == 3


def test_bad_sbd_masks_are_named(tmp_path):
    voc, sbd, _, _ = trainaug_folder(tmp_path)
    import scipy.io

    scipy.io.savemat(sbd / "cls" / "2009_000010.mat", {"GTinst": {"Segmentation": np.zeros((24, 32), np.uint8)}})
    with pytest.raises(SegbenchError, match=r"cannot read SBD mask .*2009_000010.mat .*GTcls"):
        build_voc(tmp_path, root=str(voc), train_set="trainaug", sbd_root=str(sbd))
    wrong = sbd_map(0)
    wrong[0, 0] = 21
    write_sbd_mat(sbd / "cls" / "2009_000010.mat", wrong)
    with pytest.raises(MaskValueError, match=r"2009_000010.mat: mask value 21 is not a class index"):
        build_voc(tmp_path, root=str(voc), train_set="trainaug", sbd_root=str(sbd))
    (sbd / "cls" / "2009_000010.mat").unlink()
    with pytest.raises(MissingDataError, match="2009_000010.mat"):
        build_voc(tmp_path, root=str(voc), train_set="trainaug", sbd_root=str(sbd))
