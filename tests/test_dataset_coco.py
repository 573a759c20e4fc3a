"""The ``coco`` dataset: the real COCO sample under the presets, synthetic files for the rules
and every bad-input error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as coco_mask

import segbench_plugins.datasets as standard_datasets
from segbench.components import Catalogue, Registrar
from segbench.data import ImageList, TensorPairs
from segbench.data.cache import entry_path, files_fingerprint, folder_fingerprint
from segbench.errors import SegbenchError
from segbench.testing import DatasetContract
from segbench_plugins.datasets import coco
from segbench_plugins.datasets.coco import MissingDataError
from conftest import entries_of
from segbench_plugins.datasets.coco_dataset import (
    CategoryError,
    EmptySubsetError,
    build_coco,
    load_annotations,
    torchvision_selection,
)

DATA = Path(__file__).parent / "data"
REAL_ANNOTATIONS = DATA / "coco-real" / "annotations" / "instances_sample.json"
REAL_IMAGE = DATA / "coco-real-image" / "000000039769.png"
REMOTES, COUCH, BED, CATS = (1108446, 1110067), 1605237, 1612051, (2190839, 2190842)


def real_root(base: Path) -> Path:
    """A COCO layout (train and val both the one real image) under ``base``."""
    root = base / "coco-root"
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        shutil.copyfile(REAL_ANNOTATIONS, root / "annotations" / f"instances_{split}2017.json")
        (root / f"{split}2017").mkdir(exist_ok=True)
        shutil.copyfile(REAL_IMAGE, root / f"{split}2017" / REAL_IMAGE.name)
    return root


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return real_root(tmp_path_factory.mktemp("coco-real"))


@pytest.fixture(scope="module")
def real_masks():
    dataset = coco.open_coco(REAL_ANNOTATIONS)
    return {a["id"]: coco.annotation_mask(dataset, a) for a in dataset.loadAnns(dataset.getAnnIds())}


class TestCocoContract(DatasetContract):
    name = "coco"

    def build(self, cache_dir):
        return self.component().build(cache_dir, root=str(real_root(Path(cache_dir))), image_size=64)


def test_registered_as_coco_with_its_parameters():
    register = Registrar("test")
    standard_datasets.segbench_datasets(register)
    component = Catalogue(register.components).get("dataset", "coco")
    assert component.factory is build_coco
    for name, default in {"root": None, "categories": "voc20", "image_size": 256, "max_images": 0,
                          "min_pixels": 0, "crowd": "ignore", "overlap": "ignore", "ignore_index": 255,
                          "selection_seed": 0, "on_missing": "error", "train_selection": "filtered",
                          "val_selection": "filtered", "native_val": False}.items():
        assert component.params[name].default == default, name


# --- the real sample ------------------------------------------------------------------------


def test_real_voc20_keeps_cat_and_sofa_only(real, real_masks, tmp_path):
    data = build_coco(tmp_path, root=str(real), image_size=None)
    assert data.classes[8] == "cat" and data.classes[18] == "sofa" and data.num_classes == 21
    assert data.mode == "multiclass" and data.ignore_index == 255
    labels = data.val.masks[0].numpy()
    assert labels.shape == (480, 640) and torch.equal(data.train.masks, data.val.masks)
    cats = real_masks[CATS[0]] | real_masks[CATS[1]]
    couch = real_masks[COUCH]
    assert set(np.unique(labels).tolist()) == {0, 8, 18, 255}  # bed and remote are background
    assert np.array_equal(labels == 255, cats & couch)  # overlap="ignore"
    assert np.array_equal(labels == 8, cats & ~couch)
    assert np.array_equal(labels == 18, couch & ~cats)
    counts = np.bincount(labels.ravel(), minlength=256)
    assert (counts[0], counts[8], counts[18], counts[255]) == (19499, 113016 - 2124, 174685, 2124)
    assert np.array_equal(data.val.images[0].permute(1, 2, 0).numpy(), np.asarray(Image.open(REAL_IMAGE).convert("RGB")))


def test_real_voc20_last_rule_puts_cats_over_the_couch(real, tmp_path):
    data = build_coco(tmp_path, root=str(real), image_size=None, overlap="last")
    counts = np.bincount(data.val.masks[0].numpy().ravel(), minlength=256)
    assert (counts[0], counts[8], counts[18], counts[255]) == (19499, 113016, 174685, 0)


def test_real_all_has_cat_couch_bed_remote(real, real_masks, tmp_path):
    data = build_coco(tmp_path, root=str(real), image_size=None, categories="all", overlap="smallest_on_top")
    assert data.num_classes == 81 and data.classes[0] == "background" and data.classes[1] == "person"
    index = {name: data.classes.index(name) for name in ("cat", "couch", "bed", "remote")}
    labels = data.val.masks[0].numpy()
    present = {data.classes[v] for v in np.unique(labels) if v != 0}
    assert present == {"cat", "couch", "bed", "remote"}
    remotes = real_masks[REMOTES[0]] | real_masks[REMOTES[1]]
    cats = real_masks[CATS[0]] | real_masks[CATS[1]]
    couch, bed = real_masks[COUCH], real_masks[BED]
    # painted largest first: bed, couch, cats, remotes
    assert np.array_equal(labels == index["remote"], remotes)
    assert np.array_equal(labels == index["cat"], cats & ~remotes)
    assert np.array_equal(labels == index["couch"], couch & ~cats & ~remotes)
    assert np.array_equal(labels == index["bed"], bed & ~couch & ~cats & ~remotes)
    assert int((labels == index["remote"]).sum()) == int(remotes.sum())


def test_real_all_ignore_rule_marks_every_contested_pixel(real, real_masks, tmp_path):
    data = build_coco(tmp_path, root=str(real), image_size=None, categories="all")
    labels = data.val.masks[0].numpy()
    groups = {
        data.classes.index("remote"): real_masks[REMOTES[0]] | real_masks[REMOTES[1]],
        data.classes.index("couch"): real_masks[COUCH],
        data.classes.index("bed"): real_masks[BED],
        data.classes.index("cat"): real_masks[CATS[0]] | real_masks[CATS[1]],
    }
    claims = sum(mask.astype(int) for mask in groups.values())
    assert np.array_equal(labels == 255, claims >= 2)
    for class_index, mask in groups.items():
        assert np.array_equal(labels == class_index, mask & (claims == 1))


def test_real_category_list_by_name_and_id(real, tmp_path):
    data = build_coco(tmp_path, root=str(real), image_size=32, categories=["remote", 17])
    assert data.classes == ["background", "remote", "cat"]
    assert data.val.images.shape == (1, 3, 32, 32) and data.val.masks.shape == (1, 32, 32)
    assert set(torch.unique(data.val.masks).tolist()) <= {0, 1, 2, 255}


def test_root_from_the_environment(real, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGBENCH_COCO", str(real))
    data = build_coco(tmp_path, image_size=32, categories=["cat"])
    assert data.classes == ["background", "cat"] and len(data.train) == 1


def test_person_preset_is_binary(tmp_path):
    root = synthetic_root(tmp_path, [[person(2, 2, 8, 8)], [person(0, 0, 4, 4)]])
    data = build_coco(tmp_path, root=str(root), image_size=None, categories="person")
    assert data.mode == "binary" and data.classes == ["background", "person"] and data.output_channels == 1
    assert set(torch.unique(data.train.masks).tolist()) == {0, 1}


# --- synthetic files: crowd RLE, multi-part polygons, overlap, selection --------------------

SIZE = 20
CATEGORIES = [{"id": 1, "name": "person"}, {"id": 17, "name": "cat"}, {"id": 18, "name": "dog"},
              {"id": 63, "name": "couch"}]


def square(x0, y0, x1, y1):
    return [float(x0), float(y0), float(x1), float(y0), float(x1), float(y1), float(x0), float(y1)]


def annotation(category_id, segmentation, iscrowd=0):
    return {"category_id": category_id, "segmentation": segmentation, "iscrowd": iscrowd}


def person(x0, y0, x1, y1):
    return annotation(1, [square(x0, y0, x1, y1)])


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths in column-major order, starting with zeros."""
    flat = mask.ravel(order="F").astype(np.uint8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])))  # 2: force a final change
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    return {"counts": [int(c) for c in counts], "size": list(mask.shape)}


