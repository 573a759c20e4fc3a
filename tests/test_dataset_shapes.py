"""The embedded ``shapes`` dataset and the COCO reader it shares with real COCO data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from pycocotools.coco import COCO

import segbench_plugins.datasets as standard_datasets
from segbench.components import Catalogue, Registrar
from segbench.errors import SegbenchError
from segbench.testing import DatasetContract
from segbench_plugins.datasets import coco, shapes

SMALL = {"image_size": 64, "num_train": 16, "num_val": 8, "generator_seed": 0}
CLASSES = ["background", "disc", "rectangle", "triangle", "line", "ring", "dot"]
REAL = Path(__file__).parent / "data" / "coco-real" / "annotations" / "instances_sample.json"
REAL_IMAGE_ID = 39769
CAT, COUCH, BED = 17, 63, 65


def build(cache_dir, **changes):
    return shapes.build_shapes(cache_dir, **{**SMALL, **changes})


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The SMALL set, built once: (its COCO folder, the SegmentationData)."""
    cache_dir = tmp_path_factory.mktemp("shapes-cache")
    data = build(cache_dir)
    return shapes.dataset_dir(cache_dir, SMALL), data


def split_coco(root, split) -> COCO:
    return coco.open_coco(root / "annotations" / f"instances_{split}.json")


def folder_bytes(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class TestShapesContract(DatasetContract):
    name = "shapes"
    params = {"image_size": 48, "num_train": 8, "num_val": 6}


# --- registration and parameters -----------------------------------------------------


def test_registered_as_shapes_with_its_parameters():
    register = Registrar("test")
    standard_datasets.segbench_datasets(register)
    component = Catalogue(register.components).get("dataset", "shapes")
    assert component.factory is shapes.build_shapes
    assert component.description
    assert {name: (p.default, p.annotation) for name, p in component.params.items()} == {
        "image_size": (96, int),
        "num_train": (320, int),
        "num_val": (96, int),
        "generator_seed": (0, int),
        "foreground": (None, str | None),
        "hue_band": (120.0, float),
    }


@pytest.mark.parametrize(
    "changes, word",
    [({"image_size": 8}, "image_size"), ({"num_train": 0}, "num_train"), ({"num_val": 2.5}, "num_val"),
     ({"generator_seed": -1}, "generator_seed"), ({"image_size": True}, "image_size"), ({"hue_band": 0}, "hue_band"),
     ({"hue_band": 180}, "hue_band")],
)
def test_bad_parameters_are_refused_by_name(tmp_path, changes, word):
    with pytest.raises(SegbenchError, match=word):
        build(tmp_path, **changes)
    assert not (tmp_path / "shapes").exists()


def test_cache_folder_depends_on_every_parameter_and_the_generator_version(tmp_path, monkeypatch):
    folders = {shapes.dataset_dir(tmp_path, SMALL)}
    for name in SMALL:
        folders.add(shapes.dataset_dir(tmp_path, {**SMALL, name: SMALL[name] + 1}))
    monkeypatch.setattr(shapes, "GENERATOR_VERSION", shapes.GENERATOR_VERSION + 1)
    folders.add(shapes.dataset_dir(tmp_path, SMALL))
    assert len(folders) == len(SMALL) + 2
    assert all(folder.parent == tmp_path / "shapes" for folder in folders)


# --- the COCO files ----------------------------------------------------------------------


def test_cache_is_a_standard_coco_dataset(small):
    root, data = small
    for split, count in (("train", SMALL["num_train"]), ("val", SMALL["num_val"])):
        dataset = COCO(str(root / "annotations" / f"instances_{split}.json"))  # the plain loader
        assert [(c["id"], c["name"]) for c in dataset.loadCats(dataset.getCatIds())] == list(enumerate(CLASSES))[1:]
        assert len(dataset.getImgIds()) == count == len(list((root / "images" / split).glob("*.png")))
        for info in dataset.loadImgs(dataset.getImgIds()):
            with Image.open(root / "images" / split / info["file_name"]) as image:
                assert image.size == (info["width"], info["height"]) == (SMALL["image_size"],) * 2
        for annotation in dataset.loadAnns(dataset.getAnnIds()):
            (polygon,) = annotation["segmentation"]
            assert len(polygon) >= 6 and len(polygon) % 2 == 0
            assert all(0 <= v <= SMALL["image_size"] for v in polygon)
            assert annotation["iscrowd"] == 0
            assert annotation["area"] == dataset.annToMask(annotation).sum() > 0
            assert len(annotation["bbox"]) == 4


def test_decoded_masks_and_images_equal_what_was_drawn(small):
    _, data = small
    for split, pairs in (("train", data.train), ("val", data.val)):
        for index in range(len(pairs)):
            scene = shapes.split_scene(SMALL, split, index)
            assert np.array_equal(pairs.masks[index].numpy(), scene.labels), f"{split} {index}"
            assert np.array_equal(pairs.images[index].permute(1, 2, 0).numpy(), scene.image), f"{split} {index}"


def test_later_objects_are_on_top(small):
    """Re-paint every annotation's mask in file order: that is the stored label map."""
    root, data = small
    dataset = split_coco(root, "val")
    for position, image_id in enumerate(sorted(dataset.getImgIds())):
        painted = np.zeros((SMALL["image_size"],) * 2, dtype=np.uint8)
        annotations = dataset.loadAnns(dataset.getAnnIds(imgIds=[image_id]))
        for annotation in annotations:
            painted[dataset.annToMask(annotation).astype(bool)] = annotation["category_id"]
        assert np.array_equal(painted, data.val.masks[position].numpy())
        visible = [(painted == a["category_id"]) & dataset.annToMask(a).astype(bool) for a in annotations]
        assert all(v.any() for v in visible), "every object keeps some visible pixels"


def pil_render(polygon, size, supersample=8):
    """The polygon filled by PIL at ``supersample`` x, pixels at least half covered."""
    image = Image.new("L", (size * supersample, size * supersample), 0)
    points = [(x * supersample, y * supersample) for x, y in zip(polygon[::2], polygon[1::2])]
    ImageDraw.Draw(image).polygon(points, fill=1)
    coverage = np.asarray(image, dtype=np.float32).reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    return coverage >= 0.5


def dilate(mask):
    padded = np.pad(mask, 1)
    h, w = mask.shape
    return np.max([padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)], axis=0)


