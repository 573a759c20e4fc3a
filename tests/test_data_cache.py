"""The decoded-sample cache: hits, misses, input changes, races and broken entries."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_dataset_coco import real_root
from test_dataset_folder import CLASSES, write_folder

import segbench_plugins.datasets.folder as folder
from segbench.data import ImageList, SegmentationData, TensorPairs
from segbench.data import cache
from segbench.errors import SegbenchError
from segbench_plugins.datasets.coco_dataset import build_coco
from segbench_plugins.datasets.folder import build_folder
from conftest import entries_of


def small_data(seed=0) -> SegmentationData:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (3, 3, 5, 6), dtype=torch.uint8, generator=generator)
    masks = torch.randint(0, 3, (3, 5, 6), dtype=torch.uint8, generator=generator)
    return SegmentationData(["bg", "a", "b"], TensorPairs(images, masks), TensorPairs(images[:1], masks[:1]))


class CountingBuild:
    def __init__(self, data):
        self.data, self.calls = data, 0

    def __call__(self):
        self.calls += 1
        return self.data


def test_second_use_hits_without_building_and_returns_the_same_samples(tmp_path):
    build = CountingBuild(small_data())
    key = {"dataset": "toy", "size": 5}
    first = cache.cached_dataset(tmp_path, key, build)
    second = cache.cached_dataset(tmp_path, key, build)
    assert build.calls == 1
    assert torch.equal(second.train.images, first.train.images) and torch.equal(second.val.masks, first.val.masks)
    assert second.classes == ["bg", "a", "b"] and second.mode == "multiclass" and second.ignore_index == 255
    events = cache.take_events()[-2:]
    assert [e.hit for e in events] == [False, True] and events[0].path == events[1].path


def test_a_changed_key_misses(tmp_path):
    build = CountingBuild(small_data())
    cache.cached_dataset(tmp_path, {"dataset": "toy", "size": 5}, build)
    cache.cached_dataset(tmp_path, {"dataset": "toy", "size": 6}, build)
    assert build.calls == 2
    assert len(list(entries_of(tmp_path, "toy"))) == 2


def test_native_size_samples_round_trip(tmp_path):
    images = [torch.zeros((3, 4, 5), dtype=torch.uint8), torch.ones((3, 2, 7), dtype=torch.uint8)]
    masks = [torch.zeros((4, 5), dtype=torch.uint8), torch.full((2, 7), 255, dtype=torch.uint8)]
    data = SegmentationData(["bg", "x"], ImageList(images, masks), ImageList(images, masks), mode="binary")
    cache.cached_dataset(tmp_path, {"dataset": "native"}, lambda: data)
    again = cache.cached_dataset(tmp_path, {"dataset": "native"}, lambda: pytest.fail("should hit"))
    assert isinstance(again.train, ImageList) and again.train.sizes() == [(2, 7), (4, 5)]
    assert torch.equal(again.val.masks[1], masks[1]) and again.mode == "binary"


def test_a_broken_entry_is_rebuilt_not_trusted(tmp_path):
    key = {"dataset": "toy"}
    path = cache.entry_path(tmp_path, key)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    build = CountingBuild(small_data())
    data = cache.cached_dataset(tmp_path, key, build)
    assert build.calls == 1 and torch.equal(data.train.images, small_data().train.images)
    assert cache.cached_dataset(tmp_path, key, build) is not None and build.calls == 1
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "no scratch files left"


def _race(cache_dir, marker_dir, results):
    def build():
        (Path(marker_dir) / f"built-{os.getpid()}").touch()
        time.sleep(0.5)  # long enough that the other process arrives while this one builds
        return small_data()

    data = cache.cached_dataset(cache_dir, {"dataset": "race"}, build)
    results.put(data.train.images.sum().item())


def test_two_processes_preparing_the_same_data_build_it_once(tmp_path):
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_race, args=(tmp_path / "cache", tmp_path, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert [w.exitcode for w in workers] == [0, 0]
    sums = [results.get(timeout=5) for _ in workers]
    assert sums[0] == sums[1] == small_data().train.images.sum().item()
    assert len(list(tmp_path.glob("built-*"))) == 1


# --- the readers use it -------------------------------------------------------------------


def test_folder_hit_reads_no_image_and_a_changed_parameter_or_file_misses(tmp_path, monkeypatch):
    write_folder(tmp_path / "data")
    first = build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES, image_size=16)

    def no_decoding(path):
        raise AssertionError(f"decoded {path} although it was cached")

    monkeypatch.setattr(folder, "read_image", no_decoding)
    hit = build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES, image_size=16)
    assert torch.equal(hit.train.images, first.train.images)
    with pytest.raises(SegbenchError, match=r"img00.png\): AssertionError: decoded .* although it was cached"):
        build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES, image_size=12)
    monkeypatch.undo()

    mask_path = tmp_path / "data" / "masks" / "img00.png"
    changed = np.asarray(Image.open(mask_path)).copy()
    changed[:] = 2
    Image.fromarray(changed).save(mask_path)
    os.utime(mask_path, ns=(time.time_ns() + 10**9,) * 2)  # a new mtime even on coarse clocks
    rebuilt = build_folder(tmp_path, root=str(tmp_path / "data"), classes=CLASSES, image_size=16)
    everything = torch.cat([rebuilt.train.masks, rebuilt.val.masks])
    assert (everything == 2).all(dim=(1, 2)).any(), "the rewritten mask was read again"


def test_coco_hit_skips_the_annotation_file_and_a_changed_parameter_misses(tmp_path, monkeypatch):
    import segbench_plugins.datasets.coco_dataset as coco_dataset

    root = real_root(tmp_path)
    first = build_coco(tmp_path, root=str(root), image_size=32)
    monkeypatch.setattr(coco_dataset, "load_annotations", lambda path: pytest.fail(f"read {path} although cached"))
    again = build_coco(tmp_path, root=str(root), image_size=32)
    assert torch.equal(again.val.masks, first.val.masks) and again.classes == first.classes
    with pytest.raises(pytest.fail.Exception, match="although cached"):
        build_coco(tmp_path, root=str(root), image_size=32, crowd="keep")
