"""COCO instance annotations read as semantic masks, through pycocotools.

Shared by every COCO-format source (the synthetic ``shapes`` set writes standard COCO
files and reads them back here, exactly as a real COCO download would be read).

Semantic mask rules, for each image (:func:`semantic_mask`, the one painter of every
COCO-format source):

- class 0 is background; a category absent from ``category_to_class`` (or mapped to 0) is
  dropped entirely: its pixels stay whatever the other annotations make them.
- annotations are applied in the order of the annotation file;
- ``overlap="ignore"`` (the default): a pixel covered by annotations of two or more
  different classes becomes ``ignore_index``. (torchvision's segmentation reference
  ignores any pixel covered by two annotations, even of the same class; here same-class
  overlaps keep the class, since the semantic label is not in doubt.)
- ``overlap="last"``: a later annotation is painted over earlier ones (painter's order);
- ``overlap="smallest_on_top"``: painted from the largest to the smallest annotation
  (decoded pixels), so small objects stay visible; ties keep file order.
- ``overlap="torchvision"``: a pixel covered by two or more annotations becomes
  ``ignore_index``, whatever their classes, as torchvision's segmentation reference
  (``ConvertCocoPolysToMask``: ``target[masks.sum(0) > 1] = 255``) does.
- ``crowd="ignore"`` (the default): a crowd annotation (``iscrowd: 1``) of a kept category
  marks its pixels ``ignore_index``; ``crowd="keep"`` paints them with their class.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools.coco import COCO

from segbench import SegbenchError

from .io import resize_pair

OVERLAP_RULES = ("ignore", "last", "smallest_on_top", "torchvision")
CROWD_RULES = ("ignore", "keep")


class MissingDataError(SegbenchError, FileNotFoundError):
    """A dataset file or folder is missing; the message names the path."""


def open_coco(annotation_file) -> COCO:
    """Load a COCO instances file quietly (pycocotools prints progress otherwise)."""
    path = Path(annotation_file)
    if not path.is_file():
        raise MissingDataError(f"COCO annotation file not found: {path}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise SegbenchError(f"{path}: not a COCO instances file ({type(error).__name__}: {error})") from None


def annotation_mask(coco: COCO, annotation: dict) -> np.ndarray:
    """The (H, W) bool mask of one annotation: polygons, RLE or crowd RLE alike."""
    return coco.annToMask(annotation).astype(bool)


def semantic_masks(
    coco: COCO,
    image_ids,
    category_to_class: dict[int, int],
    ignore_index: int = 255,
    overlap: str = "ignore",
    crowd: str = "ignore",
) -> dict[int, np.ndarray]:
    """One uint8 (H, W) class-index mask per image id, under the rules in the module doc."""
    _check_mapping(category_to_class, ignore_index)
    for name, value, allowed in (("overlap", overlap, OVERLAP_RULES), ("crowd", crowd, CROWD_RULES)):
        if value not in allowed:
            raise SegbenchError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return {
        image_id: semantic_mask(coco, image_id, category_to_class, crowd=crowd, overlap=overlap, ignore_index=ignore_index)
        for image_id in image_ids
    }


def semantic_mask(coco: COCO, image_id, category_to_class: dict, *, crowd="ignore", overlap="ignore", ignore_index=255):
    """The uint8 (H, W) semantic mask of one image under the rules in the module doc
    (arguments unchecked: :func:`semantic_masks` checks them)."""
    info = coco.imgs[image_id]
    labels = np.zeros((info["height"], info["width"]), dtype=np.uint8)
    contested = np.zeros(labels.shape, dtype=bool)
    painted = []
    # getAnnIds keeps the annotation file's order, which is the painting order.
    for annotation in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
        class_index = category_to_class.get(annotation["category_id"], 0)
        if class_index == 0:
            continue
        covered = annotation_mask(coco, annotation)
        value = ignore_index if annotation.get("iscrowd", 0) and crowd == "ignore" else class_index
        painted.append((covered, value))
    if overlap == "smallest_on_top":
        painted.sort(key=lambda pair: -int(pair[0].sum()))  # stable: ties keep file order
    seen = np.zeros(labels.shape, dtype=bool)
    for covered, value in painted:
        if overlap == "ignore":
            contested |= covered & (labels != 0) & (labels != value)
        elif overlap == "torchvision":
            contested |= covered & seen
        seen |= covered
        labels[covered] = value
    labels[contested] = ignore_index
    return labels


def _check_mapping(category_to_class, ignore_index):
    for category, class_index in category_to_class.items():
        if not (isinstance(class_index, (int, np.integer)) and 0 <= class_index < 255 and class_index != ignore_index):
            raise SegbenchError(
                f"category {category} maps to class {class_index!r}: class indices must be "
                f"integers in 0..254 other than ignore_index ({ignore_index})"
            )


def load_coco_split(
    annotation_file,
    image_dir,
    category_to_class: dict[int, int],
    image_size: int | None = None,
    *,
    ignore_index: int = 255,
    overlap: str = "ignore",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of a COCO instances file with its semantic mask, in image-id order.

    Returns uint8 images (N, 3, H, W) and uint8 masks (N, H, W). With ``image_size`` set,
    images are resized to ``image_size`` x ``image_size`` bilinearly and masks by nearest
    neighbour (aspect ratio is not kept); without it, all images must share one size.
    """
    coco = open_coco(annotation_file)
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise MissingDataError(f"COCO image folder not found: {image_dir}")
    image_ids = sorted(coco.getImgIds())
    if not image_ids:
        raise SegbenchError(f"{annotation_file}: no images listed")
    masks = semantic_masks(coco, image_ids, category_to_class, ignore_index, overlap)
    pairs = [_read_pair(coco.imgs[i], image_dir, masks[i], image_size) for i in image_ids]
    _check_same_size(pairs, annotation_file)
    images = torch.from_numpy(np.stack([image for image, _ in pairs])).permute(0, 3, 1, 2).contiguous()
    return images, torch.from_numpy(np.stack([mask for _, mask in pairs]))


def _read_pair(info, image_dir, mask, image_size):
    path = image_dir / info["file_name"]
    if not path.is_file():
        raise MissingDataError(f"COCO image not found: {path} (image id {info['id']})")
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    if image.size != (info["width"], info["height"]):
        raise SegbenchError(
            f"{path} is {image.size[0]}x{image.size[1]} but its annotations say "
            f"{info['width']}x{info['height']}"
        )
    return resize_pair(image, mask, image_size, path)


def _check_same_size(pairs, annotation_file):
    sizes = {image.shape[:2] for image, _ in pairs}
    if len(sizes) > 1:
        raise SegbenchError(
            f"{annotation_file}: images have different sizes {sorted(sizes)}; pass image_size to resize them"
        )