def test_polygons_agree_with_an_independent_pil_rendering(small):
    """Sanity check of the polygons' coordinates. Rasterisers differ by up to one pixel
    at the boundary (pycocotools snaps vertices to 1/5 px), which is a large share of a
    1-px line or a dot, so: every object agrees up to a 1-px boundary band, and each class
    (pixels pooled over its objects) agrees at IoU > 0.9."""
    root, _ = small
    dataset = split_coco(root, "val")
    pooled = {name: [0, 0] for name in CLASSES[1:]}
    for annotation in dataset.loadAnns(dataset.getAnnIds()):
        drawn = dataset.annToMask(annotation).astype(bool)
        rendered = pil_render(annotation["segmentation"][0], SMALL["image_size"])
        assert np.all(drawn <= dilate(rendered)) and np.all(rendered <= dilate(drawn)), annotation["id"]
        counts = pooled[CLASSES[annotation["category_id"]]]
        counts[0] += (drawn & rendered).sum()
        counts[1] += (drawn | rendered).sum()
    ious = {name: inter / union for name, (inter, union) in pooled.items()}
    assert all(iou > 0.9 for iou in ious.values()), ious


# --- the returned data -------------------------------------------------------------------


def test_classes_and_split_sizes_are_as_declared(small):
    _, data = small
    assert data.classes == CLASSES == list(shapes.CLASSES)
    assert (data.ignore_index, data.mode) == (255, "multiclass")
    assert len(data.train) == SMALL["num_train"] and len(data.val) == SMALL["num_val"]
    assert data.train.images.shape[2:] == (SMALL["image_size"],) * 2


