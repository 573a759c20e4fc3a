"""The ``coco`` dataset: subsets of MS COCO instances read as semantic masks.

Layout (``root`` from the parameter or $SEGBENCH_COCO; each path is overridable)::

    ROOT/annotations/instances_{split}2017.json
    ROOT/{split}2017/<file_name>

Categories (``categories``):

- ``"voc20"``: the 20 PASCAL VOC categories in VOC order plus background, the COCO ids
  torchvision's segmentation reference uses (``VOC20_COCO_IDS``); other categories are
  background. Classes are named with VOC names (``sofa`` for COCO ``couch``...).
- ``"person"``: binary mode, background + person (all person instances merged).
- ``"all"``: the 80 COCO categories in id order plus background (the file's own
  categories, in id order, when it is not the standard COCO category set).
- a list of COCO category names or ids, each resolved against the annotation file's own
  categories; class ``i`` is the ``i``-th entry (class 0 is background).

Mask rules (per image): unselected categories do not paint. ``crowd="ignore"`` (default)
marks crowd pixels ``ignore_index``; ``crowd="keep"`` paints them with their class.
``overlap`` decides pixels covered by several annotations:

- ``"ignore"`` (default): a pixel claimed by two different labels becomes ``ignore_index``
  (same-class overlaps keep the class); masks are painted by ``coco.semantic_mask``;
- ``"last"``: annotations are painted in file order, later on top;
- ``"smallest_on_top"``: painted from the largest to the smallest annotation area
  (decoded pixels), so small objects stay visible; ties keep file order;
- ``"torchvision"``: a pixel covered by two or more annotations becomes ``ignore_index``,
  whatever their classes (torchvision's segmentation reference; with ``crowd="keep"``, its
  masks exactly).

Image selection, per split (``train_selection``, ``val_selection``):

- ``"filtered"`` (default): an image is kept when, in its semantic mask at native size,
  some selected class covers at least ``max(min_pixels, 1)`` pixels;
- ``"torchvision"``: torchvision's segmentation reference rule
  (``references/segmentation/coco_utils.py``, ``_coco_remove_images_without_annotations``):
  an image is kept when it has annotations of the selected categories (crowd ones
  included) whose ``area`` fields, as written in the annotation file, sum to more than
  1000. The reference applies it to train only;
- ``"all"``: every image of the file, in id order; an image without any selected
  category is all background. ``val_selection = "all"`` with ``voc20`` is the full
  val2017 set (5,000 images), as the reference evaluates.

``min_pixels`` applies to ``"filtered"`` splits only. With ``max_images > 0``, candidates
are visited in an order drawn from ``selection_seed`` until ``max_images`` are kept,
then sorted by image id, so the subset is deterministic.

``native_val = true`` keeps the val images at their native sizes (an ``ImageList``;
``image_size`` and ``fit`` shape train only). The full val2017 at native size is about
6 GB of uint8 samples in the cache, read back memory-mapped.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from segbench import MapSamples, SegbenchError, SegmentationData, cached_dataset, files_fingerprint, folder_fingerprint, track

from .coco import CROWD_RULES, OVERLAP_RULES, MissingDataError, semantic_mask
from .folder import UnreadableDataError, check_count, check_ignore_index, check_image_size, read_image
from .io import changed_options, check_choice, check_fit, check_flag, resize_pair

ENV_ROOT = "SEGBENCH_COCO"
ON_MISSING = ("error", "skip")
PRESETS = ("voc20", "person", "all")
SELECTIONS = ("filtered", "torchvision", "all")
TORCHVISION_MIN_AREA = 1000  # torchvision keeps an image when the summed area is > 1000
READER_VERSION = 1  # bump when decoding changes, so cached samples are rebuilt

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
# torchvision references/segmentation/coco_utils.py CAT_LIST (0 = background).
VOC20_COCO_IDS = (0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72)
PERSON_ID = 1
COCO_CATEGORIES = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train",
    8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign",
    14: "parking meter", 15: "bench", 16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep",
    21: "cow", 22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe", 27: "backpack",
    28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase", 34: "frisbee", 35: "skis",
    36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat", 40: "baseball glove",
    41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle", 46: "wine glass",
    47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple",
    54: "sandwich", 55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza",
    60: "donut", 61: "cake", 62: "chair", 63: "couch", 64: "potted plant", 65: "bed",
    67: "dining table", 70: "toilet", 72: "tv", 73: "laptop", 74: "mouse", 75: "remote",
    76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven", 80: "toaster", 81: "sink",
    82: "refrigerator", 84: "book", 85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear",
    89: "hair drier", 90: "toothbrush",
}
LAYOUT = (
    "  ROOT/annotations/instances_{split}2017.json\n"
    "  ROOT/{split}2017/<images>"
)


class CategoryError(SegbenchError):
    """A requested category is not in the annotation file."""


class EmptySubsetError(SegbenchError):
    """Filtering left no image; the message says which filter emptied the subset."""


def build_coco(
    cache_dir,
    *,
    root: str | None = None,
    split_train: str = "train",
    split_val: str = "val",
    annotation_file_train: str | None = None,
    annotation_file_val: str | None = None,
    image_dir_train: str | None = None,
    image_dir_val: str | None = None,
    categories: str | list = "voc20",
    image_size: int | None = 256,
    fit: str = "resize",
    max_images: int = 0,
    min_pixels: int = 0,
    crowd: str = "ignore",
    overlap: str = "ignore",
    ignore_index: int = 255,
    selection_seed: int = 0,
    on_missing: str = "error",
    train_selection: str = "filtered",
    val_selection: str = "filtered",
    native_val: bool = False,
) -> SegmentationData:
    """COCO instances as semantic masks: presets voc20/person/all or a category list, from ROOT or $SEGBENCH_COCO.

    ``max_images`` (0 = all) and ``min_pixels`` apply to each split separately.
    ``train_selection`` / ``val_selection``: filtered | torchvision | all (module doc).
    ``native_val`` keeps val at native sizes.
    """
    image_size = check_image_size("coco", image_size)
    _check_params(categories, fit, max_images, min_pixels, crowd, overlap, selection_seed, on_missing)
    _check_new_params(train_selection, val_selection, native_val, min_pixels)
    roles = {
        "train": (split_train, *_split_paths(root, split_train, annotation_file_train, image_dir_train)),
        "val": (split_val, *_split_paths(root, split_val, annotation_file_val, image_dir_val)),
    }
    rules = dict(image_size=image_size, fit=fit, max_images=max_images, min_pixels=min_pixels, crowd=crowd,
                 overlap=overlap, ignore_index=ignore_index, seed=selection_seed, on_missing=on_missing)
    options = dict(train_selection=(train_selection, "filtered"), val_selection=(val_selection, "filtered"),
                   native_val=(native_val, False))
    key = {
        "dataset": "coco", "reader_version": READER_VERSION, "categories": categories, **rules,
        **changed_options(**options),
        # COCO files are immutable by convention: the annotation file's stat and the image
        # folder's listing time stand for the inputs without reading 100k images' stats.
        "inputs": {role: [files_fingerprint([ann]), folder_fingerprint(images)] for role, (_, ann, images) in roles.items()},
    }
    per_role = {
        "train": dict(selection=train_selection, native=False),
        "val": dict(selection=val_selection, native=native_val),
    }
    return cached_dataset(cache_dir, key, lambda: _decode(roles, categories, rules, per_role))


def _decode(roles, categories, rules, per_role) -> SegmentationData:
    splits, classes = {}, None
    for role, (split, annotation_path, image_path) in roles.items():
        dataset = load_annotations(annotation_path)
        split_classes, mapping = resolve_categories(dataset, categories, annotation_path)
        if classes is not None and split_classes != classes:
            raise CategoryError(f"coco: the train and val files name the classes differently: {classes} vs {split_classes}")
        classes = split_classes
        check_ignore_index("coco", rules["ignore_index"], len(classes))
        role_rules = {**rules, "image_size": None if per_role[role]["native"] else rules["image_size"]}
        splits[role] = _load_split(dataset, annotation_path, image_path, mapping, description=f"coco {split}",
                                   role=role, **role_rules, **per_role[role])
    mode = "binary" if categories == "person" else "multiclass"
    return SegmentationData(classes, splits["train"], splits["val"], rules["ignore_index"], mode)


# --- parameters and paths -------------------------------------------------------------------


def _check_params(categories, fit, max_images, min_pixels, crowd, overlap, seed, on_missing):
    check_fit("coco", fit)
    for name, value in (("max_images", max_images), ("min_pixels", min_pixels), ("selection_seed", seed)):
        check_count("coco", name, value)
    for name, value, allowed in (("crowd", crowd, CROWD_RULES), ("overlap", overlap, OVERLAP_RULES),
                                 ("on_missing", on_missing, ON_MISSING)):
        if value not in allowed:
            raise SegbenchError(f"coco: {name} must be one of {', '.join(allowed)}; got {value!r}")
    if isinstance(categories, str):
        if categories not in PRESETS:
            raise CategoryError(
                f"coco: categories = {categories!r} is not a preset ({', '.join(PRESETS)}); "
                "pass a preset or a list of COCO category names or ids"
            )
    elif not isinstance(categories, (list, tuple)) or not categories:
        raise CategoryError(f"coco: categories must be a preset ({', '.join(PRESETS)}) or a non-empty list, got {categories!r}")


def _check_new_params(train_selection, val_selection, native_val, min_pixels):
    check_choice("coco", "train_selection", train_selection, SELECTIONS)
    check_choice("coco", "val_selection", val_selection, SELECTIONS)
    check_flag("coco", "native_val", native_val)
    if min_pixels and "filtered" not in (train_selection, val_selection):
        raise SegbenchError(
            f"coco: min_pixels = {min_pixels} applies to \"filtered\" selection only, and neither split uses it "
            f"(train_selection = {train_selection!r}, val_selection = {val_selection!r}); "
            "leave min_pixels at 0 or set a selection to \"filtered\""
        )


def _split_paths(root, split, annotation_file, image_dir):
    base = None
    if annotation_file is None or image_dir is None:
        base = find_root(root)
    annotation_path = Path(annotation_file) if annotation_file else base / "annotations" / f"instances_{split}2017.json"
    image_path = Path(image_dir) if image_dir else base / f"{split}2017"
    if not annotation_path.is_file():
        raise MissingDataError(
            f"coco: annotation file not found: {annotation_path}; expected\n"
            f"{LAYOUT.format(split=split)}\n(or set annotation_file_train / annotation_file_val)"
        )
    if not image_path.is_dir():
        raise MissingDataError(
            f"coco: image folder not found: {image_path}; expected\n"
            f"{LAYOUT.format(split=split)}\n(or set image_dir_train / image_dir_val)"
        )
    return annotation_path, image_path


def find_root(root) -> Path:
    given = root if root is not None else os.environ.get(ENV_ROOT)
    layout = LAYOUT.format(split="{train,val}")
    if not given:
        raise MissingDataError(
            f"coco: no dataset root: pass root = \"/path/to/coco\" or set the environment variable "
            f"{ENV_ROOT}; the folder must hold\n{layout}"
        )
    base = Path(given).expanduser()
    if not base.is_dir():
        source = "root" if root is not None else f"${ENV_ROOT}"
        raise MissingDataError(
            f"coco: {source} = {base} is not a folder; expected\n{layout}\n(pass root or set {ENV_ROOT})"
        )
    return base


# --- annotations and categories ------------------------------------------------------------


def load_annotations(path: Path) -> COCO:
    """A pycocotools COCO index of ``path``, after checking the JSON and its top-level keys."""
    try:
        document = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise SegbenchError(
            f"coco: {path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise UnreadableDataError(f"coco: cannot read {path}: {error}") from None
    if not isinstance(document, dict):
        raise SegbenchError(f"coco: {path} is not a COCO instances file: the top level is not an object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(document.get(key), list):
            raise SegbenchError(
                f"coco: {path} is not a COCO instances file: key {key!r} "
                f"{'is missing' if key not in document else 'is not a list'} "
                "(needs images, annotations and categories lists)"
            )
    dataset = COCO()
    dataset.dataset = document
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            dataset.createIndex()
    except (KeyError, TypeError) as error:
        raise SegbenchError(f"coco: {path} is not a COCO instances file ({type(error).__name__}: {error})") from None
    return dataset


def resolve_categories(dataset: COCO, categories, path) -> tuple[list, dict]:
    """Class names (background first) and the COCO category id -> class index mapping."""
    if categories == "voc20":
        return list(VOC_CLASSES), {cat: i for i, cat in enumerate(VOC20_COCO_IDS) if i}
    if categories == "person":
        return ["background", "person"], {PERSON_ID: 1}
    names = {c["id"]: c["name"] for c in dataset.dataset["categories"]}
    if categories == "all":
        table = COCO_CATEGORIES if all(COCO_CATEGORIES.get(i) == n for i, n in names.items()) else names
        ids = sorted(table)
        return ["background"] + [table[i] for i in ids], {cat: i + 1 for i, cat in enumerate(ids)}
    by_name = {name: cat for cat, name in names.items()}
    classes, mapping = ["background"], {}
    for entry in categories:
        if isinstance(entry, int) and not isinstance(entry, bool):
            if entry not in names:
                raise CategoryError(
                    f"coco: category id {entry} is not in {path}; its ids are "
                    f"{', '.join(f'{i} ({n})' for i, n in sorted(names.items()))}"
                )
            cat = entry
        elif isinstance(entry, str):
            if entry not in by_name:
                close = difflib.get_close_matches(entry, list(by_name), n=3)
                hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
                raise CategoryError(
                    f"coco: unknown category {entry!r} in {path}; {hint}its categories are "
                    f"{', '.join(sorted(by_name))}"
                )
            cat = by_name[entry]
        else:
            raise CategoryError(f"coco: a category must be a COCO name or id, got {entry!r}")
        if cat in mapping:
            raise CategoryError(f"coco: category {names[cat]!r} (id {cat}) is listed twice")
        mapping[cat] = len(classes)
        classes.append(names[cat])
    return classes, mapping


def _load_split(dataset, annotation_path, image_dir, mapping, *, image_size, fit, max_images, min_pixels,
                crowd, overlap, ignore_index, seed, on_missing, description, role, selection, native):
    """The split's images as map-style samples: the selected ids, sorted, each read with its
    semantic mask when a run asks for it."""
    if not dataset.imgs:
        raise EmptySubsetError(f"coco: {annotation_path} lists no images")
    candidates = _candidates(dataset, annotation_path, mapping, selection, role)
    order = candidates
    if max_images:
        order = [candidates[i] for i in np.random.default_rng(seed).permutation(len(candidates))]
    threshold = max(min_pixels, 1) if selection == "filtered" else 0
    kept, missing, too_small = [], [], 0
    for image_id in track(order, len(order), description):
        if max_images and len(kept) >= max_images:
            break
        if threshold:
            mask = semantic_mask(dataset, image_id, mapping, crowd=crowd, overlap=overlap, ignore_index=ignore_index)
            if not _covers(mask, threshold, ignore_index):
                too_small += 1
                continue
        path = image_dir / dataset.imgs[image_id]["file_name"]
        if not path.is_file():
            if on_missing == "error":
                raise MissingDataError(f"coco: image not found: {path} (image id {image_id} of {annotation_path}); "
                                       "set on_missing = \"skip\" to leave such images out")
            missing.append(path)
            continue
        kept.append(image_id)
    if missing:
        warnings.warn(f"coco: skipped {len(missing)} missing image(s) in {image_dir}, e.g. {missing[0]}")
    if not kept:
        if missing:
            reason = f"all {len(missing)} remaining images are missing (on_missing = \"skip\")"
        else:
            reason = f"min_pixels = {min_pixels}: none of the {too_small} images with the selected categories has a selected class covering that many pixels"
        raise EmptySubsetError(f"coco: no image of {annotation_path} is left: {reason}")
    return CocoImages(dataset, sorted(kept), image_dir, annotation_path, mapping, crowd=crowd, overlap=overlap,
                      ignore_index=ignore_index, image_size=image_size, fit=fit, native=native)


class CocoImages(MapSamples):
    """COCO images with their semantic masks, painted when read. Each image keeps only its own
    annotations of the selected categories, as compact JSON: what loader workers are sent."""

    def __init__(self, dataset: COCO, image_ids, image_dir, annotation_path, mapping, *, crowd, overlap, ignore_index,
                 image_size, fit, native):
        self.infos = [dataset.imgs[image_id] for image_id in image_ids]
        self.annotations = [
            json.dumps([a for a in dataset.imgToAnns.get(image_id, []) if a.get("category_id") in mapping]).encode()
            for image_id in image_ids
        ]
        self.image_dir, self.annotation_path, self.mapping = Path(image_dir), str(annotation_path), dict(mapping)
        self.rules = dict(crowd=crowd, overlap=overlap, ignore_index=ignore_index)
        self.image_size, self.fit, self.native = image_size, fit, native
        self.size = (image_size, image_size) if image_size else None  # resize_pair makes every sample that square

    def __len__(self):
        return len(self.infos)

    def read(self, index):
        info = self.infos[index]
        mask = semantic_mask(one_image(info, json.loads(self.annotations[index])), info["id"], self.mapping, **self.rules)
        path = self.image_dir / info["file_name"]
        image = read_image(path)
        if image.size != (info["width"], info["height"]):
            raise SegbenchError(f"coco: {path} is {image.size[0]}x{image.size[1]} but {self.annotation_path} says "
                                f"{info['width']}x{info['height']}")
        return resize_pair(image, mask, self.image_size, path, self.fit)

    def describe(self, index):
        return str(self.image_dir / self.infos[index]["file_name"])


def one_image(info: dict, annotations: list) -> COCO:
    """A pycocotools index of one image and its annotations (what the painter needs)."""
    dataset = COCO()
    dataset.dataset = {"images": [info], "annotations": annotations, "categories": []}
    with contextlib.redirect_stdout(io.StringIO()):
        dataset.createIndex()
    return dataset


def _covers(mask, threshold, ignore_index) -> bool:
    """Whether some class of ``mask`` (not background, not ignored) covers ``threshold`` pixels."""
    counts = np.bincount(mask.ravel(), minlength=256)
    return any(counts[c] >= threshold for c in range(1, len(counts)) if c != ignore_index)


def _candidates(dataset, annotation_path, mapping, selection, role) -> list:
    """The sorted image ids a split may keep under its ``selection`` (see the module doc)."""
    if selection == "all":
        return sorted(dataset.imgs)
    if selection == "torchvision":
        return torchvision_selection(dataset, annotation_path, set(mapping), role)
    selected_ids = {cat for cat in mapping if cat in dataset.cats}
    candidates = sorted({
        a["image_id"] for a in dataset.dataset["annotations"]
        if a.get("category_id") in selected_ids and a.get("image_id") in dataset.imgs
    })
    if not candidates:
        raise EmptySubsetError(
            f"coco: no image in {annotation_path} has an annotation of the selected categories "
            f"(category filter: {len(dataset.imgs)} images, 0 with "
            f"{', '.join(sorted(dataset.cats[c]['name'] for c in selected_ids)) or 'none of them in the file'})"
        )
    return candidates


def torchvision_selection(dataset, annotation_path, category_ids: set, role: str = "train") -> list:
    """Sorted ids of the images torchvision's segmentation reference keeps: those whose
    annotations of ``category_ids`` (crowd included) have ``area`` fields summing to more
    than 1000 (``_coco_remove_images_without_annotations``)."""
    areas = {}
    for annotation in dataset.dataset["annotations"]:
        if annotation.get("category_id") not in category_ids or annotation.get("image_id") not in dataset.imgs:
            continue
        area = annotation.get("area")
        if isinstance(area, bool) or not isinstance(area, (int, float)):
            raise SegbenchError(
                f"coco: annotation {annotation.get('id')!r} in {annotation_path} has area {area!r}; "
                f"{role}_selection = \"torchvision\" sums the annotations' area fields, so each needs a number"
            )
        areas[annotation["image_id"]] = areas.get(annotation["image_id"], 0) + area
    kept = sorted(image_id for image_id, total in areas.items() if total > TORCHVISION_MIN_AREA)
    if not kept:
        raise EmptySubsetError(
            f"coco: no image in {annotation_path} is left by {role}_selection = \"torchvision\": none has "
            f"annotations of the selected categories with areas summing to more than {TORCHVISION_MIN_AREA}"
        )
    return kept