def synthetic_root(base: Path, per_image: list, *, image_sizes=None) -> Path:
    """A COCO root with one image per entry of ``per_image`` (a list of annotations), both splits."""
    root = base / "synthetic"
    (root / "annotations").mkdir(parents=True)
    images, annotations = [], []
    rng = np.random.default_rng(0)
    for position, anns in enumerate(per_image):
        height, width = (image_sizes or {}).get(position, (SIZE, SIZE))
        image_id = position + 1
        images.append({"id": image_id, "file_name": f"{image_id:04d}.png", "width": width, "height": height})
        for ann in anns:
            annotations.append({"bbox": [0, 0, 1, 1], "area": 1.0, **ann, "id": len(annotations) + 1, "image_id": image_id})
    document = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    for split in ("train", "val"):
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(document))
        (root / f"{split}2017").mkdir()
        for info in images:
            pixels = rng.integers(0, 256, (info["height"], info["width"], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"{split}2017" / info["file_name"])
    return root


def decode(polygons, height=SIZE, width=SIZE):
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))).astype(bool)


def test_crowd_rle_is_ignored_or_kept(tmp_path):
    crowd = np.zeros((SIZE, SIZE), dtype=bool)
    crowd[12:18, 3:15] = True
    anns = [annotation(17, [square(2, 2, 8, 8)]), annotation(17, uncompressed_rle(crowd), iscrowd=1)]
    root = synthetic_root(tmp_path, [anns])
    cat = decode([square(2, 2, 8, 8)])
    ignored = build_coco(tmp_path, root=str(root), image_size=None, categories=["cat"]).val.masks[0].numpy()
    assert np.array_equal(ignored == 255, crowd) and np.array_equal(ignored == 1, cat)
    kept = build_coco(tmp_path, root=str(root), image_size=None, categories=["cat"], crowd="keep").val.masks[0].numpy()
    assert np.array_equal(kept == 1, cat | crowd) and not (kept == 255).any()


