"""Write any loaded dataset to disk in COCO or PASCAL VOC2012 layout.

:func:`export_dataset` takes the :class:`SegmentationData` a dataset factory returned and
writes both splits so that the standard ``coco`` or ``voc`` reader reads them back; it
returns the ``[dataset]`` table a suite needs for that. The core names no dataset: the
formats are the public COCO and VOC layouts, not the readers' code.

COCO layout (``fmt="coco"``)::

    annotations/instances_train2017.json
    annotations/instances_val2017.json
    train2017/000000.png ...        lossless PNG, so images round-trip exactly
    val2017/000000.png ...
    README.txt

Image ids are 1-based positions in the split, so the reader (which sorts by id) keeps the
order. Each (image, class present in its mask) pair is one annotation whose
``segmentation`` is a compressed RLE (``counts`` as a str). Classes never overlap in a
semantic mask, so any ``overlap`` rule reads the same labels back. Pixels equal to
``ignore_index`` become one extra annotation per image with ``iscrowd: 1`` and the
category of class 1: the reader's default ``crowd = "ignore"`` turns crowd pixels back
into ``ignore_index``. Category ``i`` is ``classes[i]`` (``i >= 1``). The coco reader only
keeps images that show some class, so an image that is all background (or ignore) is
written but not read back; the export warns about such images.

VOC layout (``fmt="voc"``)::

    JPEGImages/train_000000.jpg ...            JPEG quality 95: near, not bit-identical
    SegmentationClass/train_000000.png ...     palette PNG, palette index = class index
    ImageSets/Segmentation/train.txt, val.txt  one id per line
    classes.txt                                one class name per line
    README.txt

Ids carry their split (``train_``/``val_``) so they are unique across splits. Mask values
are stored exactly under the standard VOC colour map; ignore pixels are stored as 255
(VOC's boundary value, which the voc reader ignores) whatever the dataset's
``ignore_index``, so a VOC export holds at most 255 classes.

Both exports are written into a temporary folder beside ``out_dir`` and renamed into place
at the end, so ``out_dir`` is either absent (or left empty) or complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from ..errors import SegbenchError
from .samples import SegmentationData

FORMATS = ("coco", "voc")
SPLITS = ("train", "val")
VOC_IGNORE = 255
READER_DEFAULT_IGNORE = 255
JPEG_QUALITY = 95
IMAGE_SIZE_RANGE = (8, 4096)  # what the readers accept for image_size


def export_dataset(data: SegmentationData, out_dir, fmt: str) -> str:
    """Write ``data`` (both splits) to ``out_dir`` in ``fmt`` ("coco" or "voc") layout.

    ``out_dir`` must not exist or be an empty folder. Returns the TOML lines of a suite's
    ``[dataset]`` table that read the export back.
    """
    if fmt not in FORMATS:
        raise SegbenchError(f"export: unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    target = Path(out_dir).expanduser().resolve()
    _check_target_is_empty(target)
    _check_classes(data.classes)
    if fmt == "voc" and data.num_classes > VOC_IGNORE:
        raise SegbenchError(
            f"export: voc masks hold class indices 0..254 (255 marks ignored pixels); "
            f"this dataset has {data.num_classes} classes"
        )
    for split in SPLITS:
        if len(getattr(data, split)) == 0:
            raise SegbenchError(f"export: the {split} split is empty; both readers need train and val images")
    snippet = (coco_snippet if fmt == "coco" else voc_snippet)(data, target)
    with _staged(target) as scratch:
        if fmt == "coco":
            write_coco(data, scratch)
        else:
            write_voc(data, scratch)
        (scratch / "README.txt").write_text(readme(data, fmt, snippet))
    return snippet


# --- checks and staging --------------------------------------------------------------------


def _check_target_is_empty(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise SegbenchError(
            f"export: {target} is not empty; the output folder must be empty or not exist yet"
        )


def _check_classes(classes) -> None:
    # The readers look classes up by name, so names must be distinct and non-empty.
    if (
        not isinstance(classes, (list, tuple))
        or len(classes) < 2
        or not all(isinstance(name, str) and name for name in classes)
        or len(set(classes)) != len(classes)
    ):
        raise SegbenchError(f"export: classes must be at least 2 unique non-empty names, got {classes!r}")


def split_samples(data: SegmentationData, split: str):
    """(H, W, 3) uint8 image and (H, W) int64 mask arrays of one split, checked one by one
    (streamed, so a large dataset is never copied whole)."""
    pairs = getattr(data, split)
    for index in range(len(pairs)):
        image, mask = pairs.raw(index)
        image = image.detach().cpu().permute(1, 2, 0).numpy()
        mask = mask.detach().cpu().numpy().astype(np.int64)
        bad = [int(v) for v in np.unique(mask) if not (0 <= v < data.num_classes or v == data.ignore_index)]
        if bad:
            raise SegbenchError(
                f"export: {split} sample {index} has mask values {bad[:10]} that are neither a class "
                f"index (0..{data.num_classes - 1}) nor ignore_index {data.ignore_index}"
            )
        yield np.ascontiguousarray(image, dtype=np.uint8), mask


@contextlib.contextmanager
def _staged(target: Path):
    """A scratch folder beside ``target``, renamed to ``target`` if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-export-", dir=target.parent))
    try:
        yield scratch
        os.chmod(scratch, 0o755)  # mkdtemp makes it private; an export is ordinary files
        if target.is_dir():
            try:
                target.rmdir()  # checked empty up front; fails if something appeared since
            except OSError:
                raise SegbenchError(f"export: {target} is no longer empty; the output folder must be empty") from None
        os.rename(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- COCO ------------------------------------------------------------------------------


def write_coco(data: SegmentationData, root: Path) -> None:
    (root / "annotations").mkdir()
    no_class = 0
    for split in SPLITS:
        image_dir = root / f"{split}2017"
        image_dir.mkdir()
        images, annotations = [], []
        for position, (image, mask) in enumerate(split_samples(data, split)):
            Image.fromarray(image).save(image_dir / _coco_file_name(position))
            image_id = position + 1  # 1-based, in split order: the reader sorts by id
            images.append({"id": image_id, "file_name": _coco_file_name(position),
                           "width": mask.shape[1], "height": mask.shape[0]})
            annotations += image_annotations(data, mask, image_id, first_id=len(annotations) + 1)
        document = coco_document(data, images, annotations)
        no_class += _images_without_classes(document)
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(document, separators=(",", ":")))
    if no_class:
        warnings.warn(
            f"export: {no_class} image(s) show no class (only background or ignored pixels); "
            "they are written, but the coco reader keeps only images that show a class"
        )


