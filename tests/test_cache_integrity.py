"""Integrity of the sample cache and of the generated ``shapes`` folder: damage is found when
an entry is opened, named on stderr, and repaired from the source; the data that comes
back equals a fresh decode."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from segbench_plugins.datasets import coco, shapes

from conftest import entries_of

from segbench.data import ImageList, MapSamples, SegmentationData, TensorPairs, cache
from segbench.errors import SegbenchError

SMALL = {"image_size": 32, "num_train": 8, "num_val": 4}
KEY = {"dataset": "toy", "version": 1}


def toy_data() -> SegmentationData:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 8, 9), dtype=torch.uint8, generator=generator)
    masks = torch.randint(0, 3, (4, 8, 9), dtype=torch.uint8, generator=generator)
    return SegmentationData(["background", "meadow", "forest"], TensorPairs(images, masks), TensorPairs(images[2:].clone(), masks[2:].clone()))


class CountingBuild:
    def __init__(self, make=toy_data):
        self.make, self.calls = make, 0

    def __call__(self):
        self.calls += 1
        return self.make()


def same_data(a: SegmentationData, b: SegmentationData) -> bool:
    return (a.classes == b.classes and a.mode == b.mode and a.ignore_index == b.ignore_index
            and all(torch.equal(x, y) for x, y in zip(tensors(a), tensors(b), strict=True)))


def tensors(data: SegmentationData) -> list:
    parts = []
    for split in (data.train, data.val):
        parts += [split.images, split.masks] if isinstance(split.images, torch.Tensor) else [*split.images, *split.masks]
    return parts


def filled(tmp_path, key=KEY, make=toy_data) -> Path:
    cache.cached_dataset(tmp_path, key, make)
    return cache.entry_path(tmp_path, key)


def flip_byte_at(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def reopen(tmp_path, capsys, key=KEY, make=toy_data):
    """Open the entry again: (data, how often it was rebuilt, stderr)."""
    capsys.readouterr()
    build = CountingBuild(make)
    data = cache.cached_dataset(tmp_path, key, build)
    return data, build.calls, capsys.readouterr().err


# --- the sample cache ----------------------------------------------------------------------


def test_an_entry_is_a_folder_of_raw_samples_and_an_index(tmp_path):
    entry = filled(tmp_path)
    assert sorted(p.name for p in entry.iterdir()) == ["index.json", "train.images", "train.masks", "val.images", "val.masks"]
    data = toy_data()
    assert (entry / "train.images").read_bytes() == data.train.images.numpy().tobytes(), "the images as they are, in order"
    assert (entry / "val.masks").read_bytes() == data.val.masks.numpy().tobytes()
    index = json.loads((entry / "index.json").read_text())
    assert index["splits"]["train"]["count"] == 4 and index["splits"]["train"]["shapes"] == [[8, 9]]
    assert not [p for p in entry.parent.iterdir() if p.name.startswith(".")], "no scratch folder is left"


def test_a_sound_entry_opens_silently_without_rebuilding(tmp_path, capsys):
    filled(tmp_path)
    data, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 0 and err == ""
    assert same_data(data, toy_data())


@pytest.mark.parametrize("part", ["train.images", "train.masks", "val.images", "val.masks"])
def test_a_flipped_sample_byte_is_found_warned_and_rebuilt(tmp_path, capsys, part):
    path = filled(tmp_path)
    flip_byte_at(path / part, 5)
    data, rebuilt, err = reopen(tmp_path, capsys)
    role, kind = part.split(".")
    assert rebuilt == 1
    assert str(path) in err and f"fails its checksum ({role} {kind} of samples 0.." in err and "rebuilding" in err
    assert same_data(data, toy_data())
    again, rebuilt, err = reopen(tmp_path, capsys)  # the rebuilt entry is sound
    assert rebuilt == 0 and err == "" and same_data(again, toy_data())


def test_each_shard_carries_its_own_checksum_and_the_damaged_one_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cache, "SHARD_SAMPLES", 2)
    path = filled(tmp_path)
    shards = json.loads((path / "index.json").read_text())["splits"]["train"]["shards"]
    assert [shard["samples"] for shard in shards] == [[0, 2], [2, 4]]
    offset, length, _ = shards[1]["images"]
    assert (offset, length) == (2 * 3 * 8 * 9, 2 * 3 * 8 * 9)
    flip_byte_at(path / "train.images", offset + 7)
    data, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 1 and "train images of samples 2..3 are damaged" in err
    assert same_data(data, toy_data())


def test_a_flipped_byte_in_the_index_is_found(tmp_path, capsys):
    path = filled(tmp_path)
    index = path / "index.json"
    flip_byte_at(index, index.read_bytes().find(b"meadow"))  # a class name
    data, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 1 and str(path) in err and "index.json is damaged" in err and "rebuilding" in err
    assert data.classes == ["background", "meadow", "forest"]


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.0])
def test_a_truncated_file_is_rebuilt_with_a_warning(tmp_path, capsys, keep):
    path = filled(tmp_path) / "train.images"
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    data, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 1 and str(path.parent) in err and "is truncated or damaged" in err
    assert same_data(data, toy_data())


@pytest.mark.parametrize("part", ["val.masks", "index.json"])
def test_an_entry_missing_a_file_is_rebuilt_with_a_warning(tmp_path, capsys, part):
    path = filled(tmp_path)
    (path / part).unlink()
    data, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 1 and str(path) in err and "rebuilding" in err
    assert same_data(data, toy_data())


def test_an_entry_of_another_format_is_rebuilt(tmp_path, capsys):
    path = filled(tmp_path)
    index = json.loads((path / "index.json").read_text())
    index["format"] = cache.ENTRY_FORMAT - 1
    (path / "index.json").write_text(json.dumps(index))
    data, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 1 and f"has entry format {cache.ENTRY_FORMAT - 1}" in err
    assert same_data(data, toy_data())


def test_native_size_entries_are_checksummed_too(tmp_path, capsys):
    def native():
        images = [torch.full((3, 4, 5), 7, dtype=torch.uint8), torch.full((3, 2, 7), 9, dtype=torch.uint8)]
        masks = [torch.zeros((4, 5), dtype=torch.uint8), torch.ones((2, 7), dtype=torch.uint8)]
        return SegmentationData(["bg", "x"], ImageList(images, masks), ImageList(images, masks), mode="binary")

    key = {"dataset": "native"}
    path = filled(tmp_path, key, native)
    images = (path / "val.images").read_bytes()
    flip_byte_at(path / "val.images", images.find(bytes([9] * 42)) + 5)
    data, rebuilt, err = reopen(tmp_path, capsys, key, native)
    assert rebuilt == 1 and "fails its checksum (val images" in err
    assert same_data(data, native())
    assert isinstance(data.train, ImageList) and data.train.sizes() == [(2, 7), (4, 5)]


def test_a_file_in_place_of_an_entry_is_replaced(tmp_path, capsys):
    path = cache.entry_path(tmp_path, KEY)
    path.parent.mkdir(parents=True)
    path.write_text("not a cache entry")
    data, rebuilt, err = reopen(tmp_path, capsys)
    assert rebuilt == 1 and "is not a sample-cache folder" in err and same_data(data, toy_data())
    assert path.is_dir()


def test_a_cache_folder_that_cannot_be_written_is_refused_by_name(tmp_path):
    (tmp_path / "taken").write_text("a file where the cache folder should be")
    with pytest.raises(SegbenchError, match="cannot write the sample cache entry .*--data-cache"):
        cache.cached_dataset(tmp_path / "taken", KEY, toy_data)


def test_a_damaged_shapes_entry_comes_back_equal_to_a_fresh_decode(tmp_path, capsys):
    fresh = shapes.build_shapes(tmp_path / "fresh", **SMALL)
    shapes.build_shapes(tmp_path / "cache", **SMALL)
    (path,) = entries_of(tmp_path / "cache", "shapes")
    flip_byte_at(path / "val.images", 2000)
    capsys.readouterr()
    again = shapes.build_shapes(tmp_path / "cache", **SMALL)
    assert str(path) in capsys.readouterr().err
    assert same_data(again, fresh)


# --- the generated shapes folder -------------------------------------------------------------


def damage_png(root: Path) -> None:
    flip_byte_at(root / "images" / "train" / "000003.png", 60)


def truncate_png(root: Path) -> None:
    path = root / "images" / "val" / "000001.png"
    path.write_bytes(path.read_bytes()[:100])


def delete_png(root: Path) -> None:
    (root / "images" / "train" / "000005.png").unlink()


def cut_annotations(root: Path) -> None:
    path = root / "annotations" / "instances_val.json"
    path.write_text(path.read_text()[:-40])


def drop_manifest(root: Path) -> None:
    (root / shapes.MANIFEST).unlink()


def generated(cache_dir: Path) -> Path:
    """Generate SMALL and drop its sample-cache entry, so the next build reads the folder."""
    shapes.build_shapes(cache_dir, **SMALL)
    for entry in entries_of(cache_dir, "shapes"):
        shutil.rmtree(entry)
    return shapes.dataset_dir(cache_dir, {**SMALL, "generator_seed": 0})


@pytest.mark.parametrize("damage, says", [
    (damage_png, "images/train/000003.png (changed)"),
    (truncate_png, "images/val/000001.png (changed)"),
    (delete_png, "images/train/000005.png (missing)"),
    (cut_annotations, "annotations/instances_val.json (changed)"),
    (drop_manifest, "has no readable SHA256SUMS"),
], ids=lambda v: getattr(v, "__name__", None))
def test_a_damaged_shapes_folder_is_generated_again(tmp_path, capsys, damage, says):
    fresh = shapes.build_shapes(tmp_path / "fresh", **SMALL)
    root = generated(tmp_path / "cache")
    damage(root)
    assert shapes.folder_damage(root) is not None
    capsys.readouterr()
    data = shapes.build_shapes(tmp_path / "cache", **SMALL)
    err = capsys.readouterr().err
    assert str(root) in err and says in err and "generating it again" in err
    assert same_data(data, fresh)
    assert shapes.folder_damage(root) is None
    assert sorted(os.listdir(root.parent)) == [root.name], "no copy of the damaged folder is left behind"


def test_a_sound_shapes_folder_is_read_not_regenerated(tmp_path, capsys, monkeypatch):
    root = generated(tmp_path / "cache")
    monkeypatch.setattr(shapes, "write_coco_dataset", lambda *a: pytest.fail("generated again"))
    capsys.readouterr()
    shapes.build_shapes(tmp_path / "cache", **SMALL)
    assert capsys.readouterr().err == ""
    assert shapes.folder_damage(root) is None


def test_the_manifest_is_what_sha256sum_checks(tmp_path):
    import hashlib

    root = generated(tmp_path / "cache")
    lines = (root / shapes.MANIFEST).read_text().splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in lines)
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != shapes.MANIFEST}
    assert set(listed) == files and len(files) == SMALL["num_train"] + SMALL["num_val"] + 2
    name = "annotations/instances_train.json"
    assert listed[name] == hashlib.sha256((root / name).read_bytes()).hexdigest()


def test_a_damaged_folder_that_cannot_be_removed_names_the_folder_to_delete(tmp_path, monkeypatch):
    root = generated(tmp_path / "cache")
    damage_png(root)
    real_rename = os.rename

    def refuse(source, destination):
        if Path(source) == root:
            raise PermissionError(13, "Permission denied")
        return real_rename(source, destination)

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(SegbenchError) as error:
        shapes.build_shapes(tmp_path / "cache", **SMALL)
    message = str(error.value)
    assert str(root) in message and "delete that folder" in message and "Permission denied" in message


def test_a_folder_that_passes_its_checksums_but_cannot_be_read_names_the_folder(tmp_path, monkeypatch):
    root = generated(tmp_path / "cache")

    def unreadable(annotation_file, *args, **kwargs):
        raise OSError("image file is truncated")

    monkeypatch.setattr(coco, "load_coco_split", unreadable)
    with pytest.raises(SegbenchError) as error:
        shapes.build_shapes(tmp_path / "cache", **SMALL)
    assert str(root) in str(error.value) and "delete that folder" in str(error.value)


# --- map-style samples: written shard by shard by worker processes ------------------------------


class Squares(MapSamples):
    """Squares of 6x7 pixels; ``size`` declared or not; sample ``odd`` of another size."""

    def __init__(self, count, declared=None, odd=None):
        self.count, self.size, self.odd = count, declared, odd

    def __len__(self):
        return self.count

    def read(self, index):
        shape = (5, 7) if index == self.odd else (6, 7)
        image = np.full((*shape, 3), index * 9 % 256, np.uint8)
        image[0, 0] = (1, 2, 3)
        return image, np.full(shape, index % 3, np.uint8)


def squares(count=11, **params):
    return SegmentationData(["background", "a", "b"], Squares(count, **params), Squares(3, **params))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_declared_size_writes_in_place_the_same_entry_as_joined_shards(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(cache, "SHARD_SAMPLES", 4)  # 11 samples: shards of 4, 4 and 3
    cache.write_entry(tmp_path / "joined", KEY, squares(), workers)
    cache.write_entry(tmp_path / "in-place", KEY, squares(declared=(6, 7)), workers)
    for part in ("train.images", "train.masks", "val.images", "val.masks", "index.json"):
        assert (tmp_path / "joined" / part).read_bytes() == (tmp_path / "in-place" / part).read_bytes(), part
    shards = json.loads((tmp_path / "joined" / "index.json").read_text())["splits"]["train"]["shards"]
    assert [shard["samples"] for shard in shards] == [[0, 4], [4, 8], [8, 11]]
    assert [shard["images"][:2] for shard in shards] == [[0, 504], [504, 504], [1008, 378]]
    data, damage = cache.read_entry(tmp_path / "in-place", KEY)
    assert damage is None and data.train.images.shape == (11, 3, 6, 7)
    assert [int(image[0, 1, 1]) for image in data.train.images] == [index * 9 % 256 for index in range(11)]


def test_a_sample_of_another_size_than_declared_is_named(tmp_path):
    with pytest.raises(SegbenchError, match=r"train sample 5 \(sample 5\) is \(5, 7\).* declares size \(6, 7\)"):
        cache.write_entry(tmp_path / "entry", KEY, squares(declared=(6, 7), odd=5), 2)
    cache.write_entry(tmp_path / "native", KEY, squares(odd=5), 2)  # undeclared: native sizes are fine
    data, _ = cache.read_entry(tmp_path / "native", KEY)
    assert isinstance(data.train, ImageList) and data.train.sample_sizes()[5] == (5, 7)