def test_polygon_with_several_parts_paints_every_part(tmp_path):
    parts = [square(1, 1, 5, 5), square(10, 10, 16, 14), [12.0, 1.0, 18.0, 1.0, 15.0, 7.0]]
    root = synthetic_root(tmp_path, [[annotation(18, parts)]])
    labels = build_coco(tmp_path, root=str(root), image_size=None, categories=["dog"]).val.masks[0].numpy()
    pieces = [decode([part]) for part in parts]
    assert all(piece.any() for piece in pieces)
    assert np.array_equal(labels == 1, pieces[0] | pieces[1] | pieces[2])
    assert int((labels == 1).sum()) == sum(int(piece.sum()) for piece in pieces)


def test_overlap_rules(tmp_path):
    small, big = square(4, 4, 8, 8), square(0, 0, 16, 16)
    root = synthetic_root(tmp_path, [[annotation(17, [small]), annotation(18, [big])]])

    def labels(rule):
        return build_coco(tmp_path, root=str(root), image_size=None, categories=["cat", "dog"], overlap=rule).val.masks[0].numpy()

    small_mask, big_mask = decode([small]), decode([big])
    assert np.array_equal(labels("last") == 2, big_mask) and not (labels("last") == 1).any()
    on_top = labels("smallest_on_top")
    assert np.array_equal(on_top == 1, small_mask) and np.array_equal(on_top == 2, big_mask & ~small_mask)
    ignored = labels("ignore")
    assert np.array_equal(ignored == 255, small_mask) and np.array_equal(ignored == 2, big_mask & ~small_mask)
    assert np.array_equal(labels("torchvision"), ignored), "two classes: torchvision's rule ignores the overlap too"


def test_torchvisions_overlap_rule_ignores_overlaps_of_one_class_too(tmp_path):
    """torchvision's ConvertCocoPolysToMask: target[masks.sum(0) > 1] = 255, whatever the classes."""
    first, second = square(0, 0, 10, 10), square(5, 5, 15, 15)
    root = synthetic_root(tmp_path, [[annotation(18, [first]), annotation(18, [second])]])

    def labels(rule):
        return build_coco(tmp_path, root=str(root), image_size=None, categories=["dog"], overlap=rule).val.masks[0].numpy()

    masks = np.stack([decode([first]), decode([second])]).astype(np.int64)
    expected = masks.max(0) * 1  # one class: index 1
    expected[masks.sum(0) > 1] = 255
    assert np.array_equal(labels("torchvision"), expected)
    assert not (labels("ignore") == 255).any(), "segbench's own rule keeps a same-class overlap"