def _coco_file_name(index: int) -> str:
    return f"{index:06d}.png"


def _images_without_classes(document: dict) -> int:
    shown = {a["image_id"] for a in document["annotations"] if not a["iscrowd"]}
    return len(document["images"]) - len(shown)


def image_annotations(data: SegmentationData, mask: np.ndarray, image_id: int, first_id: int) -> list:
    """One RLE annotation per class shown in ``mask``, then one crowd for its ignored pixels."""
    present = [int(c) for c in np.unique(mask) if 0 < c < data.num_classes]
    regions = [(mask == class_index, class_index, 0) for class_index in present]
    ignored = mask == data.ignore_index
    if ignored.any():
        regions.append((ignored, 1, 1))  # crowd of class 1: the reader reads it back as ignore_index
    return [
        {"id": first_id + n, "image_id": image_id, "category_id": class_index, **_rle_fields(covered), "iscrowd": crowd}
        for n, (covered, class_index, crowd) in enumerate(regions)
    ]


def coco_document(data: SegmentationData, images: list, annotations: list) -> dict:
    """The COCO instances document of one split."""
    categories = [{"id": i, "name": name, "supercategory": "segbench"} for i, name in enumerate(data.classes) if i]
    info = {"description": f"segbench export ({data.mode} mode)", "mode": data.mode, "classes": list(data.classes)}
    return {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": categories}


def _rle_fields(covered: np.ndarray) -> dict:
    rle = coco_mask.encode(np.asfortranarray(covered.astype(np.uint8)))
    return {
        "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
        "area": float(coco_mask.area(rle)),
        "bbox": [float(v) for v in coco_mask.toBbox(rle)],
    }


# --- VOC -------------------------------------------------------------------------------


def write_voc(data: SegmentationData, root: Path) -> None:
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    palette = voc_palette()
    for split in SPLITS:
        ids = []
        for index, (image, mask) in enumerate(split_samples(data, split)):
            image_id = f"{split}_{index:06d}"
            # 4:4:4 chroma: thin coloured strokes keep their colour.
            Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=JPEG_QUALITY, subsampling=0)
            indices = np.where(mask == data.ignore_index, VOC_IGNORE, mask).astype(np.uint8)
            palette_png(indices, palette, root / "SegmentationClass" / f"{image_id}.png")
            ids.append(image_id)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (root / "classes.txt").write_text("\n".join(data.classes) + "\n")


