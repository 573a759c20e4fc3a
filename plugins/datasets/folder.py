"""The ``folder`` dataset: ``images/`` with one index-mask PNG per image in ``masks/``.

Layout::

    ROOT/images/<stem>.png|.jpg|.jpeg
    ROOT/masks/<stem>.png        one class index per pixel (PNG mode "P" or "L")

``classes`` names the classes in index order (``classes[0]`` is the background); a mask
pixel is either a class index or ``ignore_index``. Images are split into train and val
deterministically: the sorted stems are shuffled by a generator seeded with
``split_seed`` and the first ``round(val_fraction * N)`` (at least one) go to val, so
the split depends only on the file names and the parameters. ``native_val = true``
keeps the val images at their native sizes (``image_size`` then shapes train only).

The helpers below (reading images and index masks, resizing, stacking) are shared with
the ``voc`` and ``coco`` readers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from segbench import ImageList, MapSamples, SegbenchError, SegmentationData, cached_dataset, files_fingerprint, pairs_from_arrays

from .coco import MissingDataError
from .io import changed_options, check_fit, check_flag, resize_pair, split_size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MASK_MODES = ("P", "L", "I", "I;16")
READER_VERSION = 1  # bump when decoding changes, so cached samples are rebuilt


class UnreadableDataError(SegbenchError):
    """A dataset file exists but cannot be decoded; the message names the file."""


class MaskValueError(SegbenchError):
    """A mask holds a value that is neither a class index nor ``ignore_index``."""


# --- shared helpers ----------------------------------------------------------------------


def read_image(path: Path) -> Image.Image:
    """The RGB image at ``path``; a missing or undecodable file is named in the error."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"image not found: {path}")
    try:
        with Image.open(path) as opened:
            opened.load()
            return opened.convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableDataError(f"cannot read image {path}: {error}") from None


def read_index_mask(path: Path) -> np.ndarray:
    """The (H, W) class indices of a mask PNG: palette indices for mode "P", values for "L"."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"mask not found: {path}")
    try:
        with Image.open(path) as opened:
            opened.load()
            if opened.mode not in MASK_MODES:
                raise SegbenchError(
                    f"{path}: a mask must hold one class index per pixel (PNG mode "
                    f"{' or '.join(MASK_MODES[:2])}), this one is mode {opened.mode}"
                )
            return np.array(opened)
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableDataError(f"cannot read mask {path}: {error}") from None


def check_mask_values(mask: np.ndarray, path, num_classes: int, ignore_index: int, classes=None) -> np.ndarray:
    """``mask`` as uint8 after checking every value is a class index or ``ignore_index``."""
    values = np.unique(mask)
    bad = [int(v) for v in values if not (0 <= v < num_classes or v == ignore_index)]
    if bad:
        valid = f"0..{num_classes - 1}" + (f" ({', '.join(classes)})" if classes else "")
        raise MaskValueError(
            f"{path}: mask value{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad[:10]))} "
            f"{'are' if len(bad) > 1 else 'is'} not a class index; valid values are {valid} "
            f"and ignore_index {ignore_index}"
        )
    return mask.astype(np.uint8)


class PairedFiles(MapSamples):
    """Images with one index-mask file each, read one pair at a time (``folder`` and ``voc``):
    the image decoded as RGB, the mask's values checked, both brought to ``image_size``."""

    def __init__(self, pairs, *, classes, ignore_index: int, image_size=None, fit: str = "resize", native: bool = False,
                 read_mask=read_index_mask):
        self.pairs = [(str(image), str(mask)) for image, mask in pairs]  # text: cheap to send to loader workers
        self.classes, self.ignore_index = list(classes), ignore_index
        self.image_size, self.fit, self.native, self.read_mask = image_size, fit, native, read_mask
        self.size = (image_size, image_size) if image_size else None  # resize_pair makes every sample that square

    def __len__(self):
        return len(self.pairs)

    def read(self, index):
        image_path, mask_path = (Path(path) for path in self.pairs[index])
        image = read_image(image_path)
        mask = check_mask_values(self.read_mask(mask_path), mask_path, len(self.classes), self.ignore_index, self.classes)
        return resize_pair(image, mask, self.image_size, image_path, self.fit)

    def describe(self, index):
        return self.pairs[index][0]


def stack_pairs(pairs: list, source, native: bool = False):
    """The split's samples: TensorPairs when they share one size, else an ImageList
    (native sizes, fine to inspect; training needs image_size). ``native`` (a val split
    under ``native_val``) always gives an ImageList, one tensor per image."""
    if not pairs:
        raise SegbenchError(f"{source}: no samples")
    samples = pairs_from_arrays(pairs)
    if native and not isinstance(samples, ImageList):
        samples = ImageList([image.clone() for image in samples.images], [mask.clone() for mask in samples.masks])
    return samples


def check_image_size(dataset: str, image_size):
    """``image_size`` checked: an integer in 8..4096, or native sizes (``0``, or unset where the
    default is native), returned as None."""
    if image_size is None or image_size == 0 and not isinstance(image_size, bool):
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 8 <= image_size <= 4096:
        raise SegbenchError(f"{dataset}: image_size must be an integer in 8..4096, or 0 for native sizes, got {image_size!r}")
    return image_size