def test_selection_by_min_pixels_and_max_images(tmp_path):
    sizes = [2, 3, 4, 5, 6, 7, 8, 9]  # square sides: 4..81 pixels
    root = synthetic_root(tmp_path, [[annotation(17, [square(0, 0, s, s)])] for s in sizes] + [[person(0, 0, 9, 9)]])
    everything = build_coco(tmp_path, root=str(root), image_size=None, categories=["cat"])
    assert len(everything.val) == len(sizes)  # the person-only image has no selected category
    areas = (everything.val.masks == 1).sum(dim=(1, 2)).tolist()
    big = build_coco(tmp_path, root=str(root), image_size=None, categories=["cat"], min_pixels=30)
    assert (big.val.masks == 1).sum(dim=(1, 2)).tolist() == [a for a in areas if a >= 30]

    def subset(seed):
        data = build_coco(tmp_path, root=str(root), image_size=None, categories=["cat"], max_images=3, selection_seed=seed)
        assert len(data.val) == 3
        rows = [next(i for i in range(len(everything.val)) if torch.equal(everything.val.images[i], image)) for image in data.val.images]
        assert rows == sorted(rows)
        return rows

    assert subset(0) == subset(0)
    assert len({tuple(subset(seed)) for seed in range(5)}) > 1


# --- bad input --------------------------------------------------------------------------------


def test_missing_root_shows_layout_and_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("SEGBENCH_COCO", raising=False)
    with pytest.raises(MissingDataError, match="SEGBENCH_COCO") as caught:
        build_coco(tmp_path)
    assert "instances_{train,val}2017.json" in str(caught.value)
    with pytest.raises(SegbenchError, match="no-coco-here") as caught:
        build_coco(tmp_path, root=str(tmp_path / "no-coco-here"))
    assert "annotations/instances_" in str(caught.value) and "SEGBENCH_COCO" in str(caught.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError, match="instances_train2017.json"):
        build_coco(tmp_path, root=str(tmp_path / "empty"))


def test_malformed_json_is_named(tmp_path):
    root = synthetic_root(tmp_path, [[person(0, 0, 4, 4)]])
    path = root / "annotations" / "instances_train2017.json"
    path.write_text('{"images": [\n  {"id": 1,,}]}')
    with pytest.raises(SegbenchError, match=r"instances_train2017.json is not valid JSON \(line 2"):
        build_coco(tmp_path, root=str(root), categories="person")
    path.write_text('{"images": [], "categories": []}')
    with pytest.raises(SegbenchError, match="'annotations' is missing"):
        build_coco(tmp_path, root=str(root), categories="person")


def test_missing_and_unreadable_images_are_named_or_skipped(tmp_path):
    root = synthetic_root(tmp_path, [[person(0, 0, 4, 4)], [person(0, 0, 6, 6)]])
    (root / "val2017" / "0002.png").unlink()
    with pytest.raises(MissingDataError, match=r"val2017/0002.png.*on_missing") as caught:
        build_coco(tmp_path, root=str(root), categories="person")
    assert "image id 2" in str(caught.value)
    with pytest.warns(UserWarning, match="skipped 1"):
        data = build_coco(tmp_path, root=str(root), categories="person", on_missing="skip", image_size=None)
    assert len(data.val) == 1 and len(data.train) == 2
    (root / "train2017" / "0001.png").write_bytes(b"not a png at all")  # present but unreadable: named, never skipped
    with pytest.raises(SegbenchError, match=r"cannot read image .*train2017/0001.png"):
        build_coco(tmp_path, root=str(root), categories="person", on_missing="skip")