def palette_png(indices: np.ndarray, palette: list, path: Path) -> None:
    """Save (H, W) uint8 ``indices`` as a palette PNG whose pixel values are the indices."""
    height, width = indices.shape
    # frombytes keeps the bytes as palette indices (a conversion from "L" would remap them).
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(indices).tobytes())
    image.putpalette(palette)
    image.save(path)


def voc_palette() -> list:
    """The standard VOC colour map as a flat list of 768 values (index 255 = (224, 224, 192))."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        code = index
        for bit in range(8):
            red |= ((code >> 0) & 1) << (7 - bit)
            green |= ((code >> 1) & 1) << (7 - bit)
            blue |= ((code >> 2) & 1) << (7 - bit)
            code >>= 3
        palette += [red, green, blue]
    return palette


# --- the suite snippet and README ------------------------------------------------------------


def coco_snippet(data: SegmentationData, root: Path) -> str:
    lines = ['name = "coco"', f"root = {_toml(str(root))}", f"categories = {_toml(list(data.classes[1:]))}"]
    lines += _size_lines(data)
    if data.ignore_index != READER_DEFAULT_IGNORE and data.num_classes <= data.ignore_index <= 255:
        lines.append(f"ignore_index = {data.ignore_index}")
    return "\n".join(lines + _mode_note(data, "coco")) + "\n"


def voc_snippet(data: SegmentationData, root: Path) -> str:
    lines = ['name = "voc"', f"root = {_toml(str(root))}", f"classes = {_toml(list(data.classes))}"]
    return "\n".join(lines + _size_lines(data) + _mode_note(data, "voc")) + "\n"


def _size_lines(data: SegmentationData) -> list:
    """``image_size`` when every sample is one square size (reading it back then resizes
    nothing); otherwise a comment, since a suite cannot unset the readers' default (256)."""
    sizes = sorted({tuple(size) for split in SPLITS for size in getattr(data, split).sizes()})
    low, high = IMAGE_SIZE_RANGE
    if len(sizes) == 1 and sizes[0][0] == sizes[0][1] and low <= sizes[0][0] <= high:
        return [f"image_size = {sizes[0][0]}"]
    shown = ", ".join(f"{h}x{w}" for h, w in sizes[:3]) + (" ..." if len(sizes) > 3 else "")
    return [f"# images are not one square size ({shown}); image_size (default 256) sets the training size"]


def _mode_note(data: SegmentationData, reader: str) -> list:
    if data.mode == "binary":
        return [f"# exported from a binary-mode dataset; the {reader} reader reads it as multiclass with 2 classes"]
    return []


def _toml(value) -> str:
    # JSON strings and string arrays are valid TOML basic strings and arrays.
    return json.dumps(value, ensure_ascii=False)


def readme(data: SegmentationData, fmt: str, snippet: str) -> str:
    counts = ", ".join(f"{len(getattr(data, split))} {split}" for split in SPLITS)
    classes = "\n".join(f"  {index}: {name}" for index, name in enumerate(data.classes))
    layout = {
        "coco": (
            "COCO instances layout: annotations/instances_{train,val}2017.json and images in\n"
            "{train,val}2017/ as lossless PNG. One RLE annotation per class shown in an image;\n"
            f"ignored pixels (ignore_index {data.ignore_index}) are one crowd annotation (iscrowd 1,\n"
            "category of class 1) per image, which the coco reader reads back as ignored."
        ),
        "voc": (
            "PASCAL VOC2012 layout: JPEGImages/<id>.jpg (JPEG quality 95), SegmentationClass/<id>.png\n"
            "(palette PNG, palette index = class index, VOC colour map), ImageSets/Segmentation/\n"
            f"{{train,val}}.txt and classes.txt. Ignored pixels (ignore_index {data.ignore_index}) are 255."
        ),
    }[fmt]
    return (
        f"segbench export of a {data.mode} segmentation dataset: {counts} images, "
        f"{data.num_classes} classes.\n\n{layout}\n\nClasses (index: name):\n{classes}\n\n"
        f"Read it back with this [dataset] table in a suite:\n\n[dataset]\n{snippet}"
    )
