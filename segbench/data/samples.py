"""The dataset contract: what a ``segbench_datasets`` factory returns."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import SegbenchError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODES = ("binary", "multiclass")
# What a mask may be stored as: integers that torch reads as class indices (bool and floats are not).
INTEGER_MASK_DTYPES = ("uint8", "int8", "int16", "uint16", "int32", "int64")


class _Samples(torch.utils.data.Dataset):
    """What the split containers share: items, raw samples by index, their sizes."""

    images: object
    masks: object

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        images, masks = self.batch(torch.as_tensor([index]))
        return images[0], masks[0]

    def raw(self, index: int):
        """Sample ``index`` as stored: (3, H, W) uint8 image and (H, W) mask."""
        return self.images[index], self.masks[index]

    def sample_sizes(self) -> list:
        """The (H, W) of every sample, in order."""
        return [tuple(image.shape[-2:]) for image in self.images]

    def describe(self, index: int) -> str:
        """How errors name sample ``index``."""
        return f"sample {index}"

    def distinct_labels(self, images_at_once: int = 64) -> list:
        """The distinct mask values of the split, a few images at a time (a whole split at
        once would double its memory)."""
        parts = self.masks.split(images_at_once) if isinstance(self.masks, torch.Tensor) else self.masks
        found = set()
        for part in parts:
            found.update(torch.unique(part).tolist())
        return sorted(found)


class TensorPairs(_Samples):
    """Images and masks of one size, held as uint8 tensors (on the host or a device).

    ``images`` is (N, 3, H, W) uint8, ``masks`` is (N, H, W) with class indices (and
    ``ignore_index`` where a pixel is not scored). Items are ImageNet-normalised float
    images and int64 masks. The engine batches these by indexing, without a DataLoader.
    """

    def __init__(self, images: torch.Tensor, masks: torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        if masks.shape != (images.shape[0], *images.shape[2:]):
            raise ValueError(f"masks must be (N, H, W) matching images, got {tuple(masks.shape)}")
        self.images = images
        self.masks = masks

    def sizes(self) -> list:
        """The distinct (H, W) sizes of the samples."""
        return [tuple(self.images.shape[2:])] if len(self) else []

    def sample_sizes(self) -> list:
        return [tuple(self.images.shape[2:])] * len(self)

    @property
    def device(self) -> torch.device:
        """Where the samples are held (the host, or a device in the GPU-resident mode)."""
        return self.images.device

    @property
    def nbytes(self) -> int:
        return self.images.nbytes + self.masks.nbytes

    def to(self, device) -> "TensorPairs":
        """The same samples held on ``device`` (for the GPU-resident mode)."""
        return TensorPairs(self.images.to(device), self.masks.to(device))

    def batch(self, indices: torch.Tensor, device="cpu"):
        """A normalised batch for ``indices``, moved to ``device``."""
        indices = indices.to(self.images.device)
        images = self.images[indices].to(device, non_blocking=True)
        masks = self.masks[indices].to(device, non_blocking=True).long()
        return normalize(images), masks


class ImageList(_Samples):
    """Samples of different sizes (a dataset read at native size, ``image_size`` unset).

    Enough to inspect, export and evaluate one image at a time; batches of several sizes
    cannot be stacked, so training needs ``image_size`` (checked before training).
    """

    def __init__(self, images: list, masks: list):
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks")
        for image, mask in zip(images, masks):
            if image.ndim != 3 or image.shape[0] != 3 or image.dtype != torch.uint8 or mask.shape != image.shape[1:]:
                raise ValueError(f"each image must be uint8 (3, H, W) with an (H, W) mask, got {tuple(image.shape)} and {tuple(mask.shape)}")
        self.images = list(images)
        self.masks = list(masks)

    def sizes(self) -> list:
        return sorted({tuple(image.shape[1:]) for image in self.images})

    @property
    def nbytes(self) -> int:
        return sum(image.nbytes + mask.nbytes for image, mask in zip(self.images, self.masks))

    def to(self, device) -> "ImageList":
        return ImageList([i.to(device) for i in self.images], [m.to(device) for m in self.masks])

    def batch(self, indices: torch.Tensor, device="cpu"):
        chosen = [int(i) for i in indices]
        sizes = {tuple(self.images[i].shape[1:]) for i in chosen}
        if len(sizes) > 1:
            raise SegbenchError(
                f"cannot batch images of different sizes {sorted(sizes)[:3]}; set the dataset's image_size"
            )
        images = torch.stack([self.images[i] for i in chosen]).to(device, non_blocking=True)
        masks = torch.stack([self.masks[i] for i in chosen]).to(device, non_blocking=True).long()
        return normalize(images), masks


class MapSamples(torch.utils.data.Dataset):
    """Samples read one at a time (map-style), for datasets that need not fit in memory.

    Subclass it and define ``__len__`` and ``read(index)``; ``describe(index)`` is optional::

        class MyFiles(segbench.MapSamples):
            def __init__(self, pairs):
                self.pairs = pairs  # [(image path, mask path), ...]: paths, not pixels

            def __len__(self):
                return len(self.pairs)

            def read(self, index):
                image_path, mask_path = self.pairs[index]
                return np.asarray(Image.open(image_path).convert("RGB")), np.asarray(Image.open(mask_path))

            def describe(self, index):
                return str(self.pairs[index][0])

    - ``read(index)`` returns sample ``index``: an RGB image, ``uint8`` ``(H, W, 3)`` (a numpy
      array, or a tensor ``(H, W, 3)`` or ``(3, H, W)``), and its mask ``(H, W)`` of an integer
      dtype holding class indices or ``ignore_index``, at the dataset's ``image_size`` when it
      has one, else at native size. The same index must always give the same sample.
    - ``describe(index)`` names the sample in errors (its file, say); default ``sample <index>``.
    - ``native = True`` (a class or instance attribute) says the samples keep native sizes that
      may differ, so that the in-memory path holds them as an :class:`ImageList` (evaluated one
      image at a time) even when they happen to share one size.
    - ``size = (H, W)`` (optional) says that every sample has that size (a dataset resized to
      its ``image_size``): the sample cache is then written in place, each byte once, and a
      sample of another size is an error naming it.

    segbench decides how the samples are used (``[train] data_loading``): decoded once with
    ``[train] data_workers`` worker processes into the sample cache and held in memory, or
    read per batch by loader workers while training, so that memory does not grow with the
    dataset. Either way the object is sent to worker processes: keep it light (paths and
    annotations, not pixels) and picklable.
    """

    native = False
    size: tuple | None = None

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def read(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must define read(index)")

    def describe(self, index: int) -> str:
        return f"sample {index}"

    def __getitem__(self, index):
        return as_sample(*self.read(index), where=self.describe(index))


class SampleError(SegbenchError):
    """A map-style sample that breaks the dataset contract; the message names it."""


def as_sample(image, mask, where: str = "sample"):
    """``(image, mask)`` as read, checked and made tensors: (3, H, W) uint8 and (H, W) integer."""
    image, mask = _tensor(image), _tensor(mask)
    if image.ndim == 3 and image.shape[-1] == 3 and image.shape[0] != 3:
        image = image.permute(2, 0, 1)
    if image.ndim != 3 or image.shape[0] != 3 or image.dtype != torch.uint8:
        raise SampleError(f"{where}: the image must be uint8 (H, W, 3) RGB, got {image.dtype} {tuple(image.shape)}")
    problem = mask_dtype_problem(mask.dtype)
    if problem:
        raise SampleError(f"{where}: {problem}")
    if tuple(mask.shape) != tuple(image.shape[1:]):
        raise SampleError(f"{where}: the mask is {tuple(mask.shape)} but the image is {tuple(image.shape[1:])} (H, W)")
    return image.contiguous(), mask.contiguous()


def mask_dtype_problem(dtype) -> str | None:
    """Why masks of ``dtype`` (torch or numpy) cannot be label maps, or None when they can.

    The one check of a mask's dtype: the preflight, the dataset contract and every
    map-style read ask it. A float mask would pass the label checks (1.0 is a class) and
    train, then break whatever indexes with its values (per-class counts, plots)."""
    name = _dtype_name(dtype)
    if name in INTEGER_MASK_DTYPES:
        return None
    return (f"the mask is {name}; masks hold integer class indices, so their dtype must be one of "
            f"{', '.join(INTEGER_MASK_DTYPES)} (e.g. mask.astype(np.uint8), or mask.to(torch.uint8))")


def _dtype_name(dtype) -> str:
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


def split_mask_dtypes(split) -> dict:
    """``{dtype name: first sample index}`` of a split's masks held as tensors
    (:class:`TensorPairs`, :class:`ImageList`); empty for map-style or streamed samples,
    whose masks :func:`as_sample` checks as each is read."""
    masks = getattr(split, "masks", None)
    if isinstance(masks, torch.Tensor):
        return {_dtype_name(masks.dtype): 0} if len(masks) else {}
    found = {}
    for index, mask in enumerate(masks or ()):
        found.setdefault(_dtype_name(mask.dtype), index)
    return found


def _tensor(array) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array
    array = np.asarray(array)
    return torch.from_numpy(array if array.flags.writeable else array.copy())  # torch warns on read-only memory


def pairs_from_arrays(pairs: list) -> TensorPairs | ImageList:
    """One split from numpy ``(image, mask)`` pairs: a :class:`TensorPairs` when all images
    have one size, else an :class:`ImageList` (native sizes).

    :param pairs: a non-empty list of ``(image, mask)``: ``image`` a ``uint8`` array
        ``(H, W, 3)`` (RGB), ``mask`` an integer array ``(H, W)`` (``uint8`` is usual) of
        class indices, with ``ignore_index`` where a pixel is not scored. Their dtypes are
        kept, and nothing is resized: a dataset resizes to its own ``image_size`` first.
    :returns: images ``(N, 3, H, W)`` uint8 and masks ``(N, H, W)``, as tensors.
    """
    if len({image.shape[:2] for image, _ in pairs}) <= 1:
        images = torch.from_numpy(np.stack([image for image, _ in pairs])).permute(0, 3, 1, 2).contiguous()
        return TensorPairs(images, torch.from_numpy(np.stack([mask for _, mask in pairs])))
    images = [torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous() for image, _ in pairs]
    return ImageList(images, [torch.from_numpy(np.array(mask)) for _, mask in pairs])


def normalize(images_uint8: torch.Tensor) -> torch.Tensor:
    mean, std = _imagenet_constants(images_uint8.device)
    return (images_uint8.float() / 255.0 - mean) / std


@functools.lru_cache(maxsize=None)
def _imagenet_constants(device: torch.device):
    """Mean and std as (1, 3, 1, 1) tensors on ``device``, made once per device: building
    them from Python numbers is a blocking host-to-device copy, twice per batch otherwise."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    return mean, torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)


@dataclass
class SegmentationData:
    """Train and validation splits of one dataset with its class list: what a dataset
    factory returns.

    - ``classes``: the class names (str, unique); ``classes[0]`` is the background, and a
      mask value ``c`` means ``classes[c]``.
    - ``train``, ``val``: :class:`TensorPairs` (one size), :class:`ImageList` (native
      sizes, which are trained on through random crops, ``[train] augment.crop``), or
      :class:`MapSamples` (read one at a time: decoded into memory once, or streamed while
      training). Each dataset reads its own ``image_size`` parameter and resizes its
      samples itself; segbench never resizes them (augmentation aside).
    - ``ignore_index``: the mask value of pixels that are not scored; not a class index.
    - ``mode``: ``"multiclass"`` (models predict one logit channel per class) or
      ``"binary"`` (exactly two classes, one logit channel).
    """

    classes: list
    train: TensorPairs | ImageList | MapSamples
    val: TensorPairs | ImageList | MapSamples
    ignore_index: int = 255
    mode: str = "multiclass"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "binary" and len(self.classes) != 2:
            raise ValueError(f"binary mode needs exactly 2 classes, got {len(self.classes)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def output_channels(self) -> int:
        return 1 if self.mode == "binary" else self.num_classes
