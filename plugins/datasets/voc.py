"""The ``voc`` dataset: PASCAL VOC2012 semantic segmentation in its standard layout.

Layout (``root`` is the ``VOC2012`` folder; ``root/VOCdevkit/VOC2012`` and
``root/VOC2012`` are found too)::

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png          palette PNGs: palette index = class index
    ImageSets/Segmentation/train.txt    one id per line
    ImageSets/Segmentation/val.txt

Masks are read as palette indices (PIL mode "P"), never as colours. 0 is background,
1..20 the VOC classes and 255 the boundary band, which stays ``ignore_index`` (255) and
is not scored. Any other value is an error naming the file.

``classes`` (default: the 21 VOC classes) names the classes of a dataset in this layout
that is not VOC itself, e.g. a ``segbench`` export (which also writes them to
``classes.txt``): mask values must then be ``0..len(classes) - 1`` or 255, so at most
255 classes.
"""

from __future__ import annotations

import os
from pathlib import Path

from segbench.data import SegmentationData
from segbench.data.cache import cached_dataset, files_fingerprint, track
from segbench.errors import SegbenchError

from .coco import MissingDataError
from .folder import (
    check_count,
    check_image_size,
    check_mask_values,
    draw,
    read_image,
    read_index_mask,
    stack_pairs,
)
from .io import check_fit, resize_pair

ENV_ROOT = "SEGBENCH_VOC"
CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
IGNORE_INDEX = 255
READER_VERSION = 1  # bump when decoding changes, so cached samples are rebuilt
SPLITS = ("train", "val")
LAYOUT = (
    "  ROOT/JPEGImages/<id>.jpg\n"
    "  ROOT/SegmentationClass/<id>.png\n"
    "  ROOT/ImageSets/Segmentation/train.txt and val.txt"
)


def build_voc(
    cache_dir,
    *,
    root: str | None = None,
    image_size: int | None = 256,
    fit: str = "resize",
    max_images: int = 0,
    selection_seed: int = 0,
    classes: list | None = None,
) -> SegmentationData:
    """PASCAL VOC2012 segmentation (21 classes, boundary 255 ignored) from ``root`` or $SEGBENCH_VOC.

    ``max_images`` (0 = all) caps each split, drawn deterministically from ``selection_seed``.
    ``classes`` (background first) replaces the VOC class names for other data in this layout.
    """
    classes = _checked_classes(classes)
    check_image_size("voc", image_size)
    check_fit("voc", fit)
    check_count("voc", "max_images", max_images)
    check_count("voc", "selection_seed", selection_seed)
    base = find_root(root)
    chosen = {split: draw(_listed_ids(base, split), max_images, selection_seed) for split in SPLITS}
    files = [path for split in SPLITS for image_id in chosen[split] for path in _sample_paths(base, image_id)]
    key = {
        "dataset": "voc", "reader_version": READER_VERSION, "classes": classes, "image_size": image_size,
        "fit": fit, "chosen": chosen, "inputs": files_fingerprint(files),
    }

    def decode():
        splits = {split: _load_split(base, split, chosen[split], image_size, fit, classes) for split in SPLITS}
        return SegmentationData(classes, splits["train"], splits["val"], IGNORE_INDEX, "multiclass")

    return cached_dataset(cache_dir, key, decode)


def _checked_classes(classes) -> list:
    """The class names: the VOC ones by default, else a checked list (background first)."""
    if classes is None:
        return list(CLASSES)
    if (
        not isinstance(classes, (list, tuple))
        or not 2 <= len(classes) <= IGNORE_INDEX
        or not all(isinstance(name, str) and name for name in classes)
    ):
        raise SegbenchError(
            f"voc: classes must be a list of 2..{IGNORE_INDEX} class names, background first "
            f"(255 marks ignored pixels), got {classes!r}"
        )
    if len(set(classes)) != len(classes):
        raise SegbenchError(f"voc: classes must be unique, got {list(classes)}")
    return list(classes)


def find_root(root) -> Path:
    """The VOC2012 folder from ``root`` or $SEGBENCH_VOC, with a helpful error if absent."""
    given = root if root is not None else os.environ.get(ENV_ROOT)
    if not given:
        raise MissingDataError(
            f"voc: no dataset root: pass root = \"/path/to/VOC2012\" or set the environment "
            f"variable {ENV_ROOT}; the folder must hold\n{LAYOUT}"
        )
    base = Path(given).expanduser()
    for candidate in (base, base / "VOC2012", base / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir() and (candidate / "SegmentationClass").is_dir():
            return candidate
    source = "root" if root is not None else f"${ENV_ROOT}"
    raise MissingDataError(
        f"voc: {source} = {base} is not a VOC2012 folder (no JPEGImages/ and SegmentationClass/ "
        f"there); expected\n{LAYOUT}\n(pass root or set {ENV_ROOT})"
    )


def _listed_ids(base: Path, split: str) -> list:
    listing = base / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise MissingDataError(f"voc: split list not found: {listing}; expected\n{LAYOUT}")
    ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    if not ids:
        raise SegbenchError(f"voc: {listing} lists no images")
    return ids


def _sample_paths(base: Path, image_id: str):
    return base / "JPEGImages" / f"{image_id}.jpg", base / "SegmentationClass" / f"{image_id}.png"


def _load_split(base: Path, split: str, image_ids: list, image_size, fit, classes):
    pairs = []
    for image_id in track(image_ids, len(image_ids), f"voc {split}"):
        image_path, mask_path = _sample_paths(base, image_id)
        image = read_image(image_path)
        mask = check_mask_values(read_index_mask(mask_path), mask_path, len(classes), IGNORE_INDEX, classes)
        pairs.append(resize_pair(image, mask, image_size, image_path, fit))
    return stack_pairs(pairs, f"voc {split} ({base / 'ImageSets' / 'Segmentation' / f'{split}.txt'})")