def test_every_class_occurs_in_both_splits(small):
    _, data = small
    for pairs in (data.train, data.val):
        assert set(torch.unique(pairs.masks).tolist()) == set(range(len(CLASSES)))


def test_lines_are_thin_and_long(small):
    """Width = mask area / length, length = the farthest pair of pixels of the mask."""
    root, _ = small
    dataset = split_coco(root, "train")
    widths, lengths = [], []
    for annotation in dataset.loadAnns(dataset.getAnnIds(catIds=[CLASSES.index("line")])):
        pixels = np.argwhere(dataset.annToMask(annotation)).astype(np.float64)
        length = np.sqrt(((pixels[:, None] - pixels[None]) ** 2).sum(-1)).max() + 1
        widths.append(len(pixels) / length)
        lengths.append(length)
    assert len(widths) >= SMALL["num_train"]
    assert np.median(widths) <= 3.0 and max(widths) <= 4.5
    assert np.median(lengths) >= 15


def test_image_colours_do_not_give_the_class_away(small):
    """Every object class shows up in more than one hue sextant, and every sextant holds
    objects of at least two classes: only shape can settle the class."""
    _, data = small
    images = data.train.images.permute(0, 2, 3, 1).reshape(-1, 3).float() / 255
    masks = data.train.masks.reshape(-1)
    hue = hue_sextant(images)
    pairs = {(int(c), int(h)) for c, h in zip(masks[masks > 0], hue[masks > 0])}
    for c in range(1, len(CLASSES)):
        assert len({h for k, h in pairs if k == c}) >= 2, CLASSES[c]
    for h in range(6):
        assert len({k for k, s in pairs if s == h}) >= 2, h


def test_a_narrow_hue_band_lets_the_colour_name_the_class(tmp_path):
    """At hue_band = 60 each class has a sextant of its own (shading and noise blur the
    edges a little)."""
    data = build(tmp_path, hue_band=60, num_train=32)
    images = data.train.images.permute(0, 2, 3, 1).reshape(-1, 3).float() / 255
    masks = data.train.masks.reshape(-1)
    hue = hue_sextant(images)
    for c in range(1, len(CLASSES)):
        counts = torch.bincount(hue[masks == c], minlength=6)
        assert counts.argmax() == (c - 1) and counts[c - 1] > 0.9 * counts.sum(), CLASSES[c]


def hue_sextant(rgb):
    """Which sixth of the hue circle each RGB colour lies in (0 = around red)."""
    r, g, b = rgb.unbind(-1)
    hue = torch.atan2(np.sqrt(3) * (g - b), 2 * r - g - b)  # angle on the colour hexagon
    return ((hue / (2 * np.pi) * 6 + 0.5).floor() % 6).long()


# --- determinism and the cache -----------------------------------------------------------


def test_same_parameters_give_identical_files_and_tensors(small, tmp_path):
    root, data = small
    again = build(tmp_path)
    assert folder_bytes(shapes.dataset_dir(tmp_path, SMALL)) == folder_bytes(root)
    assert torch.equal(again.train.images, data.train.images) and torch.equal(again.val.masks, data.val.masks)


def test_another_generator_seed_gives_other_data(small, tmp_path):
    _, data = small
    other = build(tmp_path, generator_seed=1)
    assert not torch.equal(other.train.images, data.train.images)
    assert not torch.equal(other.train.masks, data.train.masks)


def test_first_images_do_not_change_when_a_split_grows(small, tmp_path):
    _, data = small
    fewer = build(tmp_path, num_train=5, num_val=3)
    assert torch.equal(fewer.train.masks, data.train.masks[:5])
    assert torch.equal(fewer.val.images, data.val.images[:3])


def test_a_second_build_reads_the_cache_without_generating(tmp_path, monkeypatch):
    first = build(tmp_path)
    root = shapes.dataset_dir(tmp_path, SMALL)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*")}

    def must_not_generate(*args):
        raise AssertionError("generated again although the cache was there")

    monkeypatch.setattr(shapes, "write_coco_dataset", must_not_generate)
    second = build(tmp_path)
    assert torch.equal(second.train.images, first.train.images)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamps


