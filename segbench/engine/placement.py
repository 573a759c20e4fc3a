"""Where a run's samples live: on the host, gathered and copied per batch, or resident
on the device (``train.data_placement``), so that loading costs next to nothing.

``auto`` keeps a dataset on an accelerator when its uint8 samples fit under
``train.data_device_limit_mb``; ``device`` always does, ``host`` never. On the CPU there
is one memory, so the question does not arise and the placement is ``host``.
"""

from __future__ import annotations

import dataclasses

import torch

from ..data import SegmentationData

_resident: dict = {}  # the last dataset moved to a device, reused by the runs that follow


def place_dataset(data: SegmentationData, device: torch.device, placement: str, limit_mb: int):
    """``(data to train from, "device" | "host")``."""
    if device.type == "cpu" or placement == "host":
        return data, "host"
    fits = data.train.nbytes + data.val.nbytes <= limit_mb * 2**20
    if placement == "auto" and not fits:
        return data, "host"
    key = (id(data), str(device))
    if key not in _resident:
        _resident.clear()  # one resident dataset at a time: device memory is for the model
        _resident[key] = dataclasses.replace(data, train=data.train.to(device), val=data.val.to(device))
    return _resident[key], "device"
