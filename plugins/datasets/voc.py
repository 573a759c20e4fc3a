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

``max_images`` (default 0) caps each split; 0 keeps every id the split list names: the
full VOC2012 sets are 1,464 train, 10,582 trainaug and all 1,449 val ids (the standard
val set). A cap draws ids deterministically from ``selection_seed``.

``native_val = true`` keeps the val images at their native sizes (about 500x375; an
``ImageList``), while ``image_size`` and ``fit`` shape the train split only.

``train_set = "trainaug"`` trains on the SBD-augmented set (Hariharan et al. 2011) that
most VOC results use: (SBD train + SBD val + VOC train) minus VOC val, the standard
10,582 ids (mmsegmentation ``tools/dataset_converters/voc_aug.py``). A VOC train id keeps
its VOC mask (with its 255 boundary band); every other id reads SBD's
``cls/<id>.mat`` (``GTcls.Segmentation``: uint8 class indices 0..20, no boundary band).
Images come from ``JPEGImages/`` (SBD's ``img/`` when VOC lacks one). ``sbd_root`` (or
$SEGBENCH_SBD) is SBD's ``benchmark_RELEASE/dataset`` folder, from
https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz::

    cls/<id>.mat     img/<id>.jpg     train.txt     val.txt

It is read only when ``train_set = "trainaug"``. Val is always VOC val.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io

from segbench import SegbenchError, SegmentationData, cached_dataset, files_fingerprint

from .coco import MissingDataError
from .folder import PairedFiles, UnreadableDataError, check_count, check_image_size, draw, read_index_mask
from .io import changed_options, check_choice, check_fit, check_flag, split_size

ENV_ROOT = "SEGBENCH_VOC"
ENV_SBD = "SEGBENCH_SBD"
SBD_URL = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz"
TRAIN_SETS = ("train", "trainaug")
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
SBD_LAYOUT = (
    "  SBD/cls/<id>.mat   (GTcls.Segmentation: class indices 0..20)\n"
    "  SBD/img/<id>.jpg\n"
    "  SBD/train.txt and val.txt"
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
    native_val: bool = False,
    train_set: str = "train",
    sbd_root: str | None = None,
) -> SegmentationData:
    """PASCAL VOC2012 segmentation (21 classes, boundary 255 ignored) from ``root`` or $SEGBENCH_VOC.

    ``max_images`` (0 = all) caps each split, drawn deterministically from ``selection_seed``.
    ``classes`` (background first) replaces the VOC class names for other data in this layout.
    ``native_val`` keeps val at native sizes; ``train_set = "trainaug"`` adds SBD (``sbd_root``).
    """
    classes = _checked_classes(classes)
    image_size = check_image_size("voc", image_size)
    check_fit("voc", fit)
    check_count("voc", "max_images", max_images)
    check_count("voc", "selection_seed", selection_seed)
    check_flag("voc", "native_val", native_val)
    check_choice("voc", "train_set", train_set, TRAIN_SETS)
    if sbd_root is not None and (not isinstance(sbd_root, str) or not sbd_root):
        raise SegbenchError(f"voc: sbd_root must be a folder path (SBD's benchmark_RELEASE/dataset) or unset, got {sbd_root!r}")
    base = find_root(root)
    samples = _listed_samples(base, train_set, sbd_root)
    chosen = {split: draw(samples[split], max_images, selection_seed) for split in SPLITS}
    key = {
        "dataset": "voc", "reader_version": READER_VERSION, "classes": classes, "image_size": image_size,
        "fit": fit, "chosen": {split: [i for i, _, _ in chosen[split]] for split in SPLITS},
        "inputs": files_fingerprint([path for split in SPLITS for _, *paths in chosen[split] for path in paths]),
        **changed_options(native_val=(native_val, False), train_set=(train_set, "train")),
    }

    def samples():
        splits = {
            split: PairedFiles([paths for _, *paths in chosen[split]], classes=classes, ignore_index=IGNORE_INDEX,
                               image_size=split_size(image_size, native_val, split), fit=fit,
                               native=native_val and split == "val", read_mask=read_voc_mask)
            for split in SPLITS
        }
        return SegmentationData(classes, splits["train"], splits["val"], IGNORE_INDEX, "multiclass")

    return cached_dataset(cache_dir, key, samples)


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


