"""Training-time augmentation on whole batches, on whatever device the batch is on.

Suites set it in ``[train]``::

    augment = { hflip = 0.5, scale = [0.5, 2.0] }

- ``hflip``: the probability that an image (with its mask) is mirrored left-right;
- ``scale``: each image is zoomed by a factor drawn uniformly from the range, about a
  random centre chosen so the view stays inside the image when zooming in (a random
  crop, as in torchvision's segmentation reference) and the image stays inside the view
  when zooming out; what falls outside the image is the mean colour (0 after
  normalisation) and ``ignore_index`` in the mask, so it is never scored or learned.

Images are resampled bilinearly and masks by nearest neighbour, so no mask value is ever
invented. The random draws come from a generator seeded by the run's seed, on the host, so
a run is reproducible on any device; validation data is never augmented. The engine draws a
whole epoch at once (:meth:`Augment.epoch_draws`, the same numbers in the same order as
batch by batch) and moves them to the device in one copy, so a training step never waits
for the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MAX_SCALE = 4.0


@dataclass(frozen=True)
class Augment:
    hflip: float = 0.0
    scale: tuple = (1.0, 1.0)

    @classmethod
    def from_config(cls, config: dict) -> "Augment":
        return cls(float(config.get("hflip", 0.0)), tuple(float(v) for v in config.get("scale", (1.0, 1.0))))

    @property
    def active(self) -> bool:
        return self.hflip > 0 or self.scale != (1.0, 1.0)

    def __call__(self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator, ignore_index: int):
        """Augmented copies of a normalised (N, 3, H, W) batch and its (N, H, W) masks."""
        if not self.active:
            return images, masks
        return self.apply(images, masks, self.epoch_draws([images.shape[0]], generator).to(images.device), ignore_index)

    def epoch_draws(self, batch_sizes, generator: torch.Generator) -> "Draws | None":
        """The random draws of consecutive batches of ``batch_sizes`` images, on the host,
        taken from ``generator`` in the order batch-by-batch augmentation takes them."""
        if not self.active:
            return None
        flips, zooms, shifts = [], [], []
        for count in batch_sizes:
            flips.append(torch.rand(count, generator=generator) < self.hflip)
            if self.scale != (1.0, 1.0):
                low, high = self.scale
                zoom = low + (high - low) * torch.rand(count, generator=generator, dtype=torch.float64)
                zooms.append(zoom)
                shifts.append((1 - 1 / zoom).abs().unsqueeze(1) * (2 * torch.rand(count, 2, generator=generator, dtype=torch.float64) - 1))
        flips = torch.cat(flips)
        return Draws(flips, _affine(flips, torch.cat(zooms), torch.cat(shifts)) if zooms else None)

    def apply(self, images: torch.Tensor, masks: torch.Tensor, draws: "Draws", ignore_index: int):
        """``images`` and ``masks`` augmented with ``draws`` (one entry per image, on their device)."""
        if draws.theta is None:
            return _mirror(images, masks, draws.flips)
        return _zoom(images, masks, draws.theta, ignore_index)


@dataclass(frozen=True)
class Draws:
    """Per-image draws: ``flips`` (N,) bool and, when zooming, ``theta`` (N, 2, 3) float32
    affine matrices (output to input coordinates, flip included)."""

    flips: torch.Tensor
    theta: torch.Tensor | None = None

    def to(self, device, non_blocking: bool = False) -> "Draws":
        move = lambda tensor: None if tensor is None else tensor.to(device, non_blocking=non_blocking)  # noqa: E731
        return Draws(move(self.flips), move(self.theta))

    def __getitem__(self, items: slice) -> "Draws":
        return Draws(self.flips[items], None if self.theta is None else self.theta[items])


def _mirror(images, masks, flips):
    """Exact left-right mirroring of the flagged samples (no resampling)."""
    images = torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
    return images, torch.where(flips.view(-1, 1, 1), masks.flip(-1), masks)


def _affine(flips, zoom, shift):
    """The float32 sampling matrices, computed in float64 on the host."""
    theta = torch.zeros(flips.shape[0], 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = torch.where(flips, -1.0, 1.0) / zoom  # output x -> input x
    theta[:, 1, 1] = 1 / zoom
    theta[:, :, 2] = shift
    return theta.to(torch.float32)


def _zoom(images, masks, theta, ignore_index):
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Masks shifted by one so that the zero padding marks "outside the image".
    shifted = (masks + 1).unsqueeze(1).to(torch.float32)
    sampled = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    sampled = sampled.squeeze(1).round().long() - 1
    return images, torch.where(sampled < 0, torch.full_like(sampled, ignore_index), sampled)


def augment_generator(seed: int) -> torch.Generator:
    """The augmentation stream of a run: apart from the data-order stream, so switching
    augmentation on does not change the order batches come in."""
    return torch.Generator().manual_seed((seed * 2654435761 + 97) % 2**63)