def test_unknown_category_suggests_the_files_own(tmp_path):
    root = synthetic_root(tmp_path, [[person(0, 0, 4, 4)]])
    with pytest.raises(CategoryError, match="did you mean 'couch'") as caught:
        build_coco(tmp_path, root=str(root), categories=["coach"])
    assert "cat, couch, dog, person" in str(caught.value)
    with pytest.raises(CategoryError, match=r"category id 99 .* 17 \(cat\)"):
        build_coco(tmp_path, root=str(root), categories=[99])
    with pytest.raises(CategoryError, match="voc20, person, all"):
        build_coco(tmp_path, root=str(root), categories="animals")


def test_empty_subset_says_which_filter_emptied_it(tmp_path):
    root = synthetic_root(tmp_path, [[person(0, 0, 4, 4)], [annotation(17, [square(0, 0, 3, 3)])]])
    with pytest.raises(EmptySubsetError, match="category filter.*dog"):
        build_coco(tmp_path, root=str(root), categories=["dog"])
    with pytest.raises(EmptySubsetError, match="min_pixels = 1000"):
        build_coco(tmp_path, root=str(root), categories=["cat"], min_pixels=1000)


def test_bad_parameters_are_refused(tmp_path):
    root = synthetic_root(tmp_path, [[person(0, 0, 4, 4)]])
    for params, text in [({"crowd": "drop"}, "crowd must be one of ignore, keep"),
                         ({"overlap": "first"}, "overlap must be one of ignore, last, smallest_on_top"),
                         ({"on_missing": "warn"}, "on_missing"),
                         ({"max_images": -1}, "max_images"),
                         ({"image_size": 4}, "image_size must be an integer in 8..4096, or 0 for native sizes"),
                         ({"ignore_index": 3}, "ignore_index")]:
        with pytest.raises(SegbenchError, match=text):
            build_coco(tmp_path, root=str(root), categories=["person", "cat", "dog", "couch"], **params)


def test_unset_image_size_keeps_native_sizes(tmp_path):
    root = synthetic_root(tmp_path, [[person(0, 0, 4, 4)], [person(0, 0, 4, 4)]], image_sizes={1: (24, 30)})
    native = build_coco(tmp_path, root=str(root), categories="person", image_size=None)
    assert len(native.val.sizes()) == 2 and (24, 30) in native.val.sizes()
    zero = build_coco(tmp_path, root=str(root), categories="person", image_size=0)  # what a suite writes for native sizes
    assert zero.val.sizes() == native.val.sizes()
    assert all(torch.equal(a, b) for a, b in zip(zero.val.images, native.val.images))
    with pytest.raises(SegbenchError, match="image_size"):
        native.val.batch(torch.arange(2))
    data = build_coco(tmp_path, root=str(root), categories="person", image_size=16)
    assert data.val.images.shape == (2, 3, 16, 16)


# --- native-resolution val, full val sets, torchvision's train selection -----------------------


def test_real_native_val_keeps_the_real_image_at_640x480(real, tmp_path):
    native = build_coco(tmp_path, root=str(real), image_size=64, native_val=True)
    assert isinstance(native.train, TensorPairs) and native.train.images.shape == (1, 3, 64, 64)
    assert isinstance(native.val, ImageList) and native.val.sizes() == [(480, 640)]
    full = build_coco(tmp_path, root=str(real), image_size=None)
    image, mask = native.val.raw(0)
    assert torch.equal(mask, full.val.masks[0]) and torch.equal(image, full.val.images[0])
    assert torch.equal(native.train.masks, build_coco(tmp_path, root=str(real), image_size=64).train.masks)


def real_root_with_a_non_voc_image(base: Path) -> Path:
    """The real sample plus a second image (the same picture, id 1) annotated only with the
    real bed and remotes, which voc20 does not select."""
    root = real_root(base)
    document = json.loads(REAL_ANNOTATIONS.read_text())
    info = document["images"][0]
    document["images"].append({**info, "id": 1, "file_name": "000000000001.png"})
    extra = [{**a, "id": a["id"] + 10_000_000, "image_id": 1} for a in document["annotations"]
             if a["category_id"] in (65, 75)]
    document["annotations"].extend(extra)
    for split in ("train", "val"):
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(document))
        shutil.copyfile(REAL_IMAGE, root / f"{split}2017" / "000000000001.png")
    return root