def check_count(dataset: str, name: str, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SegbenchError(f"{dataset}: {name} must be an integer >= 0, got {value!r}")


def check_ignore_index(dataset: str, ignore_index, num_classes: int):
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int) or not num_classes <= ignore_index <= 255:
        raise SegbenchError(
            f"{dataset}: ignore_index must be an integer in {num_classes}..255 (not a class index "
            f"and fitting a uint8 mask), got {ignore_index!r}"
        )


def draw(items: list, max_images: int, seed: int) -> list:
    """``max_images`` of ``items`` drawn with a generator seeded by ``seed``, in original order."""
    if not max_images or max_images >= len(items):
        return list(items)
    chosen = np.random.default_rng(seed).permutation(len(items))[:max_images]
    return [items[i] for i in sorted(chosen)]


# --- the folder dataset ------------------------------------------------------------------


def build_folder(
    cache_dir,
    *,
    root: str,
    classes: list,
    image_size: int | None = None,
    fit: str = "resize",
    val_fraction: float = 0.2,
    ignore_index: int = 255,
    split_seed: int = 0,
    native_val: bool = False,
) -> SegmentationData:
    """Images in ROOT/images with same-stem index-mask PNGs in ROOT/masks, and a class list.

    ``native_val`` keeps the val split at native resolution (see ``io.py``)."""
    classes = _checked_classes(classes)
    image_size = check_image_size("folder", image_size)
    check_fit("folder", fit)
    check_ignore_index("folder", ignore_index, len(classes))
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise SegbenchError(f"folder: val_fraction must be a number between 0 and 1 (exclusive), got {val_fraction!r}")
    check_count("folder", "split_seed", split_seed)
    check_flag("folder", "native_val", native_val)
    images_dir, masks_dir = _checked_layout(root)
    stems = _image_files(images_dir)
    if len(stems) < 2:
        raise SegbenchError(f"folder: {images_dir} holds {len(stems)} image(s); train and val need at least 2")
    masks = sorted(entry.path for entry in os.scandir(masks_dir) if entry.name.endswith(".png"))
    _check_every_image_has_a_mask(stems, masks_dir, {os.path.basename(mask)[:-4] for mask in masks})
    key = {
        "dataset": "folder", "reader_version": READER_VERSION, "classes": classes, "image_size": image_size,
        "fit": fit, "val_fraction": val_fraction, "ignore_index": ignore_index, "split_seed": split_seed,
        "inputs": files_fingerprint([stems[name] for name in sorted(stems)] + masks),
        **changed_options(native_val=(native_val, False)),
    }
    split = _split_stems(sorted(stems), val_fraction, split_seed)

    def samples():
        def files(role):
            return PairedFiles([(stems[stem], os.path.join(masks_dir, f"{stem}.png")) for stem in split[role]], classes=classes,
                               ignore_index=ignore_index, image_size=split_size(image_size, native_val, role), fit=fit,
                               native=native_val and role == "val")

        return SegmentationData(classes, files("train"), files("val"), ignore_index, "multiclass")

    return cached_dataset(cache_dir, key, samples)


def _check_every_image_has_a_mask(stems: dict, masks_dir: Path, mask_stems: set) -> None:
    missing = sorted(set(stems) - mask_stems)
    if missing:
        more = f" (and {len(missing) - 1} more image(s) without a mask)" if len(missing) > 1 else ""
        raise MissingDataError(f"folder: no mask for image {stems[missing[0]]}: expected {masks_dir / (missing[0] + '.png')}{more}")


def _split_stems(names, val_fraction, split_seed) -> dict:
    """Sorted names shuffled by ``split_seed``; the first share goes to val."""
    order = np.random.default_rng(split_seed).permutation(len(names))
    num_val = min(max(1, round(val_fraction * len(names))), len(names) - 1)
    return {"val": sorted(names[i] for i in order[:num_val]), "train": sorted(names[i] for i in order[num_val:])}


def _checked_classes(classes) -> list:
    if (
        not isinstance(classes, (list, tuple))
        or len(classes) < 2
        or not all(isinstance(c, str) and c for c in classes)
    ):
        raise SegbenchError(
            f"folder: classes must be a list of at least 2 class names, background first, got {classes!r}"
        )
    if len(set(classes)) != len(classes):
        raise SegbenchError(f"folder: class names must be unique, got {list(classes)}")
    return list(classes)


def _checked_layout(root):
    layout = "ROOT/images/<name>.png|.jpg and ROOT/masks/<name>.png (one class index per pixel)"
    if root is None or not Path(root).is_dir():
        raise MissingDataError(f"folder: root {root} is not a folder; expected {layout}")
    images_dir, masks_dir = Path(root) / "images", Path(root) / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise MissingDataError(f"folder: {folder} not found; expected {layout}")
    return images_dir, masks_dir


def _image_files(images_dir: Path) -> dict:
    """Stem -> the image file's path, as text (a large folder's listing stays small)."""
    files = {}
    for entry in sorted(os.scandir(images_dir), key=lambda entry: entry.name):
        stem, suffix = os.path.splitext(entry.name)
        if suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
            if stem in files:
                raise SegbenchError(f"folder: two images share the name {stem}: {os.path.basename(files[stem])}, {entry.name}")
            files[stem] = entry.path
    return files
