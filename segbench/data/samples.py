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


class _Samples(torch.utils.data.Dataset):
    """What both split containers share: items, raw samples by index."""

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
    - ``train``, ``val``: :class:`TensorPairs` (one size), or :class:`ImageList` (native
      sizes, which can be evaluated but not trained on: segbench asks for an
      ``image_size`` then). Each dataset reads its own ``image_size`` parameter and
      resizes its samples itself; segbench never resizes them.
    - ``ignore_index``: the mask value of pixels that are not scored; not a class index.
    - ``mode``: ``"multiclass"`` (models predict one logit channel per class) or
      ``"binary"`` (exactly two classes, one logit channel).
    """

    classes: list
    train: TensorPairs | ImageList
    val: TensorPairs | ImageList
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