def test_losing_a_generation_race_uses_the_winners_copy(tmp_path, monkeypatch):
    """Another process finishes the same set while we generate: ours is dropped, theirs used."""
    write = shapes.write_coco_dataset
    target = shapes.dataset_dir(tmp_path, SMALL)

    def racing_write(root, params):
        write(target, params)  # the other process, finishing first
        (target / "winner").write_text("")
        write(root, params)

    monkeypatch.setattr(shapes, "write_coco_dataset", racing_write)
    data = build(tmp_path)
    assert (target / "winner").exists()
    assert sorted(os.listdir(target.parent)) == [target.name], "our scratch copy is removed"
    assert len(data.train) == SMALL["num_train"]


def test_a_failed_generation_leaves_no_cache(tmp_path, monkeypatch):
    def crash(root, params):
        (root / "annotations").mkdir()
        raise RuntimeError("disk full")

    monkeypatch.setattr(shapes, "write_coco_dataset", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        build(tmp_path)
    assert os.listdir(tmp_path / "shapes") == []


# --- coco.py on the real COCO sample --------------------------------------------------------


@pytest.fixture(scope="module")
def real():
    return coco.open_coco(REAL)


def real_masks(dataset):
    return {a["id"]: coco.annotation_mask(dataset, a) for a in dataset.loadAnns(dataset.getAnnIds())}


def test_real_annotation_pixel_counts(real):
    counts = {i: int(m.sum()) for i, m in real_masks(real).items()}
    assert counts == {1108446: 2118, 1110067: 4068, 1605237: 176809, 1612051: 301563, 2190839: 53306, 2190842: 59710}


def test_real_semantic_mask_later_annotations_on_top(real):
    """cat -> 1, couch -> 2; bed and remote unmapped (as in the COCO -> VOC mapping), so they
    do not paint. The cats come after the couch in the file, so they cover it."""
    masks = real_masks(real)
    cats, couch = masks[2190839] | masks[2190842], masks[1605237]
    (labels,) = coco.semantic_masks(real, [REAL_IMAGE_ID], {CAT: 1, COUCH: 2}, overlap="last").values()
    assert labels.dtype == np.uint8 and labels.shape == (480, 640)
    assert np.array_equal(labels == 1, cats)
    assert np.array_equal(labels == 2, couch & ~cats)
    assert np.bincount(labels.ravel(), minlength=3).tolist() == [19499, 113016, 174685]


def test_real_semantic_mask_ignores_pixels_claimed_by_two_classes(real):
    masks = real_masks(real)
    cats, couch = masks[2190839] | masks[2190842], masks[1605237]
    (labels,) = coco.semantic_masks(real, [REAL_IMAGE_ID], {CAT: 1, COUCH: 2}, overlap="ignore").values()
    assert np.array_equal(labels == 255, cats & couch)
    assert np.array_equal(labels == 1, cats & ~couch)
    assert np.array_equal(labels == 2, couch & ~cats)
    assert int((labels == 255).sum()) == 2124


def test_real_semantic_mask_keeps_overlaps_of_one_class(real):
    """Cats and couch both mapped to one class: overlaps do not make the class doubtful."""
    masks = real_masks(real)
    animals_and_couch = masks[2190839] | masks[2190842] | masks[1605237]
    (labels,) = coco.semantic_masks(real, [REAL_IMAGE_ID], {CAT: 1, COUCH: 1}, overlap="ignore").values()
    assert np.array_equal(labels == 1, animals_and_couch)
    assert not (labels == 255).any()


def test_real_semantic_mask_follows_file_order(real):
    """Mapping the bed too: it comes after the couch and before the cats in the file."""
    masks = real_masks(real)
    cats, couch, bed = masks[2190839] | masks[2190842], masks[1605237], masks[1612051]
    (labels,) = coco.semantic_masks(real, [REAL_IMAGE_ID], {CAT: 1, COUCH: 2, BED: 3}, overlap="last").values()
    assert np.array_equal(labels == 2, couch & ~bed & ~cats)
    assert np.array_equal(labels == 3, bed & ~cats)


def test_crowd_annotations_are_ignored(tmp_path):
    document = json.loads(REAL.read_text())
    for annotation in document["annotations"]:
        annotation["iscrowd"] = int(annotation["id"] == 2190839)
    path = tmp_path / "crowd.json"
    path.write_text(json.dumps(document))
    dataset = coco.open_coco(path)
    crowd = real_masks(dataset)[2190839]
    (labels,) = coco.semantic_masks(dataset, [REAL_IMAGE_ID], {CAT: 1, COUCH: 2}, overlap="last").values()
    assert np.array_equal(labels == 255, crowd)


def test_bad_overlap_rule_and_mapping_are_refused(real):
    with pytest.raises(SegbenchError, match="overlap"):
        coco.semantic_masks(real, [REAL_IMAGE_ID], {CAT: 1}, overlap="first")
    with pytest.raises(SegbenchError, match="255"):
        coco.semantic_masks(real, [REAL_IMAGE_ID], {CAT: 255})


def test_missing_files_are_named(tmp_path):
    missing = tmp_path / "instances_nowhere.json"
    with pytest.raises(FileNotFoundError, match="instances_nowhere.json"):
        coco.load_coco_split(missing, tmp_path, {CAT: 1})
    with pytest.raises(SegbenchError, match="no-such-folder"):
        coco.load_coco_split(REAL, tmp_path / "no-such-folder", {CAT: 1})
    with pytest.raises(coco.MissingDataError, match="000000039769.png"):  # the image is not copied
        coco.load_coco_split(REAL, tmp_path, {CAT: 1})


def test_load_coco_split_resizes_images_bilinear_and_masks_nearest(small):
    root, data = small
    args = (root / "annotations" / "instances_val.json", root / "images" / "val", {i: i for i in range(1, 7)})
    images, masks = coco.load_coco_split(*args, image_size=40, overlap="last")  # as shapes reads it
    assert images.shape == (SMALL["num_val"], 3, 40, 40) and images.dtype == torch.uint8
    expected = [np.asarray(Image.fromarray(m.numpy()).resize((40, 40), Image.NEAREST)) for m in data.val.masks]
    assert np.array_equal(masks.numpy(), np.stack(expected))
    first = Image.fromarray(data.val.images[0].permute(1, 2, 0).numpy()).resize((40, 40), Image.BILINEAR)
    assert np.array_equal(images[0].permute(1, 2, 0).numpy(), np.asarray(first))


def test_load_coco_split_refuses_mixed_sizes_without_image_size(small, tmp_path):
    root, _ = small
    document = json.loads((root / "annotations" / "instances_val.json").read_text())
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    for info in document["images"]:
        with Image.open(root / "images" / "val" / info["file_name"]) as image:
            if info["id"] == 1:
                image = image.resize((32, 32))
                info["width"] = info["height"] = 32
            image.save(images_dir / info["file_name"])
    document["annotations"] = [a for a in document["annotations"] if a["image_id"] != 1]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(document))
    with pytest.raises(SegbenchError, match="image_size"):
        coco.load_coco_split(path, images_dir, {i: i for i in range(1, 7)})
    images, _ = coco.load_coco_split(path, images_dir, {i: i for i in range(1, 7)}, image_size=32)
    assert images.shape[2:] == (32, 32)


def test_foreground_makes_a_binary_task_of_one_class(tmp_path):
    data = build(tmp_path)
    binary = build(tmp_path, foreground="line")
    assert binary.mode == "binary" and binary.classes == ["background", "line"] and binary.output_channels == 1
    line = CLASSES.index("line")
    assert torch.equal(binary.train.masks, (data.train.masks == line).to(torch.uint8))
    assert torch.equal(binary.val.images, data.val.images)
    with pytest.raises(SegbenchError, match="foreground must be one of disc, rectangle"):
        build(tmp_path, foreground="cat")