def test_real_val_selection_all_keeps_images_without_voc_categories_as_background(tmp_path):
    root = real_root_with_a_non_voc_image(tmp_path)
    data = build_coco(tmp_path, root=str(root), image_size=None, val_selection="all", native_val=True)
    assert len(data.train) == 1  # train stays "filtered"
    assert len(data.val) == 2 and data.val.sizes() == [(480, 640)]
    assert not data.val.masks[0].any()  # id 1: bed and remotes only, all background
    assert torch.equal(data.val.masks[1], data.train.masks[0])  # id 39769 as before
    filtered = build_coco(tmp_path, root=str(root), image_size=None)
    assert len(filtered.val) == 1


def test_val_selection_all_takes_every_image_in_id_order(tmp_path):
    per_image = [[annotation(17, [square(0, 0, 6, 6)])], [person(0, 0, 9, 9)], [], [annotation(18, [square(2, 2, 9, 9)])]]
    root = synthetic_root(tmp_path, per_image)
    data = build_coco(tmp_path, root=str(root), image_size=None, categories=["cat", "dog"], val_selection="all")
    assert len(data.train) == 2 and len(data.val) == 4
    assert [sorted(torch.unique(m).tolist()) for m in data.val.masks] == [[0, 1], [0], [0], [0, 2]]
    assert torch.equal(data.val.masks[0], data.train.masks[0]) and torch.equal(data.val.masks[3], data.train.masks[1])
    drawn = build_coco(tmp_path, root=str(root), image_size=None, categories=["cat", "dog"], val_selection="all",
                       max_images=2, selection_seed=3)
    assert len(drawn.val) == 2


def torchvision_reference(dataset, cat_list) -> list:
    """torchvision references/segmentation/coco_utils.py, ``_coco_remove_images_without_annotations``,
    as written there (image ids in sorted order, every annotation, crowd included)."""
    kept = []
    for image_id in sorted(dataset.imgs.keys()):
        anno = dataset.loadAnns(dataset.getAnnIds(imgIds=image_id, iscrowd=None))
        anno = [obj for obj in anno if obj["category_id"] in cat_list]
        if len(anno) and sum(obj["area"] for obj in anno) > 1000:
            kept.append(image_id)
    return kept


def with_area(ann, area):
    return {**ann, "area": area}


def test_torchvision_selection_at_the_1000_boundary(tmp_path):
    cat, dog = annotation(17, [square(0, 0, 4, 4)]), annotation(18, [square(5, 5, 9, 9)])
    per_image = [
        [with_area(cat, 1000)],                                   # 1: exactly 1000: dropped (> 1000)
        [with_area(cat, 1000.5)],                                 # 2: kept
        [with_area(cat, 600), with_area(cat, 401)],               # 3: 1001 over two annotations: kept
        [with_area(cat, 999), with_area(person(0, 0, 9, 9), 5000)],  # 4: person not selected: dropped
        [with_area(annotation(17, [square(0, 0, 4, 4)], iscrowd=1), 1200)],  # 5: crowd counts: kept
        [with_area(dog, 500), with_area(cat, 501)],               # 6: two selected categories: kept
        [],                                                       # 7: no annotations: dropped
        [with_area(cat, 0.5)],                                    # 8: dropped
    ]
    root = synthetic_root(tmp_path, per_image)
    dataset = load_annotations(root / "annotations" / "instances_train2017.json")
    assert torchvision_selection(dataset, "file", {17, 18}) == [2, 3, 5, 6] == torchvision_reference(dataset, [17, 18])
    data = build_coco(tmp_path, root=str(root), image_size=None, categories=["cat", "dog"],
                      train_selection="torchvision", val_selection="all")
    assert len(data.train) == 4 and len(data.val) == 8
    for row, image_id in enumerate([2, 3, 5, 6]):
        assert torch.equal(data.train.masks[row], data.val.masks[image_id - 1])
    # image 5 is all crowd: kept by the rule, although crowd="ignore" leaves it no scored object pixel
    assert set(torch.unique(data.train.masks[2]).tolist()) == {0, 255}
    filtered = build_coco(tmp_path, root=str(root), image_size=None, categories=["cat", "dog"])
    assert len(filtered.train) == 6  # every image with a cat or dog pixel except the crowd-only one