def _listed_samples(base: Path, train_set: str, sbd_root) -> dict:
    """``{split: [(id, image path, mask path), ...]}`` in list order (trainaug: sorted ids)."""
    ids = {split: _listed_ids(base, split) for split in SPLITS}
    samples = {split: [(i, *_sample_paths(base, i)) for i in ids[split]] for split in SPLITS}
    if train_set == "trainaug":
        sbd = find_sbd_root(sbd_root)
        voc_train = set(ids["train"])
        samples["train"] = [
            (i, *(_sample_paths(base, i) if i in voc_train else _sbd_paths(base, sbd, i)))
            for i in trainaug_ids(ids["train"], ids["val"], _sbd_ids(sbd, "train") + _sbd_ids(sbd, "val"))
        ]
    return samples


def trainaug_ids(voc_train, voc_val, sbd_ids) -> list:
    """(SBD train + SBD val + VOC train) minus VOC val, sorted: 10,582 ids on the real lists."""
    return sorted((set(sbd_ids) | set(voc_train)) - set(voc_val))


def _sbd_paths(base: Path, sbd: Path, image_id: str):
    image = base / "JPEGImages" / f"{image_id}.jpg"
    return image if image.is_file() else sbd / "img" / f"{image_id}.jpg", sbd / "cls" / f"{image_id}.mat"


def find_sbd_root(sbd_root) -> Path:
    """SBD's ``benchmark_RELEASE/dataset`` folder from ``sbd_root`` or $SEGBENCH_SBD."""
    given = sbd_root if sbd_root is not None else os.environ.get(ENV_SBD)
    how = (
        f"pass sbd_root = \"/path/to/benchmark_RELEASE/dataset\" or set {ENV_SBD}. To get SBD, download "
        f"{SBD_URL} (1.4 GB), extract it and point at its benchmark_RELEASE/dataset folder, which holds\n{SBD_LAYOUT}"
    )
    if not given:
        raise MissingDataError(f"voc: train_set = \"trainaug\" needs the SBD dataset and no SBD folder was given: {how}")
    base = Path(given).expanduser()
    for candidate in (base, base / "dataset", base / "benchmark_RELEASE" / "dataset"):
        if (candidate / "cls").is_dir() and (candidate / "train.txt").is_file():
            return candidate
    source = "sbd_root" if sbd_root is not None else f"${ENV_SBD}"
    raise MissingDataError(f"voc: {source} = {base} is not an SBD folder (no cls/ and train.txt there): {how}")


def _sbd_ids(sbd: Path, split: str) -> list:
    listing = sbd / f"{split}.txt"
    if not listing.is_file():
        raise MissingDataError(f"voc: SBD split list not found: {listing}; expected\n{SBD_LAYOUT}")
    return [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]


def read_sbd_mask(path: Path) -> np.ndarray:
    """The (H, W) class indices of an SBD ``cls/<id>.mat`` (``GTcls.Segmentation``)."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"mask not found: {path}")
    try:
        mask = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)["GTcls"].Segmentation
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise UnreadableDataError(
            f"cannot read SBD mask {path} (expected a GTcls struct with a Segmentation field): "
            f"{type(error).__name__}: {error}"
        ) from None
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype.kind not in "iu":
        raise UnreadableDataError(f"{path}: GTcls.Segmentation must be a 2-D integer array, got {mask.dtype} {mask.shape}")
    return mask


def read_voc_mask(path: Path) -> np.ndarray:
    """A VOC palette PNG, or an SBD ``cls/<id>.mat``, as (H, W) class indices."""
    return read_sbd_mask(path) if Path(path).suffix == ".mat" else read_index_mask(path)
