"""The dataset contract: what a ``segbench_datasets`` factory returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODES = ("binary", "multiclass")


class TensorPairs(torch.utils.data.Dataset):
    """Images and masks held in memory as uint8 tensors.

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

    def __len__(self):
        return self.images.shape[0]

    def __getitem__(self, index):
        images, masks = self.batch(torch.as_tensor([index]))
        return images[0], masks[0]

    def batch(self, indices: torch.Tensor, device="cpu"):
        """A normalised batch for ``indices``, moved to ``device``."""
        images = self.images[indices].to(device, non_blocking=True)
        masks = self.masks[indices].to(device, non_blocking=True).long()
        return normalize(images), masks


def normalize(images_uint8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=images_uint8.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images_uint8.device).view(1, 3, 1, 1)
    return (images_uint8.float() / 255.0 - mean) / std


@dataclass
class SegmentationData:
    """Train and validation splits of one dataset with its class list.

    ``classes[0]`` is the background. In ``binary`` mode there are exactly two classes and
    models predict one logit channel; in ``multiclass`` mode one channel per class.
    """

    classes: list
    train: TensorPairs
    val: TensorPairs
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