def test_torchvision_selection_matches_the_reference_on_random_areas(tmp_path):
    rng = np.random.default_rng(0)
    per_image = []
    for _ in range(60):
        anns = []
        for _ in range(rng.integers(0, 4)):
            category = int(rng.choice([1, 17, 18, 63]))
            anns.append(with_area(annotation(category, [square(0, 0, 5, 5)], iscrowd=int(rng.random() < 0.2)),
                                  float(rng.choice([rng.uniform(0, 1100), 1000.0, 500.0, 250.0]))))
        per_image.append(anns)
    root = synthetic_root(tmp_path, per_image)
    dataset = load_annotations(root / "annotations" / "instances_train2017.json")
    for selected in ({17}, {17, 18, 63}, {1, 17, 18, 63}):
        expected = torchvision_reference(dataset, selected)
        assert 0 < len(expected) < 60 and torchvision_selection(dataset, "file", selected) == expected


def test_real_voc20_torchvision_selection_keeps_the_cats_image(tmp_path):
    root = real_root_with_a_non_voc_image(tmp_path)
    data = build_coco(tmp_path, root=str(root), image_size=None, train_selection="torchvision", val_selection="all")
    assert len(data.train) == 1 and len(data.val) == 2  # id 1 (bed, remotes) has no voc20 annotation
    assert torch.equal(data.train.masks[0], data.val.masks[1])


def test_torchvision_selection_needs_area_fields_and_a_survivor(tmp_path):
    root = synthetic_root(tmp_path, [[with_area(annotation(17, [square(0, 0, 4, 4)]), None)]])
    with pytest.raises(SegbenchError, match=r"annotation 1 in .*instances_train2017.json has area None; train_selection"):
        build_coco(tmp_path, root=str(root), categories=["cat"], train_selection="torchvision")
    root = synthetic_root(tmp_path / "small", [[with_area(annotation(17, [square(0, 0, 4, 4)]), 1000)]])
    with pytest.raises(EmptySubsetError, match=r"val_selection = \"torchvision\": .*more than 1000"):
        build_coco(tmp_path, root=str(root), categories=["cat"], val_selection="torchvision")


@pytest.mark.parametrize("params, text", [
    ({"train_selection": "reference"}, "coco: train_selection must be one of filtered, torchvision, all; got 'reference'"),
    ({"val_selection": ["all"]}, "coco: val_selection must be one of filtered, torchvision, all"),
    ({"native_val": "true"}, "coco: native_val must be true or false; got 'true'"),
    ({"min_pixels": 5, "train_selection": "all", "val_selection": "torchvision"},
     "coco: min_pixels = 5 applies to \"filtered\" selection only"),
])
def test_bad_selection_parameters_are_refused(tmp_path, params, text):
    root = synthetic_root(tmp_path, [[person(0, 0, 4, 4)]])
    with pytest.raises(SegbenchError, match=text):
        build_coco(tmp_path, root=str(root), categories="person", **params)


def test_new_options_enter_the_cache_key_only_when_set(real, tmp_path):
    todays_key = {  # the key this reader wrote before the selections and native_val existed
        "dataset": "coco", "reader_version": 1, "categories": "voc20", "image_size": 32, "fit": "resize",
        "max_images": 0, "min_pixels": 0, "crowd": "ignore", "overlap": "ignore", "ignore_index": 255, "seed": 0,
        "on_missing": "error",
        "inputs": {role: [files_fingerprint([real / "annotations" / f"instances_{role}2017.json"]),
                          folder_fingerprint(real / f"{role}2017")] for role in ("train", "val")},
    }
    build_coco(tmp_path, root=str(real), image_size=32, train_selection="filtered", val_selection="filtered", native_val=False)
    assert sorted(entries_of(tmp_path, "coco")) == [entry_path(tmp_path, todays_key)]
    for params in ({"native_val": True}, {"val_selection": "all"}, {"train_selection": "torchvision"}):
        build_coco(tmp_path, root=str(real), image_size=32, **params)
    assert len(list(entries_of(tmp_path, "coco"))) == 4
